"""Privacy control during a call: a direct call switched to the relay mid-call (and back)
in real Chromium, through the real server and real coturn, without hanging up."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from ringfence.client import (
    EventStream,
    IncomingCall,
    ToneTrack,
    WavRecorder,
    wait_for_incoming,
)
from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    CALL_TIMEOUT_MS,
    ApiUser,
    Frames,
    SocketTap,
    assert_only_relay_candidates,
    call_dialog,
    expect_connected,
    expect_media_flowing,
    may_call,
    open_conversation,
    sign_in,
    stats,
    watch_frames,
)

pytestmark = pytest.mark.browser

# Names the other person, whoever it is; never "peers".
DIRECT = re.compile(r"^Direct — (?!peers ).+ can see your address$")
RELAYED = "Relayed — your address is hidden"
HIDE = "Hide my address"
ALLOW = "Allow direct connection"

# Every text the route button shows, recorded in the page as it changes (so a
# short-lived "Switching…" state is seen without racing it).
RECORD_ROUTE_ACTION = """
() => {
  const seen = (window.__rfRouteActionTexts = []);
  const record = () => {
    const button = document.getElementById("route-action");
    if (!button || button.hidden) return;
    const text = `${button.textContent}|${button.getAttribute("aria-disabled") === "true"}`;
    if (seen[seen.length - 1] !== text) seen.push(text);
  };
  new MutationObserver(record).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}
"""


async def open_connections(page: Page) -> int:
    """The page's peer connections that are not closed."""
    count: int = await page.evaluate(
        "window.__rfTestPeerConnections.filter((pc) => pc.connectionState !== 'closed').length"
    )
    return count


async def set_direct(user: ApiUser, value: str) -> None:
    resp = await user.call("PATCH", "/api/v1/me/settings", json={"direct_connections": value})
    assert resp.status_code == 200, resp.text


def route_button(page: Page, name: str) -> Any:
    return call_dialog(page).get_by_role("button", name=name)


async def expect_badge(page: Page, text: str | re.Pattern[str]) -> None:
    await expect(call_dialog(page).locator("#route-badge")).to_have_text(
        text, timeout=CALL_TIMEOUT_MS
    )


async def shown_words(page: Page) -> str:
    words = call_dialog(page).locator("#verify-words")
    await expect(words).to_have_text(re.compile(r"^[a-z]+( [a-z]+){4}$"))
    text = await words.text_content()
    assert text is not None
    return text


async def timer_seconds(page: Page) -> int:
    text = await call_dialog(page).get_by_role("timer").text_content()
    assert text is not None
    parts = [int(p) for p in text.split(":")]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def assert_relay_only_since(frames: Frames, start: int, who: str) -> None:
    """What the page received from ``start`` on: relay candidates only, and none of
    this machine's addresses in them or in any SDP line."""
    assert_only_relay_candidates(Frames(frames.received[start:]), who)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition of the test's side (bounded); there is no event to await."""
    async with asyncio.timeout(CALL_TIMEOUT_MS / 1000):
        while not condition():
            await asyncio.sleep(0.05)


async def expect_inbound_growing(page: Page) -> None:
    """Remote audio and video keep arriving (and local media keeps going out)."""
    await expect_media_flowing(page, ("audio", "video"))


async def test_a_direct_call_switches_to_the_relay_and_back_without_hanging_up(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        await set_direct(alice_api, "everyone")
        await set_direct(bob_api, "everyone")

        alice = await browsers.page("alice", viewport=DESKTOP)
        bob = await browsers.page("bob")
        alice_frames, bob_frames = watch_frames(alice), watch_frames(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")

        await open_conversation(alice, "bob")
        await alice.get_by_role("button", name="Video call").click()
        await call_dialog(bob).get_by_role("button", name="Accept video call").click()
        for page in (alice, bob):
            await expect_badge(page, DIRECT)
            await expect_inbound_growing(page)
            assert (await stats(page))["local"] != "relay"
        (incoming,) = bob_frames.of_type("call.incoming")
        (answer,) = alice_frames.of_type("call.answer")
        call_id = incoming["call_id"]
        assert answer["call_id"] == call_id
        assert incoming["direct_allowed"] is True
        assert answer["direct_allowed"] is True
        words = await shown_words(alice)
        assert await shown_words(bob) == words
        # Direct: each side may hide its address; nothing to allow.
        await expect(route_button(alice, HIDE)).to_be_visible()
        await expect(route_button(bob, HIDE)).to_be_visible()
        await expect(route_button(alice, ALLOW)).to_have_count(0)
        await expect(route_button(alice, HIDE)).to_have_attribute("aria-label", re.compile("relay"))

        # 1. Alice hides her address: both sides move to the relay, in the same call.
        for page in (alice, bob):
            await page.evaluate(RECORD_ROUTE_ACTION)
        before_s = await timer_seconds(alice)
        alice_start, bob_start = len(alice_frames.received), len(bob_frames.received)
        await route_button(alice, HIDE).focus()
        await alice.keyboard.press("Enter")  # from the keyboard
        for page in (alice, bob):
            await expect_badge(page, RELAYED)
        for page in (alice, bob):
            live = await stats(page)
            assert (live["local"], live["remote"]) == ("relay", "relay")
            assert live["config"]["iceTransportPolicy"] == "relay"
            assert live["config"]["bundlePolicy"] == "max-bundle"
            await expect_inbound_growing(page)
            # The same call: one open peer connection, never ended, timer running on.
            assert await open_connections(page) == 1
            await expect(call_dialog(page).locator("#call-status")).to_have_text("Video call")
        assert await timer_seconds(alice) >= before_s
        assert not alice_frames.of_type("call.ended")
        assert not bob_frames.of_type("call.ended")
        assert len(bob_frames.of_type("call.incoming")) == 1
        # Bob is told who moved the call, by name; Alice, who did it, is told nothing.
        await expect(call_dialog(bob).locator("#route-note")).to_have_text(
            "Alice moved the call behind the relay."
        )
        await expect(call_dialog(alice).locator("#route-note")).to_have_text("")
        # Both were told; only Alice's device restarted ICE.
        (a_switch,) = [
            f for f in alice_frames.received[alice_start:] if f["type"] == "call.transport"
        ]
        (b_switch,) = [f for f in bob_frames.received[bob_start:] if f["type"] == "call.transport"]
        assert (a_switch["restart"], b_switch["restart"]) == (True, False)
        assert a_switch["call_id"] == b_switch["call_id"] == call_id
        assert a_switch["transport"] == b_switch["transport"] == "relay"
        assert [f["type"] for f in bob_frames.received[bob_start:] if "sdp" in f] == [
            "call.reoffer"
        ]
        assert [f["type"] for f in alice_frames.received[alice_start:] if "sdp" in f] == [
            "call.reanswer"
        ]
        assert_relay_only_since(alice_frames, alice_start, "alice")
        assert_relay_only_since(bob_frames, bob_start, "bob")
        # The keys did not change, nor did the words.
        assert await shown_words(alice) == words
        assert await shown_words(bob) == words
        seen = await alice.evaluate("window.__rfRouteActionTexts")
        assert "Switching to the relay…|true" in seen, seen
        await expect(route_button(alice, HIDE)).to_have_count(0)

        # 2. Both allow direct connections: either may go back; Bob does.
        await expect(route_button(alice, ALLOW)).to_be_visible()
        await expect(route_button(bob, ALLOW)).to_be_visible()
        await route_button(bob, ALLOW).click()
        for page in (alice, bob):
            await expect_badge(page, DIRECT)
        for page in (alice, bob):
            live = await stats(page)
            assert live["local"] != "relay"
            assert live["config"]["iceTransportPolicy"] == "all"
            await expect_inbound_growing(page)
            assert await open_connections(page) == 1
        assert await shown_words(alice) == words
        assert await shown_words(bob) == words
        assert "Switching to a direct connection…|true" in await bob.evaluate(
            "window.__rfRouteActionTexts"
        )
        await expect(call_dialog(alice).locator("#route-note")).to_have_text(
            "Bob switched the call to a direct connection: you can now see each other's IP"
            " addresses."
        )
        await expect(call_dialog(bob).locator("#route-note")).to_have_text("")

        # 3. Bob hides his address again, then stops allowing direct connections: Alice
        # is still offered to go direct (as far as her page knows), and the server
        # refuses it, which her page explains in one sentence.
        await route_button(bob, HIDE).click()
        for page in (alice, bob):
            await expect_badge(page, RELAYED)
        await set_direct(bob_api, "nobody")
        await route_button(alice, ALLOW).click()
        await expect(call_dialog(alice).locator("#route-note")).to_have_text(
            "Direct connection isn't allowed by your or their settings."
        )
        await expect_badge(alice, RELAYED)
        await expect_inbound_growing(alice)
        assert [
            f["error"] for f in alice_frames.of_type("error") if f.get("call_id") == call_id
        ] == ["direct_not_allowed"]

        await call_dialog(alice).get_by_role("button", name="Hang up").click()
        await expect(call_dialog(bob)).to_be_hidden()
        await expect(call_dialog(alice)).to_be_hidden()
        assert [f["reason"] for f in bob_frames.of_type("call.ended")] == ["hangup"]
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_a_relay_only_user_is_not_offered_direct_and_the_server_refuses_it(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        # Alice allows direct connections; Bob keeps the default: relayed only.
        await set_direct(alice_api, "everyone")
    finally:
        await alice_api.close()
        await bob_api.close()
    alice = await browsers.page("alice", viewport=DESKTOP)
    bob = await browsers.page("bob")
    tap = SocketTap()
    await tap.install(bob)
    alice_frames, bob_frames = watch_frames(alice), watch_frames(bob)
    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")

    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Audio call").click()
    await call_dialog(bob).get_by_role("button", name="Accept audio call").click()
    await expect_connected(bob)
    # Consent is mutual: Alice allowing direct connections is not enough, so her side
    # is relayed too, and she sees that.
    await expect(call_dialog(alice).locator("#route-badge")).to_have_text(
        RELAYED, timeout=CALL_TIMEOUT_MS
    )
    await shown_words(bob)
    (incoming,) = bob_frames.of_type("call.incoming")
    (answer,) = alice_frames.of_type("call.answer")
    assert incoming["direct_allowed"] is False
    assert answer["direct_allowed"] is False
    # Neither side is offered a direct connection.
    await expect(route_button(bob, ALLOW)).to_have_count(0)
    await expect(route_button(alice, ALLOW)).to_have_count(0)
    await expect(route_button(bob, HIDE)).to_have_count(0)

    # A modified client asks anyway, on Bob's own connection: refused.
    call_id = incoming["call_id"]
    tap.send({"type": "call.transport", "call_id": call_id, "transport": "direct"})
    await wait_until(lambda: bool(bob_frames.of_type("error")))
    assert [f["error"] for f in bob_frames.of_type("error")] == ["direct_not_allowed"]
    (refusal,) = bob_frames.of_type("error")
    assert refusal["call_id"] == call_id
    assert not bob_frames.of_type("call.transport")
    assert not alice_frames.of_type("call.transport")
    # The call goes on, relayed, as it was.
    await expect_connected(bob)
    await expect_media_flowing(bob, ("audio",))
    live = await stats(bob)
    assert (live["local"], live["config"]["iceTransportPolicy"]) == ("relay", "relay")

    await call_dialog(bob).get_by_role("button", name="Hang up").click()
    await expect(call_dialog(alice)).to_be_hidden()


async def test_a_browser_and_the_python_client_switch_a_call_both_ways(
    server: Server, browsers: Browsers, tmp_path: Path
) -> None:
    """The browser hides its address on a direct call with a Python (aiortc) user,
    then the Python user switches it back to direct: both clients follow each other's
    switches, and audio keeps reaching the Python side throughout."""
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        await set_direct(alice_api, "everyone")
        await set_direct(bob_api, "everyone")
        page = await browsers.page("alice", viewport=DESKTOP)
        frames = watch_frames(page)
        await sign_in(page, server.url, "alice")
        events = EventStream(server.url, bob_api.token, backoff_initial_s=0.05)
        await events.connect()
        try:
            recorder = WavRecorder(tmp_path / "bob.wav")
            await open_conversation(page, "bob")
            await page.get_by_role("button", name="Audio call").click()
            async with asyncio.timeout(CALL_TIMEOUT_MS / 1000):
                incoming = await wait_for_incoming(events, from_user="alice")
            await incoming.accept(tracks=[ToneTrack(660)], sink=recorder)
            await incoming.wait_connected(30)
            await expect_badge(page, DIRECT)
            pair = incoming.selected_candidate_pair()
            assert pair is not None
            assert not pair.relayed
            words = await shown_words(page)
            assert incoming.verification_code is not None
            assert " ".join(incoming.verification_code) == words

            # 1. The browser hides its address: the Python client follows.
            start = len(frames.received)
            await route_button(page, HIDE).click()
            await expect_badge(page, RELAYED)
            await wait_until(lambda: _relayed(incoming) is True)
            assert incoming.ice_transport_policy == "relay"
            assert_relay_only_since(frames, start, "the browser")
            heard = recorder.duration_s
            await wait_until(lambda: recorder.duration_s >= heard + 1.0)
            await expect_media_flowing(page, ("audio",))
            assert " ".join(incoming.verification_code or ()) == words
            assert await shown_words(page) == words

            # 2. The Python user goes back to direct: the browser follows.
            assert incoming.direct_allowed
            await incoming.switch_transport("direct")
            await expect_badge(page, DIRECT)
            assert _relayed(incoming) is False
            heard = recorder.duration_s
            await wait_until(lambda: recorder.duration_s >= heard + 1.0)
            await expect_media_flowing(page, ("audio",))
            assert await open_connections(page) == 1
            assert not frames.of_type("call.ended")
            assert await incoming.hangup() == "hangup"
        finally:
            await events.close()
    finally:
        await alice_api.close()
        await bob_api.close()


def _relayed(call: IncomingCall) -> bool | None:
    pair = call.selected_candidate_pair()
    return None if pair is None else pair.relayed
