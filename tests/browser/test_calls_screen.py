"""The Calls page in the web client (issue 12, part 3).

- It lists my calls from GET /api/v1/calls, newest first: the other person (name and
  @username), which way the call went, what became of it in plain words ("Missed",
  "No answer", "2 min 14 s"...), audio or video, and when. It changes live.
- The Calls link counts the calls I missed since I last opened the page (in this
  browser), and so does the tab's title; opening the page clears the count, for good.
- "Call back" places a call the way a conversation's call buttons do: the other
  person's phone rings, or the refusal says what a conversation says, nothing more.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from ringfence.wire.models import CallRecord
from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    ApiUser,
    call_dialog,
    console_errors,
    expect_connected,
    go_to,
    may_call,
    open_conversation,
    sign_in,
)

pytestmark = pytest.mark.browser

# The browser logs its own line for a call the server refuses (the 403 is the answer
# the refusal test expects, not a bug).
CALL_REFUSED = ("/api/v1/calls",)
# A completed call's length, as the Calls page says it.
SPOKEN_DURATION = r"(\d+ h )?(\d+ min )?\d+ s|(\d+ h )?\d+ min|\d+ h"


def calls_link(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("^Calls")
    )


def call_list(page: Page) -> Locator:
    return page.get_by_role("list", name="Calls")


def entries(page: Page) -> Locator:
    return call_list(page).get_by_role("listitem")


async def open_calls(page: Page) -> None:
    await go_to(page, "Calls")
    await expect(page.get_by_role("heading", name="Calls", level=1)).to_be_visible()


async def missed_call(caller: Page, callee: Page, media: str = "audio") -> None:
    """The caller rings the callee (from their open conversation) and gives up before
    an answer: a missed call on the callee's side."""
    button = "Video call" if media == "video" else "Audio call"
    await caller.get_by_role("button", name=button, exact=True).click()
    await expect(call_dialog(callee).locator("#call-status")).to_have_text(f"Incoming {media} call")
    await call_dialog(caller).get_by_role("button", name="Hang up").click()
    await expect(call_dialog(callee)).to_be_hidden()
    await expect(call_dialog(caller)).to_be_hidden()


async def set_settings(user: ApiUser, **changes: Any) -> None:
    resp = await user.call("PATCH", "/api/v1/me/settings", json=changes)
    assert resp.status_code == 200, resp.text


async def calls_on_server(user: ApiUser) -> list[dict[str, Any]]:
    resp = await user.call("GET", "/api/v1/calls")
    assert resp.status_code == 200, resp.text
    calls: list[dict[str, Any]] = resp.json()["calls"]
    return calls


async def seed_calls(server: Server, caller: str, callee: str, count: int) -> None:
    """Store ``count`` finished audio calls from ``caller`` to ``callee`` the way the
    calls service does when a call ends (one lasting 60 s, the next 61 s...), faster
    than placing them: the call rate limits would allow 3 a minute."""
    live = server._live
    assert live is not None, "the server is not running"
    services = live.services
    async with services.db.read() as store:
        from_user = await store.users.by_username(caller)
        to_user = await store.users.by_username(callee)
    assert from_user is not None
    assert to_user is not None
    for i in range(count):
        record = CallRecord(
            call_id=f"seeded-{i}", media="audio", outcome="completed", duration_s=60 + i
        )
        await services.messaging.record_call(from_user, to_user, record)


async def no_horizontal_scroll(page: Page) -> None:
    """Nothing sticks out sideways (the phone test: every nav link is on screen)."""
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    width = await page.evaluate("() => document.documentElement.clientWidth")
    nav = page.get_by_role("navigation", name="Main")
    for item in await nav.locator("a, button").all():
        box = await item.bounding_box()
        assert box is not None
        label = await item.inner_text()
        assert box["x"] >= 0, (label, box)
        assert box["x"] + box["width"] <= width, (label, box)


async def test_a_missed_call_is_listed_and_counted_until_calls_is_opened_even_after_reload(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob")  # a phone
        errors = console_errors(alice) + console_errors(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")

        # Before any call: no count, and the page says what will appear on it.
        await expect(calls_link(bob)).to_have_accessible_name("Calls")
        await expect(bob.locator("#calls-count")).to_be_hidden()
        await open_calls(bob)
        await expect(bob).to_have_title(re.compile(r"Calls · Ringfence$"))
        await expect(bob.get_by_text("No calls yet.")).to_be_visible()
        await expect(
            bob.get_by_text(re.compile("calls you make and receive will be listed here"))
        ).to_be_visible()
        await expect(bob.get_by_role("button", name="Load older calls")).to_be_hidden()
        await go_to(bob, "Inbox")
        await expect(bob).to_have_title("(1) Inbox · Ringfence")  # Alice's message

        # Alice rings and gives up: on Bob's side, live, the Calls link counts it (in
        # words for a screen reader), and so does the tab's title, with the message.
        await open_conversation(alice, "bob")
        await missed_call(alice, bob, "video")
        await expect(calls_link(bob)).to_have_accessible_name("Calls, 1 missed")
        await expect(bob.locator("#calls-count")).to_have_text("1")
        await expect(bob).to_have_title("(2) Inbox · Ringfence")
        await no_horizontal_scroll(bob)  # both counts showing, on a phone
        # Alice called: for her it is an outgoing call, not a missed one.
        await expect(alice.locator("#calls-count")).to_be_hidden()

        # A reload doesn't forget it: the count comes back from the server's list.
        await bob.reload()
        await expect(bob.get_by_role("heading", name="Inbox")).to_be_visible()
        await expect(calls_link(bob)).to_have_accessible_name("Calls, 1 missed")

        # Opening Calls shows it, and clears the count.
        await open_calls(bob)
        await expect(entries(bob)).to_have_count(1)
        entry = entries(bob).first
        await expect(entry.get_by_role("link")).to_contain_text("Alice")
        await expect(entry.get_by_role("link")).to_contain_text("@alice")
        await expect(entry.locator(".call-detail")).to_have_text(
            re.compile(r"Incoming video call · Missed$")
        )
        await expect(entry.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
        await expect(
            entry.get_by_role("button", name="Call back Alice (video call)")
        ).to_be_visible()
        await expect(calls_link(bob)).to_have_accessible_name("Calls")
        await expect(bob.locator("#calls-count")).to_be_hidden()
        await expect(bob).to_have_title("(1) Calls · Ringfence")
        # Nothing older than the one call: no "Load older calls".
        await expect(bob.get_by_role("button", name="Load older calls")).to_be_hidden()
        await no_horizontal_scroll(bob)

        # The browser keeps only how far Bob has looked: the call's message id.
        (call,) = await calls_on_server(bob_api)
        stored = await bob.evaluate("() => localStorage.getItem('ringfence.calls-seen.bob')")
        assert stored == str(call["message_id"])

        # Cleared for good: after a reload, away from Calls, a new missed call counts
        # one, not two.
        await go_to(bob, "Inbox")
        await bob.reload()
        await expect(bob.get_by_role("heading", name="Inbox")).to_be_visible()
        await missed_call(alice, bob)
        await expect(calls_link(bob)).to_have_accessible_name("Calls, 1 missed")
        await expect(bob.locator("#calls-count")).to_have_text("1")

        # While Calls is open, a call that arrives is seen as it arrives, newest first.
        await open_calls(bob)
        await expect(entries(bob)).to_have_count(2)
        await missed_call(alice, bob)
        await expect(entries(bob)).to_have_count(3)
        await expect(entries(bob).first.locator(".call-detail")).to_have_text(
            re.compile(r"Incoming audio call · Missed$")
        )
        await expect(entries(bob).last.locator(".call-detail")).to_have_text(
            re.compile(r"Incoming video call · Missed$")
        )
        await expect(bob.locator("#calls-count")).to_be_hidden()
        # Alice's side says what happened from hers.
        await open_calls(alice)
        await expect(entries(alice)).to_have_count(3)
        for i in range(3):
            await expect(entries(alice).nth(i).locator(".call-outcome")).to_have_text("Cancelled")
        await expect(entries(alice).first.locator(".call-what")).to_have_text("Outgoing audio call")
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_an_answered_call_shows_its_length_on_both_sides_and_the_name_opens_the_chat(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob", viewport=DESKTOP)
        errors = console_errors(alice) + console_errors(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await open_calls(bob)  # open while the call happens: it appears live

        await open_conversation(alice, "bob")
        await alice.get_by_role("button", name="Audio call", exact=True).click()
        await call_dialog(bob).get_by_role("button", name="Accept audio call").click()
        await expect_connected(alice)
        await expect_connected(bob)
        await call_dialog(alice).get_by_role("button", name="Hang up").click()
        await expect(call_dialog(alice)).to_be_hidden()
        await expect(call_dialog(bob)).to_be_hidden()

        length = re.compile(rf"^{SPOKEN_DURATION}$")
        await expect(entries(bob)).to_have_count(1)
        await expect(entries(bob).first.locator(".call-what")).to_have_text("Incoming audio call")
        await expect(entries(bob).first.locator(".call-outcome")).to_have_text(length)
        await expect(entries(bob).first).not_to_have_class(re.compile(r"\bmissed\b"))
        await open_calls(alice)
        await expect(entries(alice)).to_have_count(1)
        await expect(entries(alice).first.locator(".call-what")).to_have_text("Outgoing audio call")
        # The same call, the same length, on both sides.
        said = await entries(bob).first.locator(".call-outcome").inner_text()
        await expect(entries(alice).first.locator(".call-outcome")).to_have_text(said)
        (call,) = await calls_on_server(alice_api)
        assert call["call"]["outcome"] == "completed"
        # An answered call is not a missed one: no count on either side.
        for page in (alice, bob):
            await expect(page.locator("#calls-count")).to_be_hidden()

        # The person's name opens the conversation with them.
        await entries(alice).first.get_by_role("link", name=re.compile("^Bob")).click()
        await expect(alice.get_by_role("heading", name="Bob", level=1)).to_be_visible()
        await expect(alice.get_by_role("textbox", name="Message Bob")).to_be_visible()
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_call_back_rings_them_or_is_refused_in_the_same_words_as_a_conversation(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        await alice_api.follow("bob")  # so that Bob may call Alice back
        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob")
        errors = console_errors(alice) + console_errors(bob, refused=CALL_REFUSED)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await open_conversation(alice, "bob")
        await missed_call(alice, bob, "video")

        # Bob calls back from the Calls page, with the call's own media: Alice's rings.
        await open_calls(bob)
        call_back = entries(bob).first.get_by_role("button", name="Call back Alice (video call)")
        await call_back.click()
        ringing = call_dialog(alice)
        await expect(ringing.locator("#call-status")).to_have_text("Incoming video call")
        await expect(ringing.get_by_role("heading", name="Bob")).to_be_visible()
        await ringing.get_by_role("button", name="Decline").click()
        await expect(call_dialog(bob)).to_be_hidden()
        await expect(entries(bob)).to_have_count(2)
        await expect(entries(bob).first.locator(".call-detail")).to_have_text(
            re.compile(r"Outgoing video call · Declined$")
        )
        # Calling out raises no count; declining isn't missing, so Alice has none either.
        await expect(bob.locator("#calls-count")).to_be_hidden()
        await expect(alice.locator("#calls-count")).to_be_hidden()

        # Alice turns calls off. Calling back is refused, in the words a conversation
        # uses, which say nothing of why; nothing rings.
        await set_settings(alice_api, calls_enabled=False)
        await entries(bob).first.get_by_role("button", name=re.compile("^Call back Alice")).click()
        notice = bob.locator("#call-alert")
        await expect(notice).to_have_text("Alice can't be called right now.")
        await expect(bob.get_by_role("alert")).to_have_text("Alice can't be called right now.")
        await expect(call_dialog(alice)).to_be_hidden()
        await expect(call_dialog(bob)).to_be_hidden()
        # The notice can be dismissed; focus goes back to the button.
        await bob.get_by_role("button", name="Dismiss call notice").click()
        await expect(notice).to_be_hidden()
        await expect(
            entries(bob).first.get_by_role("button", name=re.compile("^Call back Alice"))
        ).to_be_focused()

        # The conversation's own call button says exactly the same.
        await entries(bob).first.get_by_role("link").click()
        await bob.get_by_role("button", name="Video call", exact=True).click()
        await expect(bob.locator("#call-alert")).to_have_text("Alice can't be called right now.")
        await expect(call_dialog(alice)).to_be_hidden()
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_older_calls_load_on_demand_a_page_at_a_time(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        await seed_calls(server, "alice", "bob", 51)  # one more than a page
        bob = await browsers.page("bob", viewport=DESKTOP)
        errors = console_errors(bob)
        await sign_in(bob, server.url, "bob")
        await open_calls(bob)

        # The newest 50 first, newest at the top; answered calls raise no count.
        await expect(entries(bob)).to_have_count(50)
        await expect(entries(bob).first.locator(".call-outcome")).to_have_text("1 min 50 s")
        await expect(entries(bob).last.locator(".call-outcome")).to_have_text("1 min 1 s")
        await expect(bob.locator("#calls-count")).to_be_hidden()
        older = bob.get_by_role("button", name="Load older calls")
        await expect(older).to_be_visible()

        # From the keyboard: the 51st comes, the button goes (there is nothing older),
        # and the keyboard lands on the call it brought.
        await older.focus()
        await bob.keyboard.press("Enter")
        await expect(entries(bob)).to_have_count(51)
        await expect(entries(bob).last.locator(".call-outcome")).to_have_text("1 min")
        await expect(older).to_be_hidden()
        await expect(entries(bob).last.get_by_role("link")).to_be_focused()
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()
