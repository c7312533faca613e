"""Accounts and direct messages in the web client, in real Chromium."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    ApiUser,
    SocketCutter,
    expect_online,
    go_to,
    messages,
    open_conversation,
    send_message,
    sign_in,
    sign_up,
    watch_frames,
)

pytestmark = pytest.mark.browser


async def test_sign_up_dm_round_trip_request_accepted_and_reload(
    server: Server, browsers: Browsers
) -> None:
    alice = await browsers.page("alice")
    bob = await browsers.page("bob", viewport=DESKTOP)
    urls: list[str] = []
    for page in (alice, bob):
        page.on("request", lambda request: urls.append(request.url))
        page.on("websocket", lambda ws: urls.append(ws.url))
    await sign_up(alice, server.url, "alice", "Alice Liddell")
    await sign_up(bob, server.url, "bob")
    for page in (alice, bob):
        await expect_online(page)
        # On one's own device (the default) the token is kept for every tab of the
        # browser, in localStorage (tests/browser/test_stay_signed_in.py).
        stored = await page.evaluate("localStorage.getItem('ringfence.session')")
        assert json.loads(stored)["token"].startswith("rf_")
        assert await page.evaluate("sessionStorage.length") == 0

    await open_conversation(alice, "bob")
    await send_message(alice, "Hello Bob, it's Alice")
    await expect(messages(alice, "Hello Bob, it's Alice")).to_have_count(1)

    # Bob doesn't follow Alice: her message arrives live, as a request, kept apart.
    requests = bob.get_by_role("region", name=re.compile("^Message requests"))
    await expect(requests.get_by_text("Alice Liddell")).to_be_visible()
    await expect(requests.get_by_text("Hello Bob, it's Alice")).to_be_visible()
    chats = bob.get_by_role("region", name="Conversations")
    await expect(chats.get_by_text("Alice Liddell")).to_have_count(0)

    await bob.get_by_role("button", name="Accept request from Alice Liddell").click()
    # Accepting opens the conversation (issue 12); the inbox lists it (checked below).
    await expect(bob).to_have_url(re.compile(r"#/c/alice$"))
    await expect(messages(bob, "Hello Bob, it's Alice")).to_have_count(1)
    # From the keyboard: the composer has focus, Enter sends.
    await bob.keyboard.type("Hi Alice!")
    await bob.keyboard.press("Enter")
    await expect(messages(bob, "Hi Alice!")).to_have_count(1)
    await expect(messages(alice, "Hi Alice!")).to_have_count(1)

    # A reload keeps the session and shows what the server holds.
    for page in (alice, bob):
        await page.reload()
        await expect_online(page)
        await expect(messages(page, "Hello Bob, it's Alice")).to_have_count(1)
        await expect(messages(page, "Hi Alice!")).to_have_count(1)
    await go_to(bob, "Inbox")
    await expect(chats.get_by_text("Alice Liddell")).to_be_visible()
    await expect(requests).to_be_hidden()

    # Signing out ends the session; the page is back at the sign-in form.
    await alice.get_by_role("button", name="Sign out").click()
    await expect(alice.get_by_role("heading", name="Sign in")).to_be_visible()
    await alice.reload()
    await expect(alice.get_by_role("heading", name="Sign in")).to_be_visible()
    # Tokens never appeared in a URL: not in a page, an API call or the WebSocket.
    assert urls
    assert not [url for url in urls if "rf_" in url]


async def test_requests_can_be_declined_or_blocked_and_unblocked(
    server: Server, browsers: Browsers
) -> None:
    await (await ApiUser.register(server.url, "bob")).close()
    carol = await ApiUser.register(server.url, "carol", "Carol")
    dave = await ApiUser.register(server.url, "dave", "Dave")
    try:
        page = await browsers.page("bob")
        await sign_in(page, server.url, "bob")
        await carol.send("bob", "hello from carol")
        await dave.send("bob", "buy my stuff")
        requests = page.get_by_role("region", name=re.compile("^Message requests"))
        await expect(requests.get_by_role("listitem")).to_have_count(2)

        await page.get_by_role("button", name="Decline request from Carol").click()
        await expect(requests.get_by_role("listitem")).to_have_count(1)
        await page.get_by_role("button", name="Block Dave").click()
        await expect(requests).to_be_hidden()
        await expect(page.get_by_text("Blocked @dave")).to_be_visible()

        # The block is real: Dave's message no longer reaches Bob. Dave is answered as
        # anyone is (a block must not be probeable), and Bob sees nothing of it.
        resp = await dave.call(
            "POST", "/api/v1/conversations/bob/messages", json={"text": "still there?"}
        )
        assert resp.status_code == 201
        await page.wait_for_timeout(500)
        await expect(requests).to_be_hidden()
        await expect(page.get_by_text("still there?")).to_have_count(0)

        await go_to(page, "Privacy")
        blocked = page.get_by_role("list", name="Blocked people")
        await expect(blocked.get_by_text("@dave")).to_be_visible()
        await page.get_by_role("button", name="Unblock Dave").click()
        await expect(page.get_by_text("Unblocked Dave.")).to_be_visible()
        await expect(page.get_by_text("You haven't blocked anyone.")).to_be_visible()
        resp = await dave.call("POST", "/api/v1/conversations/bob/messages", json={"text": "sorry"})
        assert resp.status_code == 201
    finally:
        await carol.close()
        await dave.close()


async def test_a_dropped_connection_resumes_with_no_lost_or_duplicated_messages(
    server: Server, browsers: Browsers
) -> None:
    """The event socket is cut (through a Playwright WebSocket route, the way a flaky
    network would) while messages arrive; on its own the client reconnects with its
    stream position and device id and shows each message exactly once."""
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await alice_api.follow("bob")
        page = await browsers.page("alice")
        cutter = SocketCutter()
        await cutter.install(page)
        frames = watch_frames(page)
        await sign_in(page, server.url, "alice")
        await bob.send("alice", "message 1")
        await open_conversation(page, "bob")
        await expect(messages(page, "message 1")).to_have_count(1)
        first_auth = cutter.auth_frames[-1]
        ready = frames.of_type("ready")[-1]
        positions = [f["pos"] for f in frames.received if f["type"] != "ready" and "pos" in f]
        last_seen = max(positions, default=ready["pos"])
        assert last_seen > ready["pos"]  # "message 1" arrived live, with its position

        # The network drops, and stays down for a while.
        await cutter.cut()
        await expect(page.locator("#connection")).to_contain_text("Offline")
        for n in (2, 3, 4):
            await bob.send("alice", f"message {n}")
        cutter.restore()

        for n in (1, 2, 3, 4):
            await expect(messages(page, f"message {n}")).to_have_count(1)
        await expect_online(page)
        resumed = cutter.auth_frames[-1]
        assert resumed is not first_auth
        assert resumed["device_id"] == ready["device_id"]
        # It resumed from the last durable position it had seen before the drop.
        assert resumed["since"] == last_seen
        # Nothing was shown twice, even after a reload from the server's history.
        await page.reload()
        for n in (1, 2, 3, 4):
            await expect(messages(page, f"message {n}")).to_have_count(1)
    finally:
        await alice_api.close()
        await bob.close()


async def test_a_message_goes_over_the_open_socket_and_over_http_when_that_drops(
    server: Server, browsers: Browsers
) -> None:
    """Connected, a send is one ``message.send`` frame and no HTTP request (issue 14).
    When the socket drops after the server stored the message but before its ack
    arrived, the page sends the same txn_id over HTTP: still exactly one message."""
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob.follow("alice")
        page = await browsers.page("alice")
        cutter = SocketCutter()
        await cutter.install(page)
        posts: list[str] = []
        page.on(
            "request",
            lambda r: posts.append(r.url) if r.method == "POST" and "/messages" in r.url else None,
        )
        await sign_in(page, server.url, "alice")
        await open_conversation(page, "bob")

        await send_message(page, "over the socket")
        await expect(messages(page, "over the socket")).to_have_count(1)
        await expect(page.locator("li.msg.pending")).to_have_count(0)
        (frame,) = cutter.message_sends
        assert (frame["to"], frame["text"]) == ("bob", "over the socket")
        assert posts == []

        cutter.drop_after_next_send = True
        await send_message(page, "the ack is lost")
        await expect(messages(page, "the ack is lost")).to_have_count(1)
        await expect(page.locator("li.msg.pending")).to_have_count(0)
        assert len(posts) == 1
        assert cutter.message_sends[-1]["text"] == "the ack is lost"
        texts = [m["text"] for m in await bob.history("alice")]
        assert texts == ["over the socket", "the ack is lost"]
        await expect_online(page)
        await page.reload()
        await expect(messages(page, "the ack is lost")).to_have_count(1)
    finally:
        await alice_api.close()
        await bob.close()


async def test_older_history_is_read_a_page_at_a_time(server: Server, browsers: Browsers) -> None:
    alice = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob.follow("alice")
        for n in range(1, 61):
            await alice.send("bob", f"note {n}")
    finally:
        await alice.close()
        await bob.close()
    page = await browsers.page("bob")
    await sign_in(page, server.url, "bob")
    await open_conversation(page, "alice")
    shown = page.locator("li.msg .bubble")
    await expect(shown).to_have_count(50)  # the newest page
    await expect(shown.first).to_have_text("note 11")
    await expect(shown.last).to_have_text("note 60")
    await page.get_by_role("button", name="Load older messages").click()
    await expect(shown).to_have_count(60)
    await expect(shown.first).to_have_text("note 1")
    await expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
