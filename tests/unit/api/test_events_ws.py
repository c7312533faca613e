"""The real-time WebSocket, over a real server: authentication, fan-out to every
device, gap-free positions and ``since``, bad frames, limits and slow clients."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import Api, LiveServer, Socket, make_settings, open_socket

PASSWORD = "correct horse 1"


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition`` holds; the timeout only stops a broken test hanging."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def connect(server: LiveServer, **kwargs: Any) -> websockets.ClientConnection:
    kwargs.setdefault("compression", None)
    return await websockets.connect(server.ws_url, **kwargs)


async def refused(ws: websockets.ClientConnection) -> tuple[dict[str, Any], int]:
    """The error event a server sends before it closes, and the close code."""
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return event, await close_code(ws)


async def read_until_closed(ws: websockets.ClientConnection) -> tuple[list[dict[str, Any]], int]:
    """Every event until the server closes the socket, and its close code."""
    events: list[dict[str, Any]] = []
    try:
        while True:
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except websockets.ConnectionClosed as exc:
        closed = exc
    assert closed.rcvd is not None, "closed without a close frame"
    return events, closed.rcvd.code


async def close_code(ws: websockets.ClientConnection) -> int:
    return (await read_until_closed(ws))[1]


@pytest.fixture
async def short_auth(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    settings = make_settings(tmp_path, database_url, ws_auth_timeout_s=0.2)
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        yield server, Api(client)


@pytest.fixture
async def small_queue(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    # Bob is flooded with messages on purpose here: the per-account message limits
    # (tested in tests/unit/api/test_message_limits.py) must not stop it first.
    settings = make_settings(
        tmp_path,
        database_url,
        ws_send_queue=8,
        messages_per_minute=100_000,
        message_requests_per_hour=100_000,
    )
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        yield server, Api(client)


async def test_auth_frame_gets_a_ready_answer(live: tuple[LiveServer, Api]) -> None:
    server, api = live
    token = await api.register("alice")
    sock = await open_socket(server.ws_url, token)
    assert sock.ready["type"] == "ready"
    assert sock.ready["user"]["username"] == "alice"
    assert set(sock.ready["user"]) == {"id", "username", "display_name", "verified", "deleted"}
    assert sock.ready["pos"] == 0
    assert isinstance(sock.ready["device_id"], str)
    await sock.close()


async def test_no_auth_frame_in_time_closes_the_socket(
    short_auth: tuple[LiveServer, Api],
) -> None:
    server, _ = short_auth
    ws = await connect(server)
    event, code = await refused(ws)
    assert event["type"] == "error"
    assert event["error"] == "auth_timeout"
    assert code == 4408
    await eventually(lambda: server.services.hub.connection_count() == 0)


@pytest.mark.parametrize(
    "token", ["rf_not-a-real-token", "", "not-even-prefixed", "rf_" + "x" * 200]
)
async def test_a_bad_token_closes_the_socket(live: tuple[LiveServer, Api], token: str) -> None:
    server, _ = live
    ws = await connect(server)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    event, code = await refused(ws)
    assert event["error"] == "unauthorized"
    assert code == 4401


async def test_a_logged_out_token_cannot_open_a_socket(live: tuple[LiveServer, Api]) -> None:
    server, api = live
    token = await api.register("alice")
    await api.call("DELETE", "/api/v1/sessions/current", token)
    ws = await connect(server)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    event, code = await refused(ws)
    assert (event["error"], code) == ("unauthorized", 4401)


async def test_logging_out_closes_that_sessions_open_sockets_only(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    phone = await api.register("alice")
    resp = await api.call(
        "POST", "/api/v1/sessions", json={"username": "alice", "password": "correct horse 1"}
    )
    laptop = resp.json()["token"]
    phone_ws = await open_socket(server.ws_url, phone)
    laptop_ws = await open_socket(server.ws_url, laptop)
    assert (await api.call("DELETE", "/api/v1/sessions/current", phone)).status_code == 204
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await phone_ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    # The other device's session, and its socket, are untouched.
    await laptop_ws.send({"type": "ping"})
    assert (await laptop_ws.recv_type("pong"))["type"] == "pong"


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ('{"type": "ping"}', "auth_required"),
        ('{"token": "rf_x"}', "malformed"),
        ("not json", "malformed"),
        ("[]", "malformed"),
        ('{"type": "auth"}', "malformed"),
        ('{"type": "auth", "token": 12}', "malformed"),
        ('{"type": "auth", "token": "rf_x", "since": -1}', "malformed"),
        ('{"type": "auth", "token": "rf_x", "since": "soon"}', "malformed"),
        ('{"type": "auth", "token": "rf_x", "colour": "red"}', "malformed"),
        (b"\x00binary", "auth_required"),
    ],
)
async def test_a_bad_first_frame_closes_the_socket(
    live: tuple[LiveServer, Api], frame: str | bytes, error: str
) -> None:
    server, _ = live
    ws = await connect(server)
    await ws.send(frame)
    event, code = await refused(ws)
    assert event["type"] == "error"
    assert event["error"] == error
    assert code == 1008


async def test_every_device_of_both_participants_gets_the_message(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    alice_laptop = (
        await api.call("POST", "/api/v1/sessions", json={"username": "alice", "password": PASSWORD})
    ).json()["token"]
    sockets = {
        "alice phone": await open_socket(server.ws_url, alice),
        "alice laptop": await open_socket(server.ws_url, alice_laptop),
        "bob phone": await open_socket(server.ws_url, bob),
        "bob laptop": await open_socket(server.ws_url, bob),
    }
    sent = (await api.send(alice, "bob", "hello everyone", txn_id="t1")).json()["message"]
    for name, sock in sockets.items():
        event = await sock.recv_type("message.new")
        assert event["pos"] == 1, name
        assert event["message"]["id"] == sent["id"]
        assert event["message"]["text"] == "hello everyone"
        assert (event["message"]["sender"], event["message"]["recipient"]) == ("alice", "bob")
        assert event["is_request"] is name.startswith("bob")
        # Only the sender's devices see the txn_id, to match their local echo.
        assert event["message"]["txn_id"] == ("t1" if name.startswith("alice") else None)
    for sock in sockets.values():
        await sock.close()
    await eventually(lambda: server.services.hub.connection_count() == 0)


async def test_positions_are_per_user_and_since_replays_exactly_what_was_missed(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    bob_ws = await open_socket(server.ws_url, bob)
    for i in range(3):
        await api.send(alice if i % 2 else carol, "bob", f"early {i}")
    early = [await bob_ws.recv_type("message.new") for _ in range(3)]
    assert [e["pos"] for e in early] == [1, 2, 3]
    await bob_ws.close()
    # Alice's own stream has its own positions.
    alice_ws = await open_socket(server.ws_url, alice, since=0)
    assert (await alice_ws.recv_type("message.new"))["pos"] == 1
    await alice_ws.close()

    for i in range(4):
        await api.send(alice if i % 2 else carol, "bob", f"missed {i}")
    bob_ws = await open_socket(server.ws_url, bob, since=3)
    assert bob_ws.ready["pos"] == 7
    missed = [await bob_ws.recv() for _ in range(4)]
    assert [e["pos"] for e in missed] == [4, 5, 6, 7]
    assert [e["message"]["text"] for e in missed] == [f"missed {i}" for i in range(4)]
    await bob_ws.nothing_within(0.2)
    await api.send(alice, "bob", "live again")
    live_event = await bob_ws.recv()
    assert (live_event["pos"], live_event["message"]["text"]) == (8, "live again")
    await bob_ws.close()

    # since=0 is the whole stream, in order.
    everything = await open_socket(server.ws_url, bob, since=0)
    assert [(await everything.recv())["pos"] for _ in range(8)] == list(range(1, 9))
    await everything.nothing_within(0.2)
    await everything.close()


async def test_since_ahead_of_the_server_asks_the_client_to_resync(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.send(alice, "bob", "one")
    sock = await open_socket(server.ws_url, bob, since=50)
    assert sock.ready["resync"] is True
    assert sock.ready["pos"] == 1
    await api.send(alice, "bob", "two")
    assert (await sock.recv_type("message.new"))["pos"] == 2
    await sock.close()


async def test_concurrent_senders_reach_the_recipient_in_order_without_gaps(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    bob = await api.register("bob")
    senders = {name: await api.register(name) for name in ("anna", "carl", "dora", "emil")}
    bob_ws = await open_socket(server.ws_url, bob)
    sends = [
        api.send(token, "bob", f"{name} {i}") for i in range(6) for name, token in senders.items()
    ]
    assert {r.status_code for r in await asyncio.gather(*sends)} == {201}
    events = [await bob_ws.recv_type("message.new") for _ in range(len(sends))]
    assert [e["pos"] for e in events] == list(range(1, len(sends) + 1))
    assert len({e["message"]["id"] for e in events}) == len(sends)
    await bob_ws.nothing_within(0.2)
    await bob_ws.close()


async def test_unknown_and_malformed_frames_get_errors_and_the_socket_keeps_working(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    sock = await open_socket(server.ws_url, bob)
    bad: list[tuple[str | bytes, str]] = [
        ('{"type": "teleport"}', "unknown_type"),
        ("{not json", "malformed"),
        ("[1, 2]", "malformed"),
        ('{"type": 7}', "malformed"),
        ('"just a string"', "malformed"),
        ("[" * 10_000 + "]" * 10_000, "malformed"),
        (b"\x01\x02binary", "malformed"),
        (json.dumps({"type": "auth", "token": bob}), "already_authenticated"),
        (json.dumps({"type": "x" * 60_000}), "unknown_type"),
    ]
    for frame, error in bad:
        await sock.ws.send(frame)
        event = await sock.recv()
        assert event["type"] == "error", frame[:40]
        assert event["error"] == error, frame[:40]
        assert isinstance(event["detail"], str)
        assert len(event["detail"]) < 200  # the frame is not echoed back
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}
    await api.send(alice, "bob", "still here")
    assert (await sock.recv_type("message.new"))["message"]["text"] == "still here"
    await sock.close()


async def test_a_frame_over_64_kib_closes_the_socket_with_1009(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    bob = await api.register("bob")
    sock = await open_socket(server.ws_url, bob)
    await sock.send({"type": "ping", "pad": "x" * (60 * 1024)})  # under the limit
    assert (await sock.recv())["type"] in {"pong"}
    await sock.ws.send("x" * (64 * 1024 + 1))
    assert await close_code(sock.ws) == 1009
    await eventually(lambda: server.services.hub.connection_count() == 0)


async def test_a_frame_over_64_kib_before_auth_closes_with_1009(
    live: tuple[LiveServer, Api],
) -> None:
    server, _ = live
    ws = await connect(server)
    await ws.send(json.dumps({"type": "auth", "token": "rf_" + "x" * (70 * 1024)}))
    assert await close_code(ws) == 1009


async def test_compression_is_never_negotiated(live: tuple[LiveServer, Api]) -> None:
    server, api = live
    token = await api.register("alice")
    ws = await connect(server, compression="deflate")  # the client offers it
    assert ws.request is not None
    assert "permessage-deflate" in ws.request.headers.get("Sec-WebSocket-Extensions", "")
    assert ws.response is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    assert ws.protocol.extensions == []
    await ws.send(json.dumps({"type": "auth", "token": token}))
    assert json.loads(await ws.recv())["type"] == "ready"
    await ws.close()


async def test_a_client_that_stops_reading_is_disconnected(
    small_queue: tuple[LiveServer, Api],
) -> None:
    server, api = small_queue
    alice = await api.register("alice")
    bob = await api.register("bob")
    # Bob's client reads its ready frame and then nothing: a tiny receive buffer and a
    # one-message queue make the server's writes back up quickly.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    ws = await websockets.connect(server.ws_url, sock=raw, compression=None, max_queue=1)
    await ws.send(json.dumps({"type": "auth", "token": bob}))
    ready = json.loads(await ws.recv())
    assert ready["type"] == "ready"
    hub = server.services.hub
    assert hub.connection_count() == 1

    sent = 0
    big = "\U0001f600" * 10_000  # 40 KB of UTF-8 per event
    while hub.connection_count() > 0:
        assert sent < 500, "the server kept buffering for a client that does not read"
        assert (await api.send(alice, "bob", big)).status_code == 201
        sent += 1
    # The server gave up on it: no subscription is left to buffer events into.
    assert hub.local_devices(ready["user"]["id"]) == []

    # If the client reads again it finds what was already in flight, then a 1013 close.
    in_flight, code = await read_until_closed(ws)
    assert code == 1013
    received = [event["pos"] for event in in_flight]
    assert received == list(range(1, len(received) + 1))
    assert len(received) < sent

    # Reconnecting with since gets exactly the rest.
    again = await open_socket(server.ws_url, bob, since=received[-1] if received else 0)
    rest = [(await again.recv())["pos"] for _ in range(sent - len(received))]
    assert rest == list(range(len(received) + 1, sent + 1))
    await again.nothing_within(0.2)
    await again.close()


def _secret_windows(secret: str, width: int = 12) -> set[str]:
    """Every ``width``-character piece of a secret: a truncated copy in a log is a leak."""
    return {secret[i : i + width] for i in range(len(secret) - width + 1)}


CLIENT_LOGGERS = ("websockets.client", "httpx", "httpcore", "asyncio")


async def full_flow(server: LiveServer, api: Api) -> list[str]:
    """Register, log in twice, use the socket, message, log out; return the secrets."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    second = (
        await api.call("POST", "/api/v1/sessions", json={"username": "alice", "password": PASSWORD})
    ).json()["token"]
    await api.call("POST", "/api/v1/sessions", json={"username": "alice", "password": "wrong!!!!!"})
    sockets: list[Socket] = [
        await open_socket(server.ws_url, alice),
        await open_socket(server.ws_url, bob, since=0),
    ]
    secret_text = "the-secret-message-body-4711"
    await api.send(bob, "alice", secret_text, txn_id="txn-secret")
    for sock in sockets:
        await sock.recv_type("message.new")
    await api.call("GET", "/api/v1/conversations/bob/messages", second)
    await sockets[0].send({"type": "nonsense", "token": second})
    await sockets[0].recv_type("error")
    await api.call("DELETE", "/api/v1/sessions/current", second)
    ws = await connect(server)
    await ws.send(json.dumps({"type": "auth", "token": second}))
    await refused(ws)
    for sock in sockets:
        await sock.close()
    return [alice, bob, second, PASSWORD, secret_text]


def server_log_leaks(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    leaks = []
    for record in records:
        if record.name.startswith(CLIENT_LOGGERS):
            continue
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            body = secret.removeprefix("rf_")
            if any(piece in text for piece in _secret_windows(body)):
                leaks.append(f"{record.name}: {text[:200]}")
    return leaks


async def test_server_logs_hold_no_token_password_or_message(
    live: tuple[LiveServer, Api], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = live
    caplog.set_level(logging.INFO)
    secrets = await full_flow(server, api)
    assert any(r.name.startswith("uvicorn") for r in caplog.records)  # logs were captured
    assert server_log_leaks(caplog.records, secrets) == []


async def test_server_logs_hold_no_secrets_even_at_debug_level(
    live: tuple[LiveServer, Api], caplog: pytest.LogCaptureFixture
) -> None:
    """At debug level too: the websockets library quotes frames (auth tokens) and
    aiosqlite quotes statement parameters (message text) unless filtered."""
    server, api = live
    caplog.set_level(logging.DEBUG)
    secrets = await full_flow(server, api)
    assert server_log_leaks(caplog.records, secrets) == []
