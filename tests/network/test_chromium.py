"""Case 6: Chromium in home A calls the worst-case aiortc peer in home B, with default
settings, through the web client a person would use (HTTPS with the server's
self-signed certificate, as on a LAN: the microphone needs a secure origin).

Chromium runs inside home A's namespace through a wrapper (``ip netns exec``);
Playwright drives it over a pipe, so the test process needs no route into the home.
"""

from __future__ import annotations

import asyncio
import functools
import math
import signal
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.browser.conftest import (
    BASE_ARGS,
    CHROMIUM,
    FAKE_DEVICES,
    FAKE_UI,
    INSTRUMENT,
    PHONE,
    UI_TIMEOUT_MS,
)
from tests.browser.ui import (
    call_dialog,
    expect_connected,
    expect_media_flowing,
    messages,
    open_conversation,
    send_message,
    sign_up,
    stats,
    watch_frames,
)
from tests.network.harness import (
    CallResult,
    Device,
    Network,
    assert_private,
    kill_group,
    new_username,
    record,
)
from tests.network.netns import SERVER_ADDRESS

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BROWSER_TONE_HZ = 520.0

# The selected pair's candidate types and, for a relay candidate, how the browser
# reaches the relay (udp, tcp or tls).
SELECTED_PAIR = """
async () => {
  const pcs = window.__rfTestPeerConnections;
  const pc = pcs[pcs.length - 1];
  const report = await pc.getStats();
  let pair = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId)
      pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  return {
    local: { type: local.candidateType, address: local.address, port: local.port },
    remote: { type: remote.candidateType, address: remote.address, port: remote.port },
    local_relay_transport: local.relayProtocol ?? null,
  };
}
"""


def write_tone(path: Path, frequency: float, seconds: float = 30.0) -> None:
    """A 16-bit mono WAV of a sine tone, for Chromium's fake microphone."""
    rate = 48_000
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.4 * 32767 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def chromium_in(ns: str, folder: Path) -> Path:
    """An executable that starts Debian's Chromium inside a network namespace."""
    wrapper = folder / f"chromium-in-{ns}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec "{ns}" {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


class Bodies:
    """Every HTTP response body the page received from the server."""

    def __init__(self, page: Page) -> None:
        self.http: list[dict[str, Any]] = []
        page.on("response", self._on_response)

    async def _on_response(self, response: Any) -> None:
        try:
            body = await response.text()
        except Exception as exc:  # a body that is gone (navigation) is recorded as such
            body = f"<unreadable: {exc!r}>"
        self.http.append({"url": response.url, "status": response.status, "body": body})


async def test_chromium_calls_a_worst_case_peer_relayed_and_private(
    net: Network, tmp_path: Path
) -> None:
    chromium = Device(net.a, new_username("alice"), worst_case=False)
    bob = Device(net.b, new_username("bob"))
    failure: Exception | None = None
    with net.captures("chromium") as packets:
        try:
            await call_from_chromium(net, tmp_path, chromium, bob)
        except Exception as exc:  # the figures are recorded either way, then it fails
            failure = exc
    result = CallResult(chromium, bob, packets)
    record(net, "6 Chromium (A) calls aiortc (B)", "masquerade/masquerade", result)
    if failure is not None:
        raise failure

    # The browser was told to relay, and did: relay to relay on the embedded coturn.
    browser = chromium.call
    assert browser["stats"]["config"]["iceTransportPolicy"] == "relay"
    pair = browser["selected_pair"]
    assert (pair["local"]["type"], pair["remote"]["type"]) == ("relay", "relay"), pair
    assert pair["local"]["address"] == pair["remote"]["address"] == SERVER_ADDRESS, pair
    assert browser["stats"]["inbound"]["audio"]["bytes"] > 0
    # The worst-case peer was relayed too, and heard the browser's tone.
    report = bob.call
    assert report["policy_from_server"] == "relay"
    assert report["connected"], report["errors"]
    bob_pair = report["selected_pair"]
    assert (bob_pair["local"]["type"], bob_pair["remote"]["type"]) == ("relay", "relay")
    assert report["audio"]["frames"] > 50, report["audio"]
    assert report["audio"]["dominant_hz"] == pytest.approx(BROWSER_TONE_HZ, abs=10)
    # Nothing crossed between the homes, and neither side received the other's address.
    assert_private(result, net)


async def call_from_chromium(net: Network, tmp_path: Path, chromium: Device, bob: Device) -> None:
    """Alice signs up in Chromium, Bob (peer.py) follows her, she messages him and calls
    him from the conversation; he answers; she hangs up after a few seconds of audio.
    What the page received goes into ``chromium.reports``."""
    tone = tmp_path / "tone.wav"
    write_tone(tone, BROWSER_TONE_HZ)
    flags = [*BASE_ARGS, FAKE_DEVICES, FAKE_UI, f"--use-file-for-fake-audio-capture={tone}"]
    report: dict[str, Any] = {"frames_sent": [], "selected_pair": None, "stats": None}
    chromium.reports.append(report)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium_in(net.a.host_ns, tmp_path)), headless=True, args=flags
        )
        try:
            context = await browser.new_context(
                ignore_https_errors=True,
                viewport={"width": PHONE["width"], "height": PHONE["height"]},
                locale="en-GB",
                timezone_id="UTC",
            )
            context.set_default_timeout(UI_TIMEOUT_MS)
            await context.add_init_script(INSTRUMENT)
            page = await context.new_page()
            frames = watch_frames(page)
            bodies = Bodies(page)
            report["frames_received"] = frames.received
            report["http"] = bodies.http

            await sign_up(page, net.url, chromium.username)
            args = ["--sign-up", "--username", bob.username, "--follow", chromium.username]
            signup = functools.partial(net.peer, net.b, "account", *args, name="chrome-bob-signup")
            bob.reports.append(await asyncio.to_thread(signup))
            await open_conversation(page, bob.username)
            await send_message(page, "may I call you?")
            await expect(messages(page, "may I call you?")).to_be_visible()

            answering = await asyncio.to_thread(net.answering, net.b, bob.username, "chrome-bob")
            try:
                await page.get_by_role("button", name="Audio call").click()
                await expect_connected(page)  # "Relayed — your address is hidden"
                await expect_media_flowing(page, ("audio",))
                await asyncio.sleep(3)
                report["stats"] = await stats(page)
                report["selected_pair"] = await page.evaluate(SELECTED_PAIR)
                await call_dialog(page).get_by_role("button", name="Hang up").click()
                await expect(call_dialog(page)).to_be_hidden()
                answered = functools.partial(net.finish, answering, "chrome-bob", timeout=60)
                bob.reports.append(await asyncio.to_thread(answered))
            finally:
                kill_group(answering, signal.SIGKILL)
        finally:
            await browser.close()
