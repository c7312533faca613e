"""Worker: call set-up time with real aiortc peers, through Ringfence and without it.

Four ways of setting up the same call between the same kind of peers, in one process,
interleaved so that a change in machine load hits them alike:

- ``server-relay``: POST /api/v1/calls, call.offer / call.incoming / call.answer over
  the server's WebSockets, media through coturn (both sides relayed: the default);
- ``local-relay``: the same peers and the same coturn, the SDP handed over in-process
  with credentials minted locally: what a relayed call costs without the server;
- ``server-direct`` / ``local-direct``: both sides allow direct connections
  (``direct_connections = "everyone"``), ICE may use host candidates.

The server-minus-local difference is what Ringfence's signaling adds. Host candidates
are restricted to 127.0.0.1 (aioice leaves loopback out by default), so that no ICE
check is ever sent to another address of this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import aioice.ice
import websockets
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from bench.http1 import HttpClient
from bench.worker import WorkerState
from ringfence.client.media import ToneTrack
from ringfence.turn.credentials import TurnCredentialIssuer


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_only  # ICE checks stay on loopback


class Side:
    """One aiortc peer sending a tone, with timestamps of its milestones."""

    def __init__(self, ice_servers: list[dict[str, Any]], policy: str, tone: float) -> None:
        loop = asyncio.get_running_loop()
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[
                    RTCIceServer(
                        urls=s["urls"], username=s.get("username"), credential=s.get("credential")
                    )
                    for s in ice_servers
                ],
                iceTransportPolicy=(
                    RTCIceTransportPolicy.RELAY if policy == "relay" else RTCIceTransportPolicy.ALL
                ),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self.connected: asyncio.Future[float] = loop.create_future()
        self.first_audio: asyncio.Future[float] = loop.create_future()
        self._readers: list[asyncio.Task[None]] = []
        self.pc.addTrack(ToneTrack(tone))

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            state = self.pc.connectionState
            if state == "connected" and not self.connected.done():
                self.connected.set_result(time.monotonic())
            elif state == "failed" and not self.connected.done():
                self.connected.set_exception(RuntimeError("ICE/DTLS failed"))

        @self.pc.on("track")
        def _track(track: Any) -> None:
            self._readers.append(loop.create_task(self._read(track)))

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            await track.recv()
            if not self.first_audio.done():
                self.first_audio.set_result(time.monotonic())
            while True:
                await track.recv()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def pair_types(self) -> str:
        for transceiver in self.pc.getTransceivers():
            pair = transceiver.sender.transport.transport._connection._nominated.get(1)
            if pair is not None:
                return f"{pair.local_candidate.type}/{pair.remote_candidate.type}"
        return "?"

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await self.pc.close()


class Socket:
    """An authenticated WebSocket with a queue of its events."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str) -> Socket:
        ws = await websockets.connect(url, compression=None, max_size=2**22)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if ready.get("type") != "ready":
            raise RuntimeError(f"not ready: {ready}")
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for msg in self.ws:
                self.events.put_nowait(json.loads(msg))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(
        self, kind: str, call_id: str, timeout: float = 15
    ) -> tuple[dict[str, Any], float]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event.get("type") == "error" and event.get("call_id") in (None, call_id):
                    raise RuntimeError(f"server error: {event}")
                if event.get("type") == kind and event.get("call_id") == call_id:
                    return event, time.monotonic()

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


async def _finish(row: dict[str, Any], t0: float, caller: Side, callee: Side) -> None:
    async with asyncio.timeout(30):
        c1, c2 = await asyncio.gather(caller.connected, callee.connected)
        a1, a2 = await asyncio.gather(caller.first_audio, callee.first_audio)
    row["connected"] = max(c1, c2) - t0
    row["first_audio"] = max(a1, a2) - t0
    row["pair"] = caller.pair_types()


async def _server_call(
    http: HttpClient, caller_ws: Socket, callee_ws: Socket, pair: dict[str, str]
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    t0 = time.monotonic()
    status, body = await http.request(
        "POST", "/api/v1/calls", {"to": pair["callee"], "media": "audio"}, pair["caller_token"]
    )
    if status != 201:
        raise RuntimeError(f"POST /api/v1/calls: {status} {body[:200]!r}")
    started = json.loads(body)
    call_id = started["call_id"]
    t_post = time.monotonic()
    caller = Side(started["ice_servers"], started["ice_transport_policy"], 440)
    callee: Side | None = None
    try:
        offer = await caller.offer()
        t_offer = time.monotonic()
        await caller_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
        incoming, t_in = await callee_ws.next("call.incoming", call_id)
        callee = Side(incoming["ice_servers"], incoming["ice_transport_policy"], 660)
        answer = await callee.answer(incoming["sdp"])
        t_answer = time.monotonic()
        await callee_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
        answered, t_ans_in = await caller_ws.next("call.answer", call_id)
        await caller.accept(answered["sdp"])
        row.update(
            post=t_post - t0,
            offer_gather=t_offer - t_post,
            offer_relay=t_in - t_offer,
            answer_gather=t_answer - t_in,
            answer_relay=t_ans_in - t_answer,
            signaling=(t_post - t0) + (t_in - t_offer) + (t_ans_in - t_answer),
        )
        await _finish(row, t0, caller, callee)
    finally:
        await caller_ws.send({"type": "call.hangup", "call_id": call_id})
        with contextlib.suppress(Exception):
            await caller_ws.next("call.ended", call_id, timeout=5)
        await caller.close()
        if callee is not None:
            await callee.close()
    return row


async def _local_call(issuer: TurnCredentialIssuer, policy: str) -> dict[str, Any]:
    def ice() -> list[dict[str, Any]]:
        cred = issuer.issue()
        return [{"urls": list(cred.urls), "username": cred.username, "credential": cred.credential}]

    row: dict[str, Any] = {}
    t0 = time.monotonic()
    caller = Side(ice(), policy, 440)
    callee: Side | None = None
    try:
        offer = await caller.offer()
        t_offer = time.monotonic()
        callee = Side(ice(), policy, 660)
        answer = await callee.answer(offer)
        t_answer = time.monotonic()
        await caller.accept(answer)
        row.update(
            post=0.0,
            offer_gather=t_offer - t0,
            offer_relay=0.0,
            answer_gather=t_answer - t_offer,
            answer_relay=0.0,
            signaling=0.0,
        )
        await _finish(row, t0, caller, callee)
    finally:
        await caller.close()
        if callee is not None:
            await callee.close()
    return row


async def run(
    ws: WorkerState,
    *,
    http_url: str,
    ws_url: str,
    relay_pairs: list[dict[str, str]],
    direct_pairs: list[dict[str, str]],
    turn_urls: list[str],
    turn_secret: str,
    repeats: int,
    warmup: int,
    bar: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``warmup + repeats`` calls of each mode, interleaved; warm-up calls are dropped.
    Each server call uses a pair of its own (the server limits calls per pair)."""
    issuer = TurnCredentialIssuer(turn_secret.encode(), turn_urls, 600, clock=time.time)
    parts = urlsplit(http_url)
    http = HttpClient(parts.hostname or "127.0.0.1", parts.port or 80)
    sockets: dict[str, Socket] = {}

    async def socket(token: str) -> Socket:
        if token not in sockets:
            sockets[token] = await Socket.open(ws_url, token)
        return sockets[token]

    results: dict[str, list[dict[str, Any]]] = {
        "server-relay": [],
        "local-relay": [],
        "server-direct": [],
        "local-direct": [],
    }
    try:
        for i in range(warmup + repeats):
            for mode in results:
                if mode.startswith("server"):
                    pair = (relay_pairs if mode == "server-relay" else direct_pairs)[i]
                    caller_ws = await socket(pair["caller_token"])
                    callee_ws = await socket(pair["callee_token"])
                    row = await _server_call(http, caller_ws, callee_ws, pair)
                else:
                    row = await _local_call(issuer, "relay" if mode == "local-relay" else "all")
                if i >= warmup:
                    results[mode].append(row)
                if bar:
                    ws.progress(bar, 1)
                await asyncio.sleep(0.2)
    finally:
        http.close()
        for sock in sockets.values():
            with contextlib.suppress(Exception):
                await sock.close()
    return results


HANDLERS = {"run": run}
