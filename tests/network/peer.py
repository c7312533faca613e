"""A worst-case Ringfence call client, run inside a home's network namespace.

    ip netns exec HOME .venv/bin/python tests/network/peer.py account|call|answer|health ...

It speaks the real HTTP API and WebSocket like any client, but it ignores the
``ice_transport_policy`` the server gives it: it gathers every candidate it can
(host, server-reflexive from the relay's STUN port, and relay with its raddr) and
sends every one of them, inside its SDP and trickled as ``call.candidate`` frames.
That is the buggy or modified client the server must never trust. Whatever the
server forwards to the other side is all the other side can learn, so the suite
checks the frames and bodies this script records.

It writes one JSON file: every HTTP body and WebSocket frame it received, every frame
it sent, the selected ICE candidate pair, and whether the other side's tone arrived.
It runs as a script (its own folder first on sys.path, not the repository), so it
imports only Ringfence (for the tone) and third-party packages, never ``tests``.
aiortc is imported only by the commands that make calls, so the set-up commands
start quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import ssl
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse 1"
CONNECT_TIMEOUT_S = 30.0


class Recorder:
    """Everything this device received and sent, in order, for the JSON report."""

    def __init__(self, role: str, username: str) -> None:
        self.data: dict[str, Any] = {
            "role": role,
            "username": username,
            "http": [],
            "frames_received": [],
            "frames_sent": [],
            "errors": [],
            "connected": False,
            "selected_pair": None,
            "audio": {"frames": 0, "dominant_hz": None, "rms": 0.0},
            "policy_from_server": None,
            "turn_url_used": None,
            "local_candidates": [],
        }

    def http(self, method: str, path: str, response: httpx.Response) -> None:
        self.data["http"].append(
            {"method": method, "path": path, "status": response.status_code, "body": response.text}
        )

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.data, indent=1))


class Http:
    """The HTTP API, recording every response body."""

    def __init__(self, server: str, context: ssl.SSLContext | bool, recorder: Recorder) -> None:
        self.client = httpx.AsyncClient(base_url=server, verify=context, timeout=15)
        self.recorder = recorder
        self.token = ""

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        self.recorder.http(method, path, response)
        return response

    async def expect(self, status: int, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        if response.status_code != status:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    async def sign_up(self, username: str) -> None:
        body = await self.expect(
            201, "POST", "/api/v1/accounts", json={"username": username, "password": PASSWORD}
        )
        self.token = body["token"]

    async def sign_in(self, username: str) -> None:
        body = await self.expect(
            201, "POST", "/api/v1/sessions", json={"username": username, "password": PASSWORD}
        )
        self.token = body["token"]

    async def close(self) -> None:
        await self.client.aclose()


class Events:
    """The WebSocket event stream: records every frame, hands out frames by type."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, url: str, token: str, context: ssl.SSLContext | None) -> None:
        import websockets

        self._ws = await websockets.connect(url, ssl=context, compression=None, max_size=2**22)
        await self.send({"type": "auth", "token": token})
        self._reader = asyncio.create_task(self._read())
        ready = await self.next_of("ready", timeout=10)
        if ready is None:
            raise RuntimeError("the event stream never said ready")

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self._ws:
                frame = json.loads(raw)
                self.recorder.data["frames_received"].append(frame)
                await self.queue.put(frame)

    async def send(self, frame: dict[str, Any]) -> None:
        self.recorder.data["frames_sent"].append(frame)
        await self._ws.send(json.dumps(frame))

    async def next_of(self, *types: str, timeout: float) -> dict[str, Any] | None:
        """The next frame of one of these types; frames of other types are dropped
        (they stay recorded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                frame = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                return None
            if frame.get("type") in types:
                return frame
        return None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()


def pick_turn_url(ice_servers: list[dict[str, Any]], transport: str) -> dict[str, Any] | None:
    """The handed-out TURN URL for this transport (udp, tcp or tls), with its credentials."""
    for server in ice_servers:
        for url in server["urls"]:
            scheme, _, rest = url.partition(":")
            kind = "tls" if scheme == "turns" else rest.partition("transport=")[2] or "udp"
            if scheme.startswith("turn") and kind == transport:
                return {
                    "url": url,
                    "username": server["username"],
                    "credential": server["credential"],
                }
    return None


def stun_url_for(turn_url: str) -> str:
    """A STUN URL on the relay's own port: coturn answers Binding requests there, and a
    worst-case client uses it to learn (and then send) its NAT's public address."""
    rest = turn_url.partition(":")[2].partition("?")[0]
    return f"stun:{rest}"


class Media:
    """The peer connection, with every candidate and the relay's policy ignored."""

    def __init__(self, turn: dict[str, Any], tone: float) -> None:
        from aiortc import (
            RTCConfiguration,
            RTCIceServer,
            RTCIceTransportPolicy,
            RTCPeerConnection,
        )

        from ringfence.client.media import ToneTrack

        servers = [
            RTCIceServer(
                urls=[turn["url"]], username=turn["username"], credential=turn["credential"]
            )
        ]
        if not turn["url"].startswith("turns:"):
            servers.append(RTCIceServer(urls=[stun_url_for(turn["url"])]))
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.ALL)
        )
        self.pc.addTrack(ToneTrack(tone, amplitude=0.4))
        self.samples: deque[Any] = deque(maxlen=150)
        self.frames = 0
        self.sample_rate = 48000
        self._readers: list[asyncio.Task[None]] = []
        self._remote_set = asyncio.Event()
        self._pending: list[dict[str, Any]] = []

        @self.pc.on("track")
        def _on_track(track: Any) -> None:
            self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                channels = len(frame.layout.channels)
                self.samples.append(frame.to_ndarray().reshape(-1, channels)[:, 0])
                self.sample_rate = frame.sample_rate
                self.frames += 1

    async def local_sdp(self, offer_sdp: str | None) -> str:
        from aiortc import RTCSessionDescription

        if offer_sdp is None:
            await self.pc.setLocalDescription(await self.pc.createOffer())
        else:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            self._remote_set.set()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        self._remote_set.set()
        for candidate in self._pending:
            await self.add_candidate(candidate)
        self._pending.clear()

    async def add_candidate(self, candidate: dict[str, Any]) -> None:
        from aiortc.sdp import candidate_from_sdp

        if not self._remote_set.is_set():
            self._pending.append(candidate)
            return
        text = candidate.get("candidate", "")
        if not text:
            return
        parsed = candidate_from_sdp(text.split(":", 1)[1])
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(parsed)

    async def wait_connected(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or loop.time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def selected_pair(self) -> dict[str, Any] | None:
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.sender.transport.transport
            connection = ice._connection  # aioice keeps the nominated pair here
            pair = connection._nominated.get(1)
            if pair is None:
                continue
            local, remote = pair.local_candidate, pair.remote_candidate
            relay_transport = None
            if local.type == "relay":
                relay_transport = "tls" if connection.turn_ssl else connection.turn_transport
            return {
                "local": {"type": local.type, "address": local.host, "port": local.port},
                "remote": {"type": remote.type, "address": remote.host, "port": remote.port},
                "local_relay_transport": relay_transport,
            }
        return None

    def audio(self) -> dict[str, Any]:
        import numpy as np

        if not self.samples:
            return {"frames": self.frames, "dominant_hz": None, "rms": 0.0}
        audio = np.concatenate(list(self.samples)).astype(np.float64)
        audio -= audio.mean()
        rms = float(math.sqrt(float(np.mean(audio**2))))
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        freqs = np.fft.rfftfreq(len(audio), d=1 / self.sample_rate)
        dominant = float(freqs[int(np.argmax(spectrum))])
        return {"frames": self.frames, "dominant_hz": dominant, "rms": rms}

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()


def candidate_frames(call_id: str, sdp: str) -> list[dict[str, Any]]:
    """Every candidate of a local description as a trickle frame."""
    frames = []
    mid: str | None = None
    index = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=candidate:"):
            frames.append(
                {
                    "type": "call.candidate",
                    "call_id": call_id,
                    "candidate": {
                        "candidate": line[len("a=") :],
                        "sdpMid": mid,
                        "sdpMLineIndex": max(index, 0),
                    },
                }
            )
    return frames


async def gather(
    ice_servers: list[dict[str, Any]], transport: str, tone: float, offer: str | None
) -> tuple[Media, str, dict[str, Any]]:
    """A peer connection with its local description. ``auto`` takes the relay over UDP
    and, when that gathers no relay candidate (UDP blocked), over TCP, then TLS: what a
    browser does with the list of URLs it was given."""
    order = ["udp", "tcp", "tls"] if transport == "auto" else [transport]
    last: tuple[Media, str, dict[str, Any]] | None = None
    for kind in order:
        turn = pick_turn_url(ice_servers, kind)
        if turn is None:
            continue
        if last is not None:
            await last[0].close()
        media = Media(turn, tone)
        sdp = await media.local_sdp(offer)
        last = (media, sdp, turn)
        if " typ relay" in sdp:
            return last
    if last is None:
        raise RuntimeError(f"no TURN URL for {transport} in {ice_servers}")
    return last


def ssl_context(cafile: str | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=cafile) if cafile else None


def ws_url(server: str) -> str:
    scheme, rest = server.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/v1/events"


async def run_account(args: argparse.Namespace, recorder: Recorder) -> None:
    http = Http(args.server, ssl_context(args.cafile) or True, recorder)
    try:
        if args.sign_up:
            await http.sign_up(args.username)
        else:
            await http.sign_in(args.username)
        if args.direct:
            await http.expect(
                200, "PATCH", "/api/v1/me/settings", json={"direct_connections": args.direct}
            )
        for username in args.follow:
            await http.expect(204, "PUT", f"/api/v1/me/following/{username}")
        for username in args.message:
            await http.expect(
                201,
                "POST",
                f"/api/v1/conversations/{username}/messages",
                json={"text": f"hi {username}, may I call you?"},
            )
    finally:
        await http.close()


async def run_call(args: argparse.Namespace, recorder: Recorder) -> None:
    context = ssl_context(args.cafile)
    http = Http(args.server, context or True, recorder)
    events = Events(recorder)
    media: Media | None = None
    try:
        await http.sign_in(args.username)
        await events.open(ws_url(args.server), http.token, context)
        started = await http.expect(
            201, "POST", "/api/v1/calls", json={"to": args.to, "media": "audio"}
        )
        call_id = started["call_id"]
        recorder.data["policy_from_server"] = started["ice_transport_policy"]
        media, sdp, turn = await gather(
            started["ice_servers"], args.turn_transport, args.tone, None
        )
        recorder.data["turn_url_used"] = turn["url"]
        recorder.data["local_candidates"] = [
            f["candidate"]["candidate"] for f in candidate_frames(call_id, sdp)
        ]
        await events.send({"type": "call.offer", "call_id": call_id, "sdp": sdp})
        for frame in candidate_frames(call_id, sdp):
            await events.send(frame)
        answer = await events.next_of("call.answer", "call.ended", timeout=args.ring_timeout)
        if answer is None or answer["type"] != "call.answer":
            raise RuntimeError(f"no answer: {answer}")
        forward = asyncio.create_task(forward_candidates(events, media))
        await media.accept_answer(answer["sdp"])
        recorder.data["connected"] = await media.wait_connected(CONNECT_TIMEOUT_S)
        if recorder.data["connected"]:
            await asyncio.sleep(args.talk)
        recorder.data["selected_pair"] = media.selected_pair()
        recorder.data["audio"] = media.audio()
        forward.cancel()
        await events.send({"type": "call.hangup", "call_id": call_id})
        await events.next_of("call.ended", timeout=5)
        if not recorder.data["connected"]:
            raise RuntimeError(f"did not connect: {media.pc.connectionState}")
    finally:
        if media is not None:
            await media.close()
        await events.close()
        await http.close()


async def forward_candidates(events: Events, media: Media) -> None:
    """Add every trickled candidate the server forwards, until cancelled."""
    while True:
        frame = await events.next_of("call.candidate", timeout=3600)
        if frame is not None:
            try:
                await media.add_candidate(frame["candidate"])
            except Exception as exc:  # a malformed candidate must not stop the call
                events.recorder.data["errors"].append(f"addIceCandidate: {exc!r}")


async def run_answer(args: argparse.Namespace, recorder: Recorder) -> None:
    context = ssl_context(args.cafile)
    http = Http(args.server, context or True, recorder)
    events = Events(recorder)
    media: Media | None = None
    try:
        await http.sign_in(args.username)
        await events.open(ws_url(args.server), http.token, context)
        print("READY", flush=True)
        incoming = await events.next_of("call.incoming", timeout=args.ring_timeout)
        if incoming is None:
            raise RuntimeError("no call came in")
        call_id = incoming["call_id"]
        recorder.data["policy_from_server"] = incoming["ice_transport_policy"]
        media, sdp, turn = await gather(
            incoming["ice_servers"], args.turn_transport, args.tone, incoming["sdp"]
        )
        recorder.data["turn_url_used"] = turn["url"]
        recorder.data["local_candidates"] = [
            f["candidate"]["candidate"] for f in candidate_frames(call_id, sdp)
        ]
        await events.send({"type": "call.answer", "call_id": call_id, "sdp": sdp})
        for frame in candidate_frames(call_id, sdp):
            await events.send(frame)
        # Candidates and the end of the call arrive on one stream, in order.
        answering = media
        connected = asyncio.create_task(answering.wait_connected(CONNECT_TIMEOUT_S))

        def snapshot(task: asyncio.Task[bool]) -> None:
            # The pair as soon as ICE connects: once the caller hangs up, the transport
            # closes and aioice forgets it.
            if not task.cancelled() and task.result():
                recorder.data["selected_pair"] = answering.selected_pair()

        connected.add_done_callback(snapshot)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT_S + args.ring_timeout
        ended: dict[str, Any] | None = None
        while ended is None and loop.time() < deadline:
            event = await events.next_of("call.candidate", "call.ended", timeout=1)
            if event is None:
                continue
            if event["type"] == "call.ended":
                ended = event
                continue
            try:
                await media.add_candidate(event["candidate"])
            except Exception as exc:  # a malformed candidate must not stop the call
                recorder.data["errors"].append(f"addIceCandidate: {exc!r}")
        recorder.data["connected"] = connected.done() and connected.result()
        connected.cancel()
        recorder.data["audio"] = media.audio()
        recorder.data["ended"] = ended
        if not recorder.data["connected"]:
            raise RuntimeError(f"did not connect: {media.pc.connectionState}")
    finally:
        if media is not None:
            await media.close()
        await events.close()
        await http.close()


async def run_health(args: argparse.Namespace, recorder: Recorder) -> None:
    """Wait until the server answers /healthz from this namespace (through the NAT)."""
    deadline = time.monotonic() + args.timeout
    last = ""
    while time.monotonic() < deadline:
        if args.cafile and not Path(args.cafile).exists():
            await asyncio.sleep(0.2)
            continue
        try:
            async with httpx.AsyncClient(verify=ssl_context(args.cafile) or True, timeout=2) as c:
                response = await c.get(f"{args.server}/healthz")
            if response.status_code == 200:
                return
            last = f"status {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{args.server} never became healthy: {last}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["account", "call", "answer", "health"])
    parser.add_argument("--server", required=True, help="https://ADDRESS:PORT")
    parser.add_argument("--cafile", help="certificate to trust (the server's self-signed one)")
    parser.add_argument("--username", default="")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sign-up", action="store_true")
    parser.add_argument("--direct", choices=["nobody", "following", "everyone"])
    parser.add_argument("--follow", action="append", default=[])
    parser.add_argument("--message", action="append", default=[])
    parser.add_argument("--to", default="")
    parser.add_argument("--tone", type=float, default=440.0)
    parser.add_argument("--talk", type=float, default=4.0, help="seconds of audio once connected")
    parser.add_argument("--ring-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--turn-transport", choices=["auto", "udp", "tcp", "tls"], default="auto")
    parser.add_argument("--debug", action="store_true", help="log aiortc and aioice to stderr")
    args = parser.parse_args()
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

    recorder = Recorder(args.command, args.username)
    work = {"account": run_account, "call": run_call, "answer": run_answer, "health": run_health}
    status = 0
    try:
        asyncio.run(work[args.command](args, recorder))
    except Exception as exc:
        recorder.data["errors"].append(f"{type(exc).__name__}: {exc}")
        print(f"peer {args.command} {args.username}: {exc!r}", file=sys.stderr)
        status = 1
    if args.out is not None:
        recorder.write(args.out)
    return status


if __name__ == "__main__":
    sys.exit(main())
