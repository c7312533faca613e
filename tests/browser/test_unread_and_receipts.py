"""Unread counts, read receipts and typing notices in the web client (issue 12, part 2).

- The inbox shows how many messages are unread in each conversation (and sets it in
  bold), the Inbox link shows the total, and so does the tab's title.
- Opening a conversation marks it read: the counts clear, on every tab of the reader.
- Under my latest message: "Sent", "Delivered" once one of the other person's
  devices has it, then "Read" once they have read it, unless one of us has switched
  read receipts off (they are reciprocal); the same after a reload.
- "NAME is typing…" while the other person types, unless one of us has switched
  typing indicators off; the typing browser sends at most one notice every 3 s.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

import pytest
from playwright.async_api import Locator, Page, Route, expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    ApiUser,
    console_errors,
    go_to,
    message_status,
    messages,
    open_conversation,
    send_message,
    sign_in,
    wait_until,
    watch_frames,
    watch_sent_frames,
)

pytestmark = pytest.mark.browser

ALICE = "Alice Liddell"


async def alice_and_bob(server: Server) -> tuple[ApiUser, ApiUser]:
    """Two people in an accepted conversation: Bob follows Alice, so her messages reach
    his inbox (not his requests), where receipts and typing notices may flow."""
    alice = await ApiUser.register(server.url, "alice", ALICE)
    bob = await ApiUser.register(server.url, "bob", "Bob")
    await bob.follow("alice")
    return alice, bob


async def unread_on_server(user: ApiUser, other: str) -> int:
    resp = await user.call("GET", "/api/v1/conversations")
    assert resp.status_code == 200, resp.text
    (conversation,) = [c for c in resp.json()["conversations"] if c["user"]["username"] == other]
    count: int = conversation["unread"]
    return count


def inbox_link(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("^Inbox")
    )


def chat_link(page: Page, name: str) -> Locator:
    chats = page.get_by_role("region", name="Conversations")
    return chats.get_by_role("link", name=re.compile(re.escape(name)))


async def switch_off(page: Page, name: str, status_id: str, saved: str) -> None:
    """Turn a switch of the Privacy page off and wait until the server has it."""
    await go_to(page, "Privacy")
    switch = page.get_by_role("switch", name=name)
    await expect(switch).to_be_checked()
    await expect(switch).to_be_enabled()
    await switch.click()
    await expect(page.locator(f"#{status_id}")).to_have_text(f"Saved. {saved}")
    await expect(switch).not_to_be_checked()


async def open_from_inbox(page: Page, name: str) -> None:
    await go_to(page, "Inbox")
    await chat_link(page, name).click()
    await expect(page.get_by_role("textbox", name=re.compile(r"^Message "))).to_be_visible()


def read_frames(frames: list[dict[str, Any]], kind: str, up_to: int) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") == kind and f.get("up_to", 0) >= up_to]


async def test_unread_counts_show_and_clear_when_read_and_the_sender_sees_read(
    server: Server, browsers: Browsers
) -> None:
    alice_api, bob_api = await alice_and_bob(server)
    try:
        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob")
        errors = console_errors(alice) + console_errors(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await expect(bob).to_have_title("Inbox · Ringfence")
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox")

        await open_conversation(alice, "bob")
        await send_message(alice, "first")
        await expect(messages(alice, "first")).to_have_count(1)
        # Bob's browser is signed in: his device has it at once.
        await expect(message_status(alice, "first")).to_have_text("Delivered")
        await send_message(alice, "second")
        await expect(messages(alice, "second")).to_have_count(1)
        # One status, under the latest message only.
        await expect(message_status(alice, "second")).to_have_text("Delivered")
        await expect(message_status(alice, "second")).to_have_attribute("aria-live", "polite")
        await expect(message_status(alice, "first")).to_have_count(0)

        # Bob, on his inbox, sees both as unread, live: on the conversation (in bold,
        # and in words for a screen reader), on the Inbox link, and in the tab's title.
        link = chat_link(bob, ALICE)
        await expect(link).to_have_accessible_name(re.compile(r"2 unread$"))
        await expect(link.locator(".unread-count")).to_have_text("2")
        weight = await link.locator(".name").evaluate("(el) => getComputedStyle(el).fontWeight")
        assert int(weight) >= 700
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox, 2 unread")
        await expect(inbox_link(bob).locator("#inbox-count")).to_have_text("2")
        await expect(bob).to_have_title("(2) Inbox · Ringfence")
        assert await unread_on_server(bob_api, "alice") == 2

        # Opening the conversation reads it: every count clears, and Alice sees "Read".
        await link.click()
        await expect(messages(bob, "second")).to_have_count(1)
        await expect(bob).to_have_title(f"{ALICE} · Ringfence")
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox")
        await expect(inbox_link(bob).locator("#inbox-count")).to_be_hidden()
        await expect(message_status(alice, "second")).to_have_text("Read")
        await expect(message_status(alice, "first")).to_have_count(0)
        assert await unread_on_server(bob_api, "alice") == 0
        await go_to(bob, "Inbox")
        await expect(chat_link(bob, ALICE)).to_have_accessible_name(re.compile(re.escape(ALICE)))
        assert "unread" not in (await chat_link(bob, ALICE).inner_text())
        await expect(chat_link(bob, ALICE).locator(".unread-count")).to_have_count(0)
        await expect(bob).to_have_title("Inbox · Ringfence")

        # A new message while Bob's conversation is open (and seen) is read at once.
        await chat_link(bob, ALICE).click()
        await send_message(alice, "third")
        await expect(messages(bob, "third")).to_have_count(1)
        await expect(message_status(alice, "third")).to_have_text("Read")
        await expect(bob).to_have_title(f"{ALICE} · Ringfence")
        assert await unread_on_server(bob_api, "alice") == 0
        # Bob's own reply says "Sent" until Alice's open conversation reads it.
        await send_message(bob, "hi Alice")
        await expect(messages(alice, "hi Alice")).to_have_count(1)
        await expect(message_status(bob, "hi Alice")).to_have_text("Read")
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_with_read_receipts_off_a_newer_message_stays_sent(
    server: Server, browsers: Browsers
) -> None:
    alice_api, bob_api = await alice_and_bob(server)
    try:
        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob")
        alice_frames = watch_frames(alice)
        bob_frames = watch_frames(bob)
        errors = console_errors(alice) + console_errors(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await open_conversation(alice, "bob")
        await send_message(alice, "before")
        await expect(chat_link(bob, ALICE)).to_have_accessible_name(re.compile("1 unread$"))
        await open_from_inbox(bob, ALICE)
        await expect(message_status(alice, "before")).to_have_text("Read")  # the control

        await switch_off(
            bob,
            "Read receipts",
            "read-receipts-status",
            "Read receipts are off, yours and other people's.",
        )
        await expect(bob.locator("#read-receipts-help")).to_have_text(
            re.compile(r"If you turn this off, you won't see other people's either\.$")
        )
        me = (await bob_api.call("GET", "/api/v1/me")).json()
        assert me["settings"]["read_receipts"] is False
        await open_from_inbox(bob, ALICE)
        await send_message(alice, "newer")
        await expect(messages(alice, "newer")).to_have_count(1)
        newer = (await alice_api.history("bob"))[-1]
        assert newer["text"] == "newer"

        # Bob reads it (his open conversation marks it read: his own devices hear of
        # it), but Alice is not told: her message stays "Sent".
        await expect(messages(bob, "newer")).to_have_count(1)
        await wait_until(
            lambda: bool(read_frames(bob_frames.received, "conversation.read", newer["id"])),
            "Bob's read of the newer message",
        )
        assert await unread_on_server(bob_api, "alice") == 0
        await alice.wait_for_timeout(1000)
        await expect(message_status(alice, "newer")).to_have_text("Sent")
        assert not read_frames(alice_frames.received, "message.read", newer["id"])
        # Nor that it reached him: delivery follows read receipts.
        assert not read_frames(alice_frames.received, "message.delivered", newer["id"])
        # Reciprocal: Alice's message read by Bob is "Sent" for her, and Bob's reply,
        # read by Alice, is "Sent" for him as well.
        await send_message(bob, "read mine?")
        await expect(messages(alice, "read mine?")).to_have_count(1)
        await alice.wait_for_timeout(1000)
        await expect(message_status(bob, "read mine?")).to_have_text("Sent")
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_delivered_once_their_device_has_it_and_the_same_after_a_reload(
    server: Server, browsers: Browsers
) -> None:
    alice_api, bob_api = await alice_and_bob(server)
    try:
        alice = await browsers.page("alice", viewport=DESKTOP)
        errors = console_errors(alice)
        await sign_in(alice, server.url, "alice")
        await open_conversation(alice, "bob")
        await send_message(alice, "while you were out")
        await expect(messages(alice, "while you were out")).to_have_count(1)
        status = message_status(alice, "while you were out")
        await expect(status).to_have_text("Sent")  # no device of Bob's is signed in

        # Bob signs in: his inbox lists the message, so it has reached him, unread.
        bob = await browsers.page("bob")
        errors += console_errors(bob)
        await sign_in(bob, server.url, "bob")
        await expect(chat_link(bob, ALICE)).to_have_accessible_name(re.compile("1 unread$"))
        await expect(status).to_have_text("Delivered")
        await alice.reload()  # the conversation list says how far Bob got
        await expect(status).to_have_text("Delivered")

        await open_from_inbox(bob, ALICE)
        await expect(status).to_have_text("Read")
        await alice.reload()
        await expect(status).to_have_text("Read")
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_typing_shows_on_the_other_side_unless_typing_indicators_are_off(
    server: Server, browsers: Browsers
) -> None:
    alice_api, bob_api = await alice_and_bob(server)
    try:
        await alice_api.send("bob", "hello")
        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob")
        sent = watch_sent_frames(alice)
        bob_frames = watch_frames(bob)
        errors = console_errors(alice) + console_errors(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await open_conversation(alice, "bob")
        await open_from_inbox(bob, ALICE)
        typing = bob.get_by_role("status").filter(has_text="is typing")

        def typing_sent() -> int:
            return len(sent.of_type("typing"))

        # Alice types for about four seconds: Bob sees who is typing, and her browser
        # tells the server at most once every 3 s (it drops more than 30 a minute).
        composer = alice.get_by_role("textbox", name=re.compile(r"^Message "))
        started = asyncio.get_running_loop().time()
        await composer.press_sequentially("Are you free later today, say at six?", delay=100)
        await expect(typing).to_have_text(f"{ALICE} is typing…")
        await expect(typing).to_have_attribute("aria-live", "polite")
        await wait_until(lambda: typing_sent() >= 2, "a second typing notice")
        elapsed = asyncio.get_running_loop().time() - started
        assert set(map(str, sent.of_type("typing"))) == {str({"type": "typing", "to": "bob"})}
        times = sent.times_of("typing")
        assert all(later - earlier >= 2.9 for earlier, later in itertools.pairwise(times))
        assert len(times) <= 1 + elapsed / 3
        # Her message arrives: the notice goes.
        await composer.press("Enter")
        await expect(messages(bob, "Are you free later today, say at six?")).to_have_count(1)
        await expect(typing).to_have_count(0)

        # Without typing indicators on Bob's side, nothing shows, though Alice's
        # browser still tells the server she types (it can't know Bob's setting).
        await switch_off(
            bob,
            "Typing indicators",
            "typing-indicators-status",
            "Typing indicators are off, yours and other people's.",
        )
        await expect(bob.locator("#typing-indicators-help")).to_have_text(
            re.compile(r"If you turn this off, you won't see other people's either\.$")
        )
        await open_from_inbox(bob, ALICE)
        before = typing_sent()
        notices = len(bob_frames.of_type("typing"))
        # She keeps typing until her browser sends a notice (at most one per 3 s).
        for char in "Hello? Are you there, Bob?":
            await composer.press(char if char != " " else "Space")
            if typing_sent() > before:
                break
            await alice.wait_for_timeout(250)
        await wait_until(lambda: typing_sent() > before, "Alice's typing notice")
        # Not an exact count: a notice phase one's keys scheduled (3 s after the last)
        # may go out while she types here, and this loop may see it late on a busy
        # machine. What matters is that her browser still sends them, and only these.
        assert set(map(str, sent.of_type("typing"))) == {str({"type": "typing", "to": "bob"})}
        await bob.wait_for_timeout(1000)
        await expect(typing).to_have_count(0)
        assert len(bob_frames.of_type("typing")) == notices
        # Bob types back: with his setting off, his browser doesn't even send it.
        bob_sent = len([f for f in bob_frames.received if f.get("type") == "typing"])
        await bob.get_by_role("textbox", name=re.compile(r"^Message ")).press_sequentially(
            "yes", delay=50
        )
        await alice.wait_for_timeout(1000)
        await expect(alice.get_by_role("status").filter(has_text="is typing")).to_have_count(0)
        assert len([f for f in bob_frames.received if f.get("type") == "typing"]) == bob_sent
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_reading_on_one_tab_clears_the_count_on_another(
    server: Server, browsers: Browsers
) -> None:
    alice_api, bob_api = await alice_and_bob(server)
    try:
        context = await browsers.launch("bob")
        first = context.pages[0] if context.pages else await context.new_page()
        errors = console_errors(first)
        await sign_in(first, server.url, "bob", shared_computer=True)
        # A second tab signs in on its own ("This is a shared computer": a session of
        # the tab's own): another device.
        second = await context.new_page()
        second_frames = watch_frames(second)
        errors += console_errors(second)
        await sign_in(second, server.url, "bob", shared_computer=True)
        await first.bring_to_front()

        for text in ("one", "two", "three"):
            await alice_api.send("bob", text)
        for page in (first, second):
            await expect(inbox_link(page)).to_have_accessible_name("Inbox, 3 unread")
            await expect(page).to_have_title("(3) Inbox · Ringfence")
        await expect(chat_link(second, ALICE)).to_have_accessible_name(re.compile("3 unread$"))

        await chat_link(first, ALICE).click()
        await expect(messages(first, "three")).to_have_count(1)
        await expect(inbox_link(first)).to_have_accessible_name("Inbox")
        # The other tab hears of the read (conversation.read) and clears its counts.
        await expect(inbox_link(second)).to_have_accessible_name("Inbox")
        await expect(second).to_have_title("Inbox · Ringfence")
        await expect(chat_link(second, ALICE).locator(".unread-count")).to_have_count(0)
        assert second_frames.of_type("conversation.read")
        assert await unread_on_server(bob_api, "alice") == 0
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


# Makes document.visibilityState controllable (Playwright can't hide a headless tab):
# it instruments the browser's API, as conftest's INSTRUMENT does, not the app.
SET_VISIBILITY = """(state) => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def test_a_conversation_open_in_a_hidden_tab_is_read_only_when_shown(
    server: Server, browsers: Browsers
) -> None:
    alice_api, bob_api = await alice_and_bob(server)
    try:
        await alice_api.send("bob", "are you there?")
        bob = await browsers.page("bob")
        errors = console_errors(bob)
        posts: list[str] = []
        bob.on("request", lambda r: posts.append(r.url) if r.url.endswith("/read") else None)
        await sign_in(bob, server.url, "bob")
        await open_from_inbox(bob, ALICE)
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox")
        assert await unread_on_server(bob_api, "alice") == 0
        assert len(posts) == 1

        # Bob switches to another tab: what arrives now is unread, though it is open.
        await bob.evaluate(SET_VISIBILITY, "hidden")
        await alice_api.send("bob", "hello?")
        await alice_api.send("bob", "still there?")
        await expect(messages(bob, "still there?")).to_have_count(1)
        await expect(bob).to_have_title(f"(2) {ALICE} · Ringfence")
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox, 2 unread")
        await bob.wait_for_timeout(500)
        assert await unread_on_server(bob_api, "alice") == 2
        assert len(posts) == 1

        # He comes back: it is read, in one post.
        await bob.evaluate(SET_VISIBILITY, "visible")
        await expect(bob).to_have_title(f"{ALICE} · Ringfence")
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox")
        assert await unread_on_server(bob_api, "alice") == 0
        assert len(posts) == 2
        # Nothing new: reopening the conversation posts nothing.
        await open_from_inbox(bob, ALICE)
        await bob.wait_for_timeout(800)
        assert len(posts) == 2
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_a_read_the_server_was_too_busy_for_is_tried_again_when_it_says(
    server: Server, browsers: Browsers
) -> None:
    """A moment's contention (a PostgreSQL deadlock broken by failing one writer) answers
    503 with Retry-After; the conversation must not stay unread until the next message."""
    alice_api, bob_api = await alice_and_bob(server)
    try:
        await alice_api.send("bob", "are you there?")
        bob = await browsers.page("bob")
        errors = console_errors(bob, refused=("/read",))
        answers: list[int] = []

        async def busy_once(route: Route) -> None:
            if not answers:
                answers.append(503)
                await route.fulfill(
                    status=503,
                    headers={"Retry-After": "1", "Content-Type": "application/json"},
                    body='{"error": "database_busy", "detail": "try again shortly"}',
                )
                return
            response = await route.fetch()
            answers.append(response.status)
            await route.fulfill(response=response)

        await bob.route(re.compile(r"/api/v1/conversations/alice/read$"), busy_once)
        await sign_in(bob, server.url, "bob")
        await open_from_inbox(bob, ALICE)
        await expect(bob).to_have_title(f"{ALICE} · Ringfence")
        await expect(inbox_link(bob)).to_have_accessible_name("Inbox")
        assert answers == [503, 204]
        assert await unread_on_server(bob_api, "alice") == 0
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()
