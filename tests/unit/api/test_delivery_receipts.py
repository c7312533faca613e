"""Delivery receipts and where the other person has got to (issue 12, part 1).

"Delivered" means one of the recipient's devices has the message: a connected client
says so with a ``message.delivered`` frame, any client with ``POST .../delivered``.
It follows the reciprocal ``read_receipts`` setting and every rule a read receipt
follows, so it cannot reveal a block, a setting or an unopened request any more
than "Read" can. ``GET /api/v1/conversations`` says how far the other person has
read and received my messages, so a reloaded client shows the same as a live one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api, LiveServer, Socket, make_settings, open_socket
from tests.unit.api.test_read_state import friends, read, send, set_settings


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    settings = make_settings(tmp_path, database_url)
    async with (
        LiveServer(settings) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        yield live_server, Api(client)


async def positions(api: Api, token: str, user: str) -> tuple[Any, Any]:
    """``(peer_read_up_to, peer_delivered_up_to)`` of the conversation with ``user``."""
    resp = await api.call("GET", "/api/v1/conversations", token)
    assert resp.status_code == 200, resp.text
    (conv,) = [c for c in resp.json()["conversations"] if c["user"]["username"] == user]
    return conv["peer_read_up_to"], conv["peer_delivered_up_to"]


async def ack(sock: Socket, user: str, up_to: Any) -> None:
    await sock.send({"type": "message.delivered", "user": user, "up_to": up_to})


async def test_the_sender_hears_once_a_device_has_the_message_and_sees_it_after_a_reload(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    first = await send(api, alice, "bob", "are you there?")
    assert await positions(api, alice, "bob") == (0, 0)  # shared, nothing yet

    a_ws = await open_socket(live_server.ws_url, alice)
    phone = await open_socket(live_server.ws_url, bob)
    laptop = await open_socket(live_server.ws_url, bob)
    await ack(phone, "alice", first)
    event = await a_ws.recv_type("message.delivered")
    assert (event["user"], event["up_to"]) == ("bob", first)
    # The second device has it too: that tells alice nothing new, so she isn't told.
    await ack(laptop, "alice", first)
    await a_ws.nothing_within(0.3)
    # Bob's devices hear nothing of it (it changes nothing they show), nor any error.
    await phone.nothing_within(0.1)
    await laptop.nothing_within(0.1)
    assert await positions(api, alice, "bob") == (0, first)

    # Reading implies delivery: the read receipt moves both, with no second event.
    second = await send(api, alice, "bob", "hello?")
    assert await read(api, bob, "alice", second) == 204
    assert (await a_ws.recv_type("message.read"))["up_to"] == second
    assert await positions(api, alice, "bob") == (second, second)
    await ack(phone, "alice", second)
    await a_ws.nothing_within(0.3)

    # The HTTP route says the same for a client without a socket.
    third = await send(api, alice, "bob", "one more")
    resp = await api.call(
        "POST", "/api/v1/conversations/alice/delivered", bob, json={"up_to": third}
    )
    assert resp.status_code == 204, resp.text
    assert (await a_ws.recv_type("message.delivered"))["up_to"] == third
    assert await positions(api, alice, "bob") == (second, third)

    # A device of alice's that catches up later reads the receipts from the stream.
    late = await open_socket(live_server.ws_url, alice, since=0)
    assert (await late.recv_type("message.delivered"))["up_to"] == first
    for sock in (a_ws, phone, laptop, late):
        await sock.close()


@pytest.mark.parametrize("who_turns_it_off", ["recipient", "sender"])
async def test_delivery_receipts_follow_the_reciprocal_read_receipts_setting(
    server: tuple[LiveServer, Api], who_turns_it_off: str
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    await set_settings(api, bob if who_turns_it_off == "recipient" else alice, read_receipts=False)
    message = await send(api, alice, "bob", "did you get this?")
    a_ws = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)
    await ack(b_ws, "alice", message)
    assert await read(api, bob, "alice", message) == 204
    await a_ws.nothing_within(0.5)
    # Bob's side still knows where he is (his unread count), but alice is shown nothing
    # (0), in either direction: the same as for a block, below.
    assert await positions(api, alice, "bob") == (0, 0)
    assert await positions(api, bob, "alice") == (0, 0)
    for sock in (a_ws, b_ws):
        await sock.close()


async def test_a_block_looks_like_receipts_switched_off(server: tuple[LiveServer, Api]) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    before = await send(api, alice, "bob", "before the block")
    resp = await api.call("PUT", "/api/v1/me/blocked/alice", bob)
    assert resp.status_code == 204
    withheld = await send(api, alice, "bob", "after the block")
    a_ws = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)
    await ack(b_ws, "alice", withheld)
    await a_ws.nothing_within(0.5)
    assert await positions(api, alice, "bob") == (0, 0)
    # Unblocked, alice sees how far bob's devices got: only what he could see.
    resp = await api.call("DELETE", "/api/v1/me/blocked/alice", bob)
    assert resp.status_code == 204
    assert await positions(api, alice, "bob") == (0, before)
    for sock in (a_ws, b_ws):
        await sock.close()


async def test_a_request_is_not_reported_delivered_until_it_is_accepted(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, carol = await api.register("alice"), await api.register("carol")
    first = await send(api, alice, "carol", "hello stranger")
    a_ws = await open_socket(live_server.ws_url, alice)
    c_ws = await open_socket(live_server.ws_url, carol)
    await ack(c_ws, "alice", first)
    await a_ws.nothing_within(0.5)
    assert await positions(api, alice, "carol") == (0, 0)

    resp = await api.call("POST", "/api/v1/conversations/alice/accept", carol)
    assert resp.status_code == 200
    second = await send(api, alice, "carol", "thanks")
    await ack(c_ws, "alice", second)
    assert (await a_ws.recv_type("message.delivered"))["up_to"] == second
    assert await positions(api, alice, "carol") == (0, second)
    for sock in (a_ws, c_ws):
        await sock.close()


async def test_bad_delivery_receipts_are_refused_clearly(server: tuple[LiveServer, Api]) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    await api.register("dave")
    message = await send(api, alice, "bob", "hi")
    b_ws = await open_socket(live_server.ws_url, bob)
    for bad in (0, -1, "12", 1.5, None, 2**63, True):
        await ack(b_ws, "alice", bad)
        error = await b_ws.recv_type("error")
        assert error["error"] == "malformed", bad
        assert "up_to" in error["detail"]
    await b_ws.send({"type": "message.delivered", "up_to": message})
    assert (await b_ws.recv_type("error"))["error"] == "malformed"
    await b_ws.send({"type": "message.delivered", "user": "alice", "up_to": 1, "extra": 1})
    assert (await b_ws.recv_type("error"))["error"] == "malformed"
    # Someone with no conversation, or nobody at all: nothing to record, nothing said.
    for user in ("dave", "nobody", "x" * 64, "bad name"):
        await ack(b_ws, user, message)
    await b_ws.nothing_within(0.3)
    # The socket still works.
    await ack(b_ws, "alice", message)
    await b_ws.send({"type": "ping"})
    assert (await b_ws.recv_type("pong"))["type"] == "pong"
    await b_ws.close()

    for bad in (0, "12", None, 2**63):
        resp = await api.call(
            "POST", "/api/v1/conversations/alice/delivered", bob, json={"up_to": bad}
        )
        assert resp.status_code == 422, bad
        assert resp.json()["error"] == "invalid_request"
    resp = await api.call(
        "POST", "/api/v1/conversations/dave/delivered", bob, json={"up_to": message}
    )
    assert (resp.status_code, resp.json()["error"]) == (404, "conversation_not_found")
    resp = await api.call("POST", "/api/v1/conversations/alice/delivered", None, json={"up_to": 1})
    assert resp.status_code == 401
