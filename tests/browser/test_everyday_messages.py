"""Everyday messaging in the web client, in real Chromium (issue 12, section 4).

- A message over the server's 10,000-character limit is refused in words, with
  nothing cut or lost; a counter warns from 9,000 characters.
- A long message shows collapsed in the thread, behind "Show more".
- A separator ("Today", "Yesterday", a date) stands where the day changes.
- Accepting a message request opens the conversation.
- On a touch screen, opening a conversation doesn't pop up the keyboard.
- A name that can't be a username is called invalid, not missing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Locator, Page, Route, expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import ApiUser, console_errors, messages, open_conversation, sign_in

pytestmark = pytest.mark.browser

LIMIT = 10_000


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name=re.compile(r"^Message "))


def send_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Send", exact=True)


def message_item(page: Page, text: str) -> Locator:
    """The list item of the delivered message with exactly this text."""
    bubble = page.locator(".bubble", has_text=re.compile(f"^{re.escape(text)}$"))
    return page.locator("li.msg:not(.pending)").filter(has=bubble)


async def composer_length(page: Page) -> int:
    """What the composer holds, in characters as the server counts them (code points)."""
    length: int = await composer(page).evaluate("(el) => Array.from(el.value).length")
    return length


async def test_the_composer_counts_near_the_limit_and_refuses_a_message_over_it(
    server: Server, browsers: Browsers
) -> None:
    alice = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        page = await browsers.page("alice")
        errors = console_errors(page)
        await sign_in(page, server.url, "alice")
        await open_conversation(page, "bob")
        box = composer(page)
        counter = page.locator("#composer-count")
        refusal = page.get_by_role("status").filter(has_text="too long")

        # Far from the limit there is nothing to count.
        await box.fill("a" * 8_999)
        await expect(counter).to_be_hidden()
        # Near it, the counter says how close the text is.
        await box.fill("a" * 9_512)
        await expect(counter).to_be_visible()
        await expect(counter).to_have_text("9,512 / 10,000")
        await expect(send_button(page)).to_be_enabled()
        await expect(refusal).to_have_count(0)
        # Characters are counted as the server counts them: an emoji is one, not two.
        await box.fill("😀" * 9_500)
        await expect(counter).to_have_text("9,500 / 10,000")

        # Over the limit: the counter shows it, the send is refused in plain words,
        # and the text stays as it was, all of it.
        await box.fill("b" * 10_250)
        await expect(counter).to_have_text("10,250 / 10,000")
        await expect(refusal).to_have_text(
            "This message is too long to send. Shorten it to 10,000 characters or fewer."
        )
        await expect(refusal).to_have_attribute("aria-live", "polite")
        await expect(send_button(page)).to_be_disabled()
        await expect(box).to_have_attribute("aria-invalid", "true")
        describedby = await box.get_attribute("aria-describedby")
        assert describedby is not None
        assert {"composer-count", "composer-limit"} <= set(describedby.split())
        # Enter (the keyboard's send) is refused too.
        await box.press("Enter")
        await page.wait_for_timeout(300)
        assert await composer_length(page) == 10_250
        await expect(page.locator("li.msg")).to_have_count(0)
        assert await alice.history("bob") == []

        # Shortened to exactly the limit, it goes, whole.
        await box.press("Control+End")
        for _ in range(250):
            await box.press("Backspace")
        await expect(counter).to_have_text("10,000 / 10,000")
        await expect(refusal).to_have_count(0)
        await expect(box).not_to_have_attribute("aria-invalid", "true")
        await expect(send_button(page)).to_be_enabled()
        await send_button(page).click()
        await expect(messages(page, "b" * LIMIT)).to_have_count(1)
        await expect(box).to_have_value("")
        await expect(counter).to_be_hidden()
        sent = await alice.history("bob")
        assert [len(m["text"]) for m in sent] == [LIMIT]
        assert errors == []
    finally:
        await alice.close()
        await bob.close()


async def test_a_paste_longer_than_the_limit_is_kept_whole(
    server: Server, browsers: Browsers
) -> None:
    """Before: the composer had maxlength=10000, so a 12,000-character paste lost its
    last 2,000 characters without a word."""
    for name in ("alice", "bob"):
        await (await ApiUser.register(server.url, name)).close()
    context = await browsers.launch("alice")
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.pages[0] if context.pages else await context.new_page()
    errors = console_errors(page)
    await sign_in(page, server.url, "alice")
    await open_conversation(page, "bob")
    box = composer(page)
    assert await box.get_attribute("maxlength") is None

    text = "".join(f"line {n:05d} of a very long paste\n" for n in range(400))[:12_000]
    assert len(text) == 12_000
    await page.evaluate("(text) => navigator.clipboard.writeText(text)", text)
    await box.focus()
    await page.keyboard.press("Control+V")  # a real paste, from the clipboard
    await expect(page.locator("#composer-count")).to_have_text("12,000 / 10,000")
    assert await box.input_value() == text
    await expect(send_button(page)).to_be_disabled()
    await expect(page.get_by_role("status").filter(has_text="too long")).to_be_visible()
    assert errors == []


async def test_a_long_message_shows_collapsed_behind_show_more(
    server: Server, browsers: Browsers
) -> None:
    alice = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    long_text = ("All work and no play makes Jack a dull boy. " * 70)[:3_000].strip()
    many_lines = "\n".join(f"item {n}" for n in range(1, 15))  # 14 short lines
    try:
        await alice.follow("bob")
        await bob.send("alice", "short one")
        await bob.send("alice", long_text)
        await bob.send("alice", many_lines)
    finally:
        await alice.close()
        await bob.close()
    page = await browsers.page("alice", viewport=DESKTOP)
    errors = console_errors(page)
    await sign_in(page, server.url, "alice")
    await open_conversation(page, "bob")

    toggles = page.get_by_role("button", name=re.compile(r"^Show (more|less)$"))
    await expect(toggles).to_have_count(2)  # the short message has none
    short = message_item(page, "short one")
    await expect(short).to_have_count(1)
    await expect(short.get_by_role("button")).to_have_count(0)

    item = message_item(page, long_text)
    bubble = messages(page, long_text)
    toggle = item.get_by_role("button", name="Show more")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    bubble_id = await bubble.get_attribute("id")
    assert bubble_id
    await expect(toggle).to_have_attribute("aria-controls", bubble_id)
    # Collapsed: what shows is a dozen lines or so, and the rest is clipped.
    box = await bubble.bounding_box()
    assert box is not None
    assert box["height"] < 330, box
    assert await bubble.evaluate("(el) => el.scrollHeight > el.clientHeight + 100")

    # From the keyboard: Tab to the button, Enter expands.
    await toggle.focus()
    await page.keyboard.press("Enter")
    toggle = item.get_by_role("button", name="Show less")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(toggle).to_be_focused()
    assert await bubble.evaluate("(el) => el.scrollHeight <= el.clientHeight + 1")
    expanded = await bubble.bounding_box()
    assert expanded is not None
    assert expanded["height"] > box["height"] + 100
    # And a click folds it again.
    await toggle.click()
    await expect(item.get_by_role("button", name="Show more")).to_have_attribute(
        "aria-expanded", "false"
    )
    assert await bubble.evaluate("(el) => el.scrollHeight > el.clientHeight + 100")

    # Many short lines count as long too; the text itself is all there.
    lines = message_item(page, many_lines)
    await expect(lines.get_by_role("button", name="Show more")).to_be_visible()
    await lines.get_by_role("button", name="Show more").click()
    await expect(lines.get_by_role("button", name="Show less")).to_be_visible()
    assert errors == []


# The page's clock reads this ("now"), and history is served with these dates: the
# API can't backdate a message, so the test gives the client the dates it formats.
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
SENT_AT = [
    "2024-12-31T10:00:00+00:00",  # last year: the date, with its year
    "2025-03-08T09:00:00+00:00",  # this year: the date
    "2025-03-08T18:30:00+00:00",  # the same day: no separator before it
    "2025-03-11T23:59:00+00:00",  # yesterday
    "2025-03-12T00:01:00+00:00",  # two minutes later, but today
    "2025-03-12T11:45:00+00:00",
]


async def test_day_separators_stand_between_messages_of_different_days(
    server: Server, browsers: Browsers
) -> None:
    alice = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob.follow("alice")
        for n in range(len(SENT_AT)):
            await alice.send("bob", f"note {n}")
    finally:
        await alice.close()
        await bob.close()

    page = await browsers.page("bob")
    errors = console_errors(page)

    async def backdated(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        for message in body["messages"]:
            message["created_at"] = SENT_AT[int(message["text"].removeprefix("note "))]
        await route.fulfill(response=response, body=json.dumps(body))

    await page.route(re.compile(r"/api/v1/conversations/alice/messages(\?.*)?$"), backdated)
    await page.clock.set_fixed_time(NOW)
    await sign_in(page, server.url, "bob")
    await open_conversation(page, "alice")
    await expect(page.locator("li.msg")).to_have_count(len(SENT_AT))

    rows = page.get_by_role("log", name="Messages").locator("li.day-separator, li.msg .bubble")
    await expect(rows).to_have_text(
        [
            "Tuesday, 31 December 2024",
            "note 0",
            "Saturday 8 March",
            "note 1",
            "note 2",
            "Yesterday",
            "note 3",
            "Today",
            "note 4",
            "note 5",
        ]
    )
    # Each separator is a heading, for moving through the days with a screen reader.
    separators = page.locator("li.day-separator")
    await expect(separators.get_by_role("heading", level=2)).to_have_count(4)
    days = await separators.locator("time").evaluate_all(
        "(els) => els.map((el) => el.getAttribute('datetime'))"
    )
    assert days == ["2024-12-31", "2025-03-08", "2025-03-11", "2025-03-12"]
    # Under a separator, a message shows its time of day.
    note1 = message_item(page, "note 1")
    await expect(note1.locator("time")).to_have_text("09:00")
    assert errors == []


async def test_accepting_a_request_opens_the_conversation(
    server: Server, browsers: Browsers
) -> None:
    await (await ApiUser.register(server.url, "bob")).close()
    carol = await ApiUser.register(server.url, "carol", "Carol")
    try:
        page = await browsers.page("bob", viewport=DESKTOP)
        errors = console_errors(page)
        await sign_in(page, server.url, "bob")
        await carol.send("bob", "hello from carol")
        requests = page.get_by_role("region", name=re.compile("^Message requests"))
        await expect(requests.get_by_text("hello from carol")).to_be_visible()

        await page.get_by_role("button", name="Accept request from Carol").click()
        await expect(page).to_have_url(re.compile(r"#/c/carol$"))
        await expect(page.locator(".handle", has_text="@carol")).to_be_visible()
        await expect(messages(page, "hello from carol")).to_have_count(1)
        await expect(page.get_by_role("region", name="Message request")).to_be_hidden()
        # Ready to reply from the keyboard (not a touch screen: see below).
        await expect(composer(page)).to_be_focused()
        await page.keyboard.type("Hi Carol")
        await page.keyboard.press("Enter")
        await expect(messages(page, "Hi Carol")).to_have_count(1)
        assert [m["text"] for m in await carol.history("bob")] == ["hello from carol", "Hi Carol"]
        assert errors == []
    finally:
        await carol.close()


async def test_on_a_touch_screen_the_composer_is_not_focused_on_opening(
    server: Server, browsers: Browsers
) -> None:
    """Focus would bring up the on-screen keyboard over the thread."""
    for name in ("alice", "bob"):
        await (await ApiUser.register(server.url, name)).close()
    page = await browsers.page("alice")
    errors = console_errors(page)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    await sign_in(page, server.url, "alice")
    assert await page.evaluate("matchMedia('(pointer: coarse)').matches")
    await open_conversation(page, "bob")
    await page.wait_for_timeout(300)
    await expect(composer(page)).not_to_be_focused()
    # Touching the composer, and it is there to type in.
    await composer(page).click()
    await expect(composer(page)).to_be_focused()
    assert errors == []


async def test_a_name_that_cannot_be_a_username_is_called_invalid(
    server: Server, browsers: Browsers
) -> None:
    await (await ApiUser.register(server.url, "alice")).close()
    page = await browsers.page("alice")
    errors = console_errors(page)
    lookups: list[str] = []
    page.on("request", lambda r: lookups.append(r.url) if "/api/v1/users/" in r.url else None)
    await sign_in(page, server.url, "alice")
    error = page.locator("#new-chat-error")

    for bad in ("@bad name!", "ab", "x" * 33, "café"):
        await page.get_by_label("Message someone").fill(bad)
        await page.get_by_role("button", name="Open").click()
        await expect(error).to_have_text(
            "That isn't a valid username. Usernames are 3 to 32 letters, digits or underscores (_)."
        )
        await expect(error).to_have_attribute("role", "alert")
    assert lookups == []  # nothing to look up: no one can have such a name
    assert errors == []

    # A name that could exist but doesn't is still "no one called".
    await page.get_by_label("Message someone").fill("@Nobody_Here")
    await page.get_by_role("button", name="Open").click()
    await expect(error).to_have_text("There's no one called @nobody_here.")
    assert len(lookups) == 1
