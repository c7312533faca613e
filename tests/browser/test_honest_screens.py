"""What the web client says about calls is true (issue 12, section 4).

- A message request says whether accepting would let its sender call, by the
  callee's own settings; once accepted, the conversation says whether they can call
  now and offers the one tap that would let them. The caller's refusal notice can be
  dismissed, goes by itself when things may have changed, and never says why.
- The ring screen says, before Accept, whether answering shows the caller your
  address, naming them.
- "Who can call you" offers choices that cannot contradict each other, is really
  disabled while calls are off, and says in plain words with whom direct
  connections are allowed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    ApiUser,
    call_dialog,
    console_errors,
    go_to,
    messages,
    open_conversation,
    peer_connection_count,
    send_message,
    sign_in,
    watch_frames,
)
from tests.conftest import open_socket
from tests.integration.calls.sdp import sdp_pair

pytestmark = pytest.mark.browser

# The browser logs its own line for a call the server refuses (a 403 or 429 is the
# answer these tests expect, not a bug).
CALL_REFUSED = ("/api/v1/calls",)

REFUSED = "Bob can't be called right now."


async def set_settings(user: ApiUser, **changes: Any) -> dict[str, Any]:
    resp = await user.call("PATCH", "/api/v1/me/settings", json=changes)
    assert resp.status_code == 200, resp.text
    settings: dict[str, Any] = resp.json()["settings"]
    return settings


async def settings_of(user: ApiUser) -> dict[str, Any]:
    resp = await user.call("GET", "/api/v1/me")
    assert resp.status_code == 200, resp.text
    settings: dict[str, Any] = resp.json()["settings"]
    return settings


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name=re.compile(r"^Message "))


async def test_accepting_a_request_tells_the_truth_about_calls_and_offers_one_tap(
    server: Server, browsers: Browsers
) -> None:
    """Bob's default audience is people he follows: accepting Alice's request does not
    let her call, and the screens say so; one tap (following her) does. Alice's
    refusal notice stays neutral, can be dismissed, and goes by itself when Bob writes.
    Alice makes three call attempts: the per-pair limit (3 a minute) is never hit."""
    await (await ApiUser.register(server.url, "bob", "Bob")).close()
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    try:
        await alice_api.send("bob", "Hi Bob, can I call you?")
    finally:
        await alice_api.close()
    alice = await browsers.page("alice", viewport=DESKTOP)
    bob = await browsers.page("bob", viewport=DESKTOP)
    alice_errors, bob_errors = (
        console_errors(alice, CALL_REFUSED),
        console_errors(bob, CALL_REFUSED),
    )
    bob_frames = watch_frames(bob)
    await sign_in(bob, server.url, "bob")
    await sign_in(alice, server.url, "alice")

    # The requests list no longer promises that accepting lets them call.
    help_text = bob.locator("#requests-help")
    await expect(help_text).to_have_text(
        "Messages from people you don't follow wait here. They can't call you, and "
        "accepting alone doesn't change that: you take calls only from people you follow."
    )

    # 1. Alice calls while it is still a request: refused, in neutral words. The
    #    notice can be dismissed.
    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Audio call").click()
    alert = alice.locator("#call-alert")
    await expect(alert).to_have_text(REFUSED)
    await expect(alert).to_have_attribute("role", "alert")
    await alice.get_by_role("button", name="Dismiss call notice").click()
    await expect(alert).to_be_hidden()
    await expect(alice.get_by_role("button", name="Dismiss call notice")).to_be_hidden()
    await expect(alice.get_by_role("button", name="Audio call")).to_be_focused()

    # 2. Bob accepts. His conversation says truly that Alice can't call him yet, and
    #    offers the one tap that would let her; it doesn't take the composer's focus.
    await bob.get_by_role("button", name="Accept request from Alice").click()
    await expect(bob).to_have_url(re.compile(r"#/c/alice$"))
    box = bob.get_by_role("region", name="Calls from Alice")
    await expect(box.get_by_role("status")).to_have_text(
        "Alice can't call you yet. You take calls only from people you follow."
    )
    let_call = box.get_by_role("button", name="Let Alice call you")
    await expect(let_call).to_be_visible()
    await expect(let_call).to_have_accessible_description("This follows Alice.")
    await expect(composer(bob)).to_be_focused()

    # ... and it is true: Alice is still refused, with the same words as before.
    await alice.get_by_role("button", name="Audio call").click()
    await expect(alert).to_have_text(REFUSED)
    assert not bob_frames.of_type("call.incoming")

    # 3. One tap: Bob follows Alice, and the box says she can call him now.
    await let_call.click()
    await expect(box.get_by_role("status")).to_have_text("Alice can call you now.")
    await expect(bob.get_by_role("button", name="Following", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(box.get_by_role("button", name="OK, close this")).to_be_focused()

    # Alice's client can't know that (and mustn't learn Bob's settings): her notice
    # stays, unchanged, until something happens on Bob's side, here his message.
    await expect(alert).to_have_text(REFUSED)
    await send_message(bob, "Sure, call me now")
    await expect(messages(alice, "Sure, call me now")).to_have_count(1)
    await expect(alert).to_be_hidden()

    # 4. Her next call rings.
    await alice.get_by_role("button", name="Audio call").click()
    await expect(call_dialog(bob).locator("#call-status")).to_have_text("Incoming audio call")
    await call_dialog(bob).get_by_role("button", name="Decline").click()
    await expect(call_dialog(alice)).to_be_hidden()
    await expect(call_dialog(bob)).to_be_hidden()

    # OK closes the box for good.
    await box.get_by_role("button", name="OK, close this").click()
    await expect(box).to_be_hidden()
    await expect(composer(bob)).to_be_focused()
    assert alice_errors == []
    assert bob_errors == []


async def test_what_requests_say_follows_the_callees_own_settings(
    server: Server, browsers: Browsers
) -> None:
    """Calls off: the request and the accepted conversation say so, and offer no tap
    that would not work. Everyone in the audience: accepting does let them call."""
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    carol = await ApiUser.register(server.url, "carol", "Carol")
    dave = await ApiUser.register(server.url, "dave", "Dave")
    try:
        await set_settings(bob_api, calls_enabled=False)
        await carol.send("bob", "hello from carol")
        page = await browsers.page("bob", viewport=DESKTOP)
        errors = console_errors(page, CALL_REFUSED)
        await sign_in(page, server.url, "bob")
        await expect(page.locator("#requests-help")).to_have_text(
            "Messages from people you don't follow wait here. "
            "Your calls are off, so nobody can call you."
        )
        # The request itself, opened: it says what accepting does and doesn't do.
        await page.get_by_role("link", name=re.compile("Carol")).click()
        request = page.get_by_role("region", name="Message request")
        await expect(request).to_contain_text(
            "Carol (@carol) wants to message you. They can't see that you've read this "
            "unless you accept. Your calls are off, so they can't call you either way."
        )
        await request.get_by_role("button", name="Accept").click()
        box = page.get_by_role("region", name="Calls from Carol")
        await expect(box.get_by_role("status")).to_have_text(
            "Your calls are off, so Carol can't call you."
        )
        await expect(box.get_by_role("button", name=re.compile("^Let "))).to_have_count(0)
        await expect(
            box.get_by_role("link", name="Change this in Privacy and safety")
        ).to_be_visible()
        await box.get_by_role("button", name="OK, close this").click()
        await expect(box).to_be_hidden()

        # Everyone with an accepted conversation may call: accepting lets them.
        await set_settings(bob_api, calls_enabled=True, call_audience=["everyone"])
        await dave.send("bob", "hello from dave")
        await page.reload()
        await go_to(page, "Inbox")
        await expect(page.locator("#requests-help")).to_have_text(
            "Messages from people you don't follow wait here. Until you accept, they can't "
            "call you."
        )
        await page.get_by_role("button", name="Accept request from Dave").click()
        box = page.get_by_role("region", name="Calls from Dave")
        await expect(box.get_by_role("status")).to_have_text("Dave can call you now.")
        assert errors == []
    finally:
        await bob_api.close()
        await carol.close()
        await dave.close()


async def test_the_ring_screen_says_before_accept_whether_answering_shows_your_address(
    server: Server, browsers: Browsers
) -> None:
    alice = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/events"
    try:
        await bob_api.follow("alice")
        await alice.send("bob", "call?")
        # Both allow direct connections with anyone: the call would be direct.
        await set_settings(alice, direct_connections="everyone")
        await set_settings(bob_api, direct_connections="everyone")
        bob = await browsers.page("bob")
        errors = console_errors(bob, CALL_REFUSED)
        frames = watch_frames(bob)
        await sign_in(bob, server.url, "bob")
        alice_ws = await open_socket(ws_url, alice.token)
        try:

            async def ring() -> str:
                started = await alice.call(
                    "POST", "/api/v1/calls", json={"to": "bob", "media": "audio"}
                )
                assert started.status_code == 201, started.text
                call_id: str = started.json()["call_id"]
                await alice_ws.send(
                    {"type": "call.offer", "call_id": call_id, "sdp": (await sdp_pair())[0]}
                )
                await expect(call_dialog(bob).locator("#call-status")).to_have_text(
                    "Incoming audio call"
                )
                return call_id

            # 1. Direct: the warning names Alice, before Accept, and Accept carries it.
            call_id = await ring()
            dialog = call_dialog(bob)
            direct = "Answering connects you directly: Alice will see your IP address."
            exposure = dialog.locator("#call-exposure")
            await expect(exposure).to_have_text(direct)
            await expect(dialog).to_have_accessible_description(re.compile(re.escape(direct)))
            accept = dialog.get_by_role("button", name="Accept audio call")
            await expect(accept).to_have_accessible_description(direct)
            await expect(dialog).not_to_contain_text("peers")
            # It comes before the Accept button, and nothing has been set up yet.
            before = await exposure.evaluate(
                "(el) => Boolean(el.compareDocumentPosition("
                "document.querySelector('#call .accept')) & Node.DOCUMENT_POSITION_FOLLOWING)"
            )
            assert before
            assert await peer_connection_count(bob) == 0
            assert frames.of_type("call.incoming")[-1]["ice_transport_policy"] == "all"
            await alice_ws.send({"type": "call.hangup", "call_id": call_id})
            await expect(dialog).to_be_hidden()

            # 2. Bob keeps his address to himself: relayed, and the screen says so.
            await set_settings(bob_api, direct_connections="nobody")
            await ring()
            await expect(exposure).to_have_text(
                "Your IP address stays hidden: this call goes through the relay."
            )
            await expect(dialog).not_to_contain_text("directly")
            assert frames.of_type("call.incoming")[-1]["ice_transport_policy"] == "relay"
            await dialog.get_by_role("button", name="Decline").click()
            await expect(dialog).to_be_hidden()
        finally:
            await alice_ws.close()
        assert errors == []
    finally:
        await alice.close()
        await bob_api.close()


async def test_who_can_call_you_offers_choices_that_cannot_contradict(
    server: Server, browsers: Browsers
) -> None:
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        page = await browsers.page("bob")
        errors = console_errors(page, CALL_REFUSED)
        await sign_in(page, server.url, "bob")
        await go_to(page, "Privacy")
        who = page.get_by_role("group", name="Who can call you")
        radios = who.get_by_role("radio")
        await expect(radios).to_have_count(4)
        # One choice at a time: no checkboxes to combine anywhere on the page.
        await expect(page.get_by_role("checkbox")).to_have_count(0)
        following = who.get_by_role("radio", name="Only people you follow", exact=True)
        everyone = who.get_by_role(
            "radio", name="Everyone you've accepted a conversation with", exact=True
        )
        both = who.get_by_role("radio", name="People you follow and verified accounts", exact=True)
        await expect(following).to_be_checked()
        await expect(following).to_be_enabled()
        silence = page.get_by_role("switch", name="Silence unknown callers")
        await expect(silence).to_be_visible()

        # Direct connections, in plain words, next to the calls switch.
        summary = page.locator("#direct-summary")
        await expect(summary).to_have_text(
            "Direct connections: with nobody. Every call goes through the relay, so your "
            "IP address stays hidden."
        )

        # Everyone: nobody is "unknown", so there's nothing to silence.
        await everyone.check()
        await expect(page.locator("#audience-status")).to_have_text(
            "Saved. Everyone you've accepted a conversation with can call you."
        )
        assert (await settings_of(bob_api))["call_audience"] == ["everyone"]
        await expect(silence).to_be_hidden()
        await expect(following).not_to_be_checked()

        await both.check()
        await expect(page.locator("#audience-status")).to_have_text(
            "Saved. Only people you follow and verified accounts can call you."
        )
        assert sorted((await settings_of(bob_api))["call_audience"]) == ["following", "verified"]
        await expect(silence).to_be_visible()
        await expect(silence).to_be_enabled()

        # Calls off: the audience and silencing are really disabled, not just grey.
        calls = page.get_by_role("switch", name="Allow calls")
        await calls.click()
        await expect(page.locator("#calls-enabled-status")).to_have_text(
            "Saved. Calls are off: nobody can call you."
        )
        for i in range(4):
            await expect(radios.nth(i)).to_be_disabled()
        await expect(silence).to_be_disabled()
        await calls.click()
        await expect(page.locator("#calls-enabled-status")).to_have_text("Saved. Calls are on.")
        for i in range(4):
            await expect(radios.nth(i)).to_be_enabled()
        await expect(silence).to_be_enabled()

        # A contradictory list stored through the API shows as what it means.
        await set_settings(bob_api, call_audience=["following", "everyone"])
        await page.reload()
        await expect(everyone).to_be_checked()
        await expect(who.locator("input:checked")).to_have_count(1)
        await expect(silence).to_be_hidden()

        # Direct connections with people you follow: said in plain words, and kept.
        direct = page.get_by_role("group", name="Direct connections")
        await direct.get_by_role("radio", name="People you follow", exact=True).check()
        with_following = (
            "Direct connections: with people you follow, when they allow it with you too. "
            "They can then see your IP address."
        )
        await expect(summary).to_have_text(with_following)
        await page.reload()
        await expect(summary).to_have_text(with_following)
        await page.get_by_role("button", name="Change direct connections").click()
        await expect(
            direct.get_by_role("radio", name="People you follow", exact=True)
        ).to_be_focused()
        assert errors == []
    finally:
        await bob_api.close()
