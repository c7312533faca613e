"""Calls in the web client, in real Chromium, through the real server and real coturn."""

from __future__ import annotations

import asyncio
import math
import re
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Page, expect

from ringfence.client import (
    EventStream,
    RingfenceClient,
    ToneTrack,
    WavRecorder,
    dominant_frequency,
    place_call,
    wait_for_incoming,
)
from tests.browser.conftest import DESKTOP, Browsers, Coturn, Server
from tests.browser.ui import (
    PASSWORD,
    ApiUser,
    SocketCutter,
    alice_may_call_bob,
    assert_only_relay_candidates,
    call_dialog,
    expect_connected,
    expect_media_flowing,
    expect_online,
    go_to,
    media_requests,
    open_conversation,
    peer_connection_count,
    poll,
    senders_enabled,
    sign_in,
    stats,
    watch_frames,
)

pytestmark = pytest.mark.browser

BROWSER_TONE_HZ = 440.0
PYTHON_TONE_HZ = 660.0


async def hang_up(page: Page) -> None:
    await call_dialog(page).get_by_role("button", name="Hang up").click()


async def test_video_call_between_two_browsers_is_relayed_and_carries_media(
    server: Server, browsers: Browsers, coturn: Coturn
) -> None:
    await alice_may_call_bob(server.url, "video call?")
    alice = await browsers.page("alice")
    bob = await browsers.page("bob", viewport=DESKTOP)
    alice_frames, bob_frames = watch_frames(alice), watch_frames(bob)
    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")

    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Video call").click()
    await expect(call_dialog(alice).locator("#call-status")).to_have_text("Ringing…")
    incoming = call_dialog(bob)
    await expect(incoming.get_by_role("heading", name="Alice")).to_be_visible()
    await expect(incoming.locator("#call-status")).to_have_text("Incoming video call")
    # Ringing reveals nothing: Bob's page has made no peer connection and not touched
    # the camera or microphone.
    assert await peer_connection_count(bob) == 0
    assert await media_requests(bob) == 0

    await incoming.get_by_role("button", name="Accept video call").click()
    await expect_connected(alice)
    await expect_connected(bob)
    for page in (alice, bob):
        await expect_media_flowing(page, ("audio", "video"))
        live = await stats(page)
        assert live["state"] == "connected"
        # The badge said "relayed"; the live selected pair agrees.
        assert (live["local"], live["remote"]) == ("relay", "relay")
        # The page used exactly the ICE configuration the server handed out.
        assert live["config"]["iceTransportPolicy"] == "relay"
        urls = {url for ice in live["config"]["iceServers"] for url in ice["urls"]}
        assert urls == set(coturn.urls)
    # Remote video is on screen, with the local preview.
    await expect(call_dialog(alice).get_by_label("Remote video")).to_be_visible()
    await expect(call_dialog(alice).get_by_label("Your camera preview")).to_be_visible()

    assert_only_relay_candidates(alice_frames, "alice")
    assert_only_relay_candidates(bob_frames, "bob")

    # Mute and camera off stop what is sent, and say so.
    controls = call_dialog(alice).get_by_role("group", name="Call controls")
    await controls.get_by_role("button", name="Mute").click()
    await expect(controls.get_by_role("button", name="Mute")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert await senders_enabled(alice, "audio") == [False]
    # Bob is told, by name, instead of hearing silence (call.media, through the server).
    bob_peer = call_dialog(bob).locator("#peer-state")
    await expect(bob_peer).to_have_text("Alice: Muted")
    await expect(call_dialog(bob).get_by_label("Remote video")).to_be_visible()
    await controls.get_by_role("button", name="Camera off").click()
    await expect(controls.get_by_role("button", name="Camera off")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert await senders_enabled(alice, "video") == [False]
    await expect(call_dialog(alice).get_by_label("Your camera preview")).to_be_hidden()
    # Bob sees Alice's avatar and "Camera off", not a black box.
    await expect(bob_peer).to_have_text("Alice: Muted · Camera off")
    await expect(call_dialog(bob).get_by_label("Remote video")).to_be_hidden()
    await expect(call_dialog(bob).locator(".call-avatar")).to_be_visible()
    await controls.get_by_role("button", name="Mute").click()
    await expect(controls.get_by_role("button", name="Mute")).to_have_attribute(
        "aria-pressed", "false"
    )
    assert await senders_enabled(alice, "audio") == [True]
    await expect(bob_peer).to_have_text("Alice: Camera off")
    await controls.get_by_role("button", name="Camera off").click()
    await expect(bob_peer).to_be_hidden()
    await expect(call_dialog(bob).get_by_label("Remote video")).to_be_visible()
    media_frames = [(f["audio"], f["video"]) for f in bob_frames.of_type("call.media")]
    assert media_frames == [(False, True), (False, False), (True, False), (True, True)]

    await hang_up(alice)
    await expect(call_dialog(alice)).to_be_hidden()
    await expect(call_dialog(bob)).to_be_hidden()
    record = re.compile(r"^Video call · \d+:\d\d$")
    await expect(alice.locator(".call-record .call-label")).to_have_text(record)
    await open_conversation(bob, "alice")
    await expect(bob.locator(".call-record .call-label")).to_have_text(record)


def write_tone(path: Path, frequency: float, seconds: float = 20.0) -> None:
    """A 16-bit mono WAV of a sine tone, for Chromium's fake microphone."""
    rate = 48_000
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.5 * 32767 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def rms(path: Path, skip_s: float = 0.5) -> float:
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    samples = pcm[int(skip_s * rate) :].astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll a condition of the Python side (bounded); there is no event to await."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


AUDIO_ENERGY_ABOVE = """
async (floor) => {
  const pcs = window.__rfTestPeerConnections;
  const report = await pcs[pcs.length - 1].getStats();
  let energy = 0;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") energy += s.totalAudioEnergy || 0;
  });
  return energy > floor;
}
"""


async def expect_hears_sound(page: Page) -> None:
    """The browser's received audio is not silence (inbound-rtp totalAudioEnergy)."""
    await poll(page, AUDIO_ENERGY_ABOVE, 0.01, "received audio energy")


async def test_audio_calls_between_a_browser_and_the_python_client(
    server: Server, browsers: Browsers, tmp_path: Path
) -> None:
    """Both directions: the browser calls a Python (aiortc) user, then the Python user
    calls the browser. Audio is measured at both ends."""
    tone = tmp_path / "tone.wav"
    write_tone(tone, BROWSER_TONE_HZ)
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    page = await browsers.page("alice", extra_args=[f"--use-file-for-fake-audio-capture={tone}"])
    cutter = SocketCutter()
    await cutter.install(page)
    frames = watch_frames(page)
    async with RingfenceClient(server.url) as bob:
        session = await bob.register("bob", PASSWORD, "Bob")
        # Each may call the other: they follow each other and share a conversation.
        await bob.follow("alice")
        await alice_api.follow("bob")
        await alice_api.send("bob", "shall we talk?")
        await alice_api.close()
        events = EventStream(server.url, session["token"], backoff_initial_s=0.05)
        await events.connect()
        try:
            await sign_in(page, server.url, "alice")
            await open_conversation(page, "bob")

            # 1. The browser calls the Python client.
            heard_by_bob = tmp_path / "bob-1.wav"
            recorder = WavRecorder(heard_by_bob)
            await page.get_by_role("button", name="Audio call").click()
            async with asyncio.timeout(30):
                incoming = await wait_for_incoming(events, from_user="alice")
            assert incoming.media == "audio"
            await incoming.accept(tracks=[ToneTrack(PYTHON_TONE_HZ)], sink=recorder)
            await incoming.wait_connected(30)
            await expect_connected(page)
            await expect_media_flowing(page, ("audio",))
            await expect_hears_sound(page)
            # The browser's event socket drops mid-call and comes back: it resumes
            # with the same device id, within the grace period, and the call goes on.
            await cutter.cut()
            await expect(page.locator("#connection")).to_contain_text("Offline")
            cutter.restore()
            await expect_online(page)
            assert cutter.auth_frames[-1]["device_id"] == frames.of_type("ready")[0]["device_id"]
            await expect_connected(page)
            await expect_media_flowing(page, ("audio",))
            await wait_until(lambda: recorder.duration_s >= 2.0)
            # Hanging up goes over the new socket; the server ends the call normally.
            await hang_up(page)
            assert await incoming.wait_ended() == "hangup"
            assert rms(heard_by_bob) > 300
            assert dominant_frequency(heard_by_bob, skip_s=0.5) == pytest.approx(
                BROWSER_TONE_HZ, abs=10
            )
            await expect(call_dialog(page)).to_be_hidden()

            # 2. The Python client calls the browser.
            heard_by_bob = tmp_path / "bob-2.wav"
            recorder = WavRecorder(heard_by_bob)
            call = await place_call(
                bob,
                events,
                "alice",
                media="audio",
                tracks=[ToneTrack(PYTHON_TONE_HZ)],
                sink=recorder,
            )
            dialog = call_dialog(page)
            await expect(dialog.locator("#call-status")).to_have_text("Incoming audio call")
            await dialog.get_by_role("button", name="Accept audio call").click()
            await call.wait_connected(30)
            await expect_connected(page)
            await expect_media_flowing(page, ("audio",))
            await expect_hears_sound(page)
            await wait_until(lambda: recorder.duration_s >= 2.0)
            assert await call.hangup() == "hangup"
            await expect(dialog.locator("#call-status")).to_have_text("Call ended")
            await expect(dialog).to_be_hidden()
            assert rms(heard_by_bob) > 300
            assert dominant_frequency(heard_by_bob, skip_s=0.5) == pytest.approx(
                BROWSER_TONE_HZ, abs=10
            )
            # Both calls are in the thread, as the browser user sees them.
            await expect(page.locator(".call-record .call-label")).to_have_text(
                [re.compile(r"^Audio call · \d+:\d\d$")] * 2
            )
        finally:
            await events.close()


async def test_a_call_rings_every_tab_and_stops_where_it_was_not_answered(
    server: Server, browsers: Browsers
) -> None:
    await alice_may_call_bob(server.url, "call you in a sec")
    alice = await browsers.page("alice", viewport=DESKTOP)
    bob_browser = await browsers.launch("bob")
    first_tab = bob_browser.pages[0] if bob_browser.pages else await bob_browser.new_page()
    second_tab = await bob_browser.new_page()
    await sign_in(alice, server.url, "alice")
    # "This is a shared computer": each tab keeps a session of its own and signs in.
    await sign_in(first_tab, server.url, "bob", shared_computer=True)
    await sign_in(second_tab, server.url, "bob", shared_computer=True)

    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Audio call").click()
    for tab in (first_tab, second_tab):
        await expect(call_dialog(tab).locator("#call-status")).to_have_text("Incoming audio call")

    await call_dialog(first_tab).get_by_role("button", name="Accept audio call").click()
    await expect(call_dialog(second_tab)).to_be_hidden()
    await expect(second_tab.get_by_text("answered on another device")).to_be_visible()
    await expect_connected(first_tab)
    await expect_connected(alice)
    # The tab that didn't answer never set anything up.
    assert await peer_connection_count(second_tab) == 0
    assert await media_requests(second_tab) == 0

    await hang_up(first_tab)
    await expect(call_dialog(alice).locator("#call-status")).to_have_text("Call ended")
    await expect(call_dialog(alice)).to_be_hidden()
    await expect(call_dialog(first_tab)).to_be_hidden()
    await go_to(second_tab, "Inbox")
    await expect(second_tab.get_by_text(re.compile(r"^Audio call · \d+:\d\d$"))).to_be_visible()
