"""LeanWebSocketProtocol under a real uvicorn server, driven by real WebSocket clients.

The app here is a small scripted ASGI app, so each test can see exactly what the app
was handed (events, codes, order) as well as what the client saw. Ringfence's own
socket runs on the same class in every live-server test.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ringfence.api import websocket_protocol
from ringfence.api.websocket_protocol import LeanWebSocketProtocol, first_ping_delay

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
WAIT_S = 10  # for an event that must happen; never a bound on how fast


class App:
    """An ASGI app whose WebSocket behaviour is picked by the path."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.release = asyncio.Event()
        self.done: dict[str, asyncio.Event] = {}
        self.scopes: list[Scope] = []
        self.buffered: list[int] = []

    def finished(self, path: str) -> asyncio.Event:
        return self.done.setdefault(path, asyncio.Event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        seen = self.events.setdefault(path, [])
        try:
            await getattr(self, path.strip("/"))(scope, receive, send, seen)
        finally:
            self.finished(path).set()

    async def echo(self, scope: Scope, receive: Receive, send: Send, seen: list[Any]) -> None:
        self.scopes.append(scope)
        seen.append(await receive())
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            seen.append(event)
            if event["type"] == "websocket.disconnect":
                return
            await send(
                {"type": "websocket.send", **{k: event[k] for k in ("text", "bytes") if k in event}}
            )

    async def refuse(self, scope: Scope, receive: Receive, send: Send, seen: list[Any]) -> None:
        seen.append(await receive())
        await send({"type": "websocket.close"})
        seen.append(await receive())

    async def boom(self, scope: Scope, receive: Receive, send: Send, seen: list[Any]) -> None:
        await receive()
        raise RuntimeError("the app failed before accepting")

    async def hold(self, scope: Scope, receive: Receive, send: Send, seen: list[Any]) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await self.release.wait()
        while True:
            event = await receive()
            seen.append(event)
            if event["type"] == "websocket.disconnect":
                return

    async def bye(self, scope: Scope, receive: Receive, send: Send, seen: list[Any]) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
        seen.append(await receive())
        seen.append(await receive())  # and again: still the disconnect, never a hang

    async def flood(self, scope: Scope, receive: Receive, send: Send, seen: list[Any]) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        chunk = os.urandom(256 * 1024)
        for i in range(200):  # 50 MiB, far past any socket buffer
            await send({"type": "websocket.send", "bytes": i.to_bytes(4, "big") + chunk})
            transport = _protocol_transport(self)
            if transport is not None:
                self.buffered.append(transport.get_write_buffer_size())
        seen.append(await receive())

    server: uvicorn.Server | None = None


def _protocol_transport(app: App) -> asyncio.Transport | None:
    assert app.server is not None
    for conn in app.server.server_state.connections:
        if isinstance(conn, LeanWebSocketProtocol):
            return conn._transport
    return None


class Live:
    def __init__(self, app: App, server: uvicorn.Server, port: int) -> None:
        self.app, self.server, self.port = app, server, port

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def protocols(self) -> list[LeanWebSocketProtocol]:
        return [
            c for c in self.server.server_state.connections if isinstance(c, LeanWebSocketProtocol)
        ]


async def _serve(**options: Any) -> tuple[Live, asyncio.Task[None]]:
    app = App()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, ws=LeanWebSocketProtocol, log_config=None,
        lifespan="on", timeout_graceful_shutdown=2, **options,
    )  # fmt: skip
    server = uvicorn.Server(config)
    app.server = server
    config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:
            await asyncio.sleep(0.01)
    return Live(app, server, server.servers[0].sockets[0].getsockname()[1]), task


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    served, task = await _serve(ws_max_size=64 * 1024, ws_ping_interval=None)
    yield served
    served.server.should_exit = True
    await asyncio.wait_for(task, WAIT_S)


async def test_messages_both_ways_in_order_with_the_scope_the_app_expects(live: Live) -> None:
    async with websockets.connect(live.url("/echo?x=1"), max_size=None) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        await ws.send(["frag", "mented"])  # one message in three frames
        assert await ws.recv() == "fragmented"
    await asyncio.wait_for(live.app.finished("/echo").wait(), WAIT_S)
    events = live.app.events["/echo"]
    assert events[0] == {"type": "websocket.connect"}
    assert [e.get("text", e.get("bytes")) for e in events[1:4]] == [
        "héllo",
        b"\x00\x01",
        "fragmented",
    ]
    assert events[-1]["type"] == "websocket.disconnect"
    assert events[-1]["code"] == 1000
    scope = live.app.scopes[0]
    assert scope["path"] == "/echo"
    assert scope["query_string"] == b"x=1"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "ws"
    headers = dict(scope["headers"])
    assert headers[b"upgrade"].lower() == b"websocket"
    assert all(name == name.lower() for name, _ in scope["headers"])


async def test_closing_before_accepting_is_a_403_and_no_socket(live: Live) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(live.url("/refuse"))
    assert refused.value.response.status_code == 403
    await asyncio.wait_for(live.app.finished("/refuse").wait(), WAIT_S)
    assert live.app.events["/refuse"][-1]["type"] == "websocket.disconnect"


async def test_an_app_that_fails_before_accepting_is_a_500(live: Live) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(live.url("/boom"))
    assert refused.value.response.status_code == 500


async def test_a_request_that_is_not_a_websocket_handshake_gets_a_400(live: Live) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"  # no Sec-WebSocket-Key
    )
    status = await asyncio.wait_for(reader.readline(), WAIT_S)
    assert status.startswith(b"HTTP/1.1 400")
    writer.close()


async def test_a_frame_over_the_limit_closes_with_1009_and_the_app_hears_it(live: Live) -> None:
    async with websockets.connect(live.url("/echo"), max_size=None) as ws:
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await asyncio.wait_for(live.app.finished("/echo").wait(), WAIT_S)
    assert live.app.events["/echo"][-1]["code"] == 1009


async def test_the_apps_close_reaches_the_client_and_later_reads_see_the_disconnect(
    live: Live,
) -> None:
    async with websockets.connect(live.url("/bye")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")
    await asyncio.wait_for(live.app.finished("/bye").wait(), WAIT_S)
    assert [e["type"] for e in live.app.events["/bye"]] == ["websocket.disconnect"] * 2
    assert live.app.events["/bye"][0]["code"] == 4000


async def test_the_clients_close_code_and_reason_reach_the_app(live: Live) -> None:
    async with websockets.connect(live.url("/echo")) as ws:
        await ws.close(4321, "leaving")
    await asyncio.wait_for(live.app.finished("/echo").wait(), WAIT_S)
    last = live.app.events["/echo"][-1]
    assert (last["type"], last["code"], last["reason"]) == ("websocket.disconnect", 4321, "leaving")


async def test_a_vanished_client_is_a_1006_disconnect(live: Live) -> None:
    ws = await websockets.connect(live.url("/echo"))
    ws.transport.abort()  # no close frame: the TCP connection just ends
    await asyncio.wait_for(live.app.finished("/echo").wait(), WAIT_S)
    assert live.app.events["/echo"][-1]["code"] == 1006
    assert live.protocols() == []


async def test_reading_pauses_while_the_app_has_not_read_and_nothing_is_lost(live: Live) -> None:
    async with websockets.connect(live.url("/hold")) as ws:
        for i in range(2000):
            await ws.send(f"{i:05d}" + "." * 1000)  # 2 MB, more than the kernel buffers
        [protocol] = live.protocols()
        async with asyncio.timeout(WAIT_S):  # until the server has read what it will
            while not protocol._read_paused:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # and would it read on? (it must not)
        inbox = protocol._inbox or []
        assert protocol._read_paused
        # One read's worth at most (asyncio reads up to 256 KiB), not everything sent.
        assert len(inbox) <= 256 * 1024 // 1005 + 1
        live.app.release.set()
        await ws.close()
    await asyncio.wait_for(live.app.finished("/hold").wait(), WAIT_S)
    texts = [e["text"][:5] for e in live.app.events["/hold"] if "text" in e]
    assert texts == [f"{i:05d}" for i in range(2000)]


async def test_a_client_that_does_not_read_holds_up_the_app_not_the_servers_memory(
    live: Live,
) -> None:
    ws = await websockets.connect(live.url("/flood"), max_size=None, max_queue=1)
    await asyncio.sleep(1)  # the client reads nothing: the server's buffer fills
    assert max(live.app.buffered, default=0) < 8 * 1024 * 1024  # not the 50 MiB sent
    received = [await asyncio.wait_for(ws.recv(), WAIT_S) for _ in range(200)]
    assert [int.from_bytes(m[:4], "big") for m in received] == list(range(200))
    await ws.close()
    await asyncio.wait_for(live.app.finished("/flood").wait(), WAIT_S)


async def test_shutdown_closes_open_sockets_with_1012() -> None:
    served, task = await _serve(ws_ping_interval=None)
    ws = await websockets.connect(served.url("/echo"))
    served.server.should_exit = True
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), WAIT_S)
    await asyncio.wait_for(task, WAIT_S)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1012
    assert served.app.events["/echo"][-1]["code"] == 1012


async def test_keepalive_pings_and_closes_a_peer_that_never_answers() -> None:
    served, task = await _serve(ws_ping_interval=0.2, ws_ping_timeout=0.5)
    try:
        # A client that answers pings stays open through several intervals.
        async with websockets.connect(served.url("/echo"), ping_interval=None) as ws:
            await asyncio.sleep(1.5)
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), WAIT_S) == "still here"
        # A raw client that never answers is closed with 1011.
        sock = socket.create_connection(("127.0.0.1", served.port))
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET /hold HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(WAIT_S):
            while b"\x88" not in data.partition(b"\r\n\r\n")[2]:  # a close frame
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, "closed without a close frame"
                data += chunk
        head, _, frames = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert frames[0] == 0x89  # it pinged first
        close = frames[frames.index(b"\x88") :]
        assert int.from_bytes(close[2:4], "big") == 1011
        sock.close()
    finally:
        served.server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


def test_first_pings_are_spread_over_the_second_half_of_the_interval() -> None:
    assert first_ping_delay(40.0, lambda: 0.0) == 20.0
    assert first_ping_delay(40.0, lambda: 0.5) == 30.0
    # Never later than the interval: a proxy's idle timeout is set against it.
    assert first_ping_delay(40.0, lambda: 1 - 2**-53) <= 40.0
    # Sockets opened in one burst: their first pings fall all over the half.
    delays = [first_ping_delay(40.0) for _ in range(2000)]
    assert all(20.0 <= d <= 40.0 for d in delays)
    assert {int(d // 2) for d in delays} == set(range(10, 20))


async def test_each_socket_draws_its_first_ping_time(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[float] = []

    def recorded(interval: float) -> float:
        asked.append(interval)
        return first_ping_delay(interval)

    monkeypatch.setattr(websocket_protocol, "first_ping_delay", recorded)
    served, task = await _serve(ws_ping_interval=30.0)
    try:
        for _ in range(2):
            async with websockets.connect(served.url("/echo")) as ws:
                await ws.send("hello")
                assert await asyncio.wait_for(ws.recv(), WAIT_S) == "hello"
        assert asked == [30.0, 30.0]
    finally:
        served.server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)
