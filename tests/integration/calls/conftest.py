"""Fixtures for call tests: a real coturn, a live server using it, and real aiortc peers.

Signaling here is driven frame by frame over the real WebSocket, so a test can also
play a *modified* client that misbehaves on purpose (sends host candidates to a
relayed call, answers twice, speaks out of turn).
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame

from ringfence.client.aiortc_private import nominated_pair
from ringfence.config import Settings
from tests.conftest import Api, LiveServer, Socket, make_settings, open_socket
from tests.turn_fixture import Coturn

pytestmark = pytest.mark.integration

if shutil.which("turnserver") is None:
    pytest.skip("coturn is not installed (scripts/test installs it)", allow_module_level=True)


def machine_addresses() -> set[str]:
    """Every non-loopback address of this machine: what a relayed peer must never see."""
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True)
    found = set()
    for iface in json.loads(out.stdout):
        for info in iface.get("addr_info", []):
            addr = info["local"]
            if addr not in ("127.0.0.1", "::1"):
                found.add(addr)
    assert found, "this machine has no non-loopback address to test with"
    return found


def host_candidate(port: int = 50000) -> dict[str, Any]:
    """A trickled host candidate on a real address of this machine: what a relayed side
    must never hand on. ``port`` tells two of them apart."""
    address = sorted(machine_addresses())[0]
    return {
        "candidate": f"candidate:{port} 1 udp 2130706431 {address} {port} typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }


def call_settings(tmp_path: Path, database_url: str, coturn: Coturn, **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        turn_urls=list(coturn.urls),
        turn_secret=coturn.secret,
        **overrides,
    )


@pytest.fixture
async def server(
    tmp_path: Path, database_url: str, coturn: Coturn, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LiveServer, Api]]:
    """A live server using the session coturn. ``@pytest.mark.settings(...)`` overrides."""
    marker = request.node.get_closest_marker("server_settings")
    overrides = dict(marker.kwargs) if marker else {}
    settings = call_settings(tmp_path, database_url, coturn, **overrides)
    async with LiveServer(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        yield live, Api(client)


async def befriend(api: Api, caller: str, callee: str) -> tuple[str, str]:
    """Register two users such that ``caller`` may call ``callee`` under default settings:
    the callee follows the caller, and the caller has messaged the callee."""
    caller_token = await api.register(caller)
    callee_token = await api.register(callee)
    resp = await api.call("PUT", f"/api/v1/me/following/{caller}", callee_token)
    assert resp.status_code == 204
    resp = await api.send(caller_token, callee, "hi, may I call you?")
    assert resp.status_code == 201
    return caller_token, callee_token


async def allow_direct(api: Api, *tokens: str) -> None:
    """These users let anyone connect to them directly (``direct_connections``)."""
    for token in tokens:
        resp = await api.call(
            "PATCH", "/api/v1/me/settings", token, json={"direct_connections": "everyone"}
        )
        assert resp.status_code == 200, resp.text


async def start_call(api: Api, token: str, to: str, media: str = "audio") -> httpx.Response:
    return await api.call("POST", "/api/v1/calls", token, json={"to": to, "media": media})


class ToneTrack(MediaStreamTrack):  # type: ignore[misc]
    """A 48 kHz mono sine tone, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self._frequency = frequency
        self._samples = 960
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._pts / 48000 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(self._samples) + self._pts) / 48000
        pcm = (np.sin(2 * math.pi * self._frequency * t) * 12000).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += self._samples
        return frame


@dataclass
class Peer:
    """One side of a real call: an aiortc peer plus everything signaling handed it."""

    policy: str
    ice_servers: list[dict[str, Any]]
    tone: float | None = None
    pc: RTCPeerConnection = field(init=False)
    received_audio: list[np.ndarray] = field(default_factory=list)
    sample_rate: int = 48000
    _reader: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        config = RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s["urls"], username=s["username"], credential=s["credential"])
                for s in self.ice_servers
            ],
            iceTransportPolicy=(
                RTCIceTransportPolicy.RELAY if self.policy == "relay" else RTCIceTransportPolicy.ALL
            ),
        )
        self.pc = RTCPeerConnection(config)
        if self.tone is not None:
            self.pc.addTrack(ToneTrack(self.tone))
        else:
            self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                channels = len(frame.layout.channels)
                samples = frame.to_ndarray().reshape(-1, channels)[:, 0]  # packed s16
                self.sample_rate = frame.sample_rate
                self.received_audio.append(samples)
        except Exception:  # the track ends when the call does
            return

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def add_candidate(self, candidate: dict[str, Any]) -> None:
        text = candidate["candidate"]
        if not text:
            return
        parsed = candidate_from_sdp(text.split(":", 1)[1])
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    async def wait_connected(self, timeout: float = 20) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or loop.time() > deadline:
                raise AssertionError(f"peer did not connect: {self.pc.connectionState}")
            await asyncio.sleep(0.05)

    def selected_pair_types(self) -> tuple[str, str]:
        """Candidate types (local, remote) of the pair ICE nominated for the audio."""
        pair = nominated_pair(self.pc)
        assert pair is not None, "ICE nominated no pair"
        return pair[0].type, pair[1].type

    def dominant_frequency(self) -> float:
        audio = np.concatenate(self.received_audio[-150:]).astype(np.float64)
        audio -= audio.mean()
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        freqs = np.fft.rfftfreq(len(audio), d=1 / self.sample_rate)
        return float(freqs[int(np.argmax(spectrum))])

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()


async def collect(sock: Socket, seconds: float) -> list[dict[str, Any]]:
    """Every event a socket receives within the given time."""
    events = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            events.append(await sock.recv(left))
        except TimeoutError:
            break
    return events


__all__ = [
    "Api",
    "Coturn",
    "LiveServer",
    "Peer",
    "Socket",
    "allow_direct",
    "befriend",
    "collect",
    "host_candidate",
    "machine_addresses",
    "open_socket",
    "start_call",
]
