"""Real calls: two aiortc peers, the real server and a real coturn, no mocks on the path."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Api, LiveServer, open_socket
from tests.integration.calls.conftest import (
    Peer,
    allow_direct,
    befriend,
    collect,
    machine_addresses,
    start_call,
)
from tests.serve import until

SERVER_LOGGERS = (
    "ringfence",
    "uvicorn",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "websockets.server",
    "starlette",
    "fastapi",
)


def addresses_in(texts: list[str]) -> set[str]:
    leaked = set()
    for address in machine_addresses():
        for item in texts:
            if address in item:
                leaked.add(address)
    return leaked


async def run_call(live: LiveServer, api: Api, *, callee_devices: int = 1) -> dict[str, Any]:
    """Alice calls Bob, Bob answers on his first device; both send a tone."""
    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    b_socks = [await open_socket(live.ws_url, bob) for _ in range(callee_devices)]
    seen_by_alice: list[str] = []
    seen_by_bob: list[str] = []

    resp = await start_call(api, alice, "bob")
    assert resp.status_code == 201, resp.text
    started = resp.json()
    assert started["ring_timeout_s"] == 45
    assert started["ice_servers"][0]["username"].split(":")[0].isdigit()
    caller = Peer(started["ice_transport_policy"], started["ice_servers"], tone=440)
    await a_ws.send(
        {"type": "call.offer", "call_id": started["call_id"], "sdp": await caller.offer()}
    )

    incomings = [await s.recv_type("call.incoming") for s in b_socks]
    for inc in incomings:
        assert inc["call_id"] == started["call_id"]
        assert inc["from"]["username"] == "alice"
        seen_by_bob.append(json.dumps(inc))
    # Each device gets its account's credentials: the callee's pseudonym, not the
    # caller's (the relay's quota counts per account, ringfence.turn.credentials).
    bobs = {inc["ice_servers"][0]["username"].split(":")[1] for inc in incomings}
    assert len(bobs) == 1
    assert bobs != {started["ice_servers"][0]["username"].split(":")[1]}

    incoming = incomings[0]
    callee = Peer(incoming["ice_transport_policy"], incoming["ice_servers"], tone=660)
    answer = await callee.answer(incoming["sdp"])
    await b_socks[0].send({"type": "call.answer", "call_id": started["call_id"], "sdp": answer})
    got_answer = await a_ws.recv_type("call.answer")
    seen_by_alice.append(json.dumps(got_answer))
    await caller.accept_answer(got_answer["sdp"])
    for other in b_socks[1:]:
        ended = await other.recv_type("call.ended")
        assert ended["reason"] == "answered_elsewhere"

    await asyncio.gather(caller.wait_connected(), callee.wait_connected())
    # What Ringfence's clients say once media is up: the call is a conversation from now.
    await a_ws.send({"type": "call.connected", "call_id": started["call_id"]})

    async def counted_as_connected() -> bool:
        stored = await live.services.calls.store.get(started["call_id"])
        return stored is not None and stored.call.connected_at is not None

    # The duration runs from when the server took note, not from when it was sent.
    await until(counted_as_connected, 10, "the server to count the call as connected")
    await asyncio.sleep(3)  # let a few seconds of audio flow both ways
    result = {
        "caller": caller,
        "callee": callee,
        "started": started,
        "incoming": incoming,
        "seen_by_alice": seen_by_alice,
        "seen_by_bob": seen_by_bob,
        "alice_token": alice,
        "bob_token": bob,
        "a_ws": a_ws,
        "b_socks": b_socks,
    }
    await a_ws.send({"type": "call.hangup", "call_id": started["call_id"]})
    result["record_a"] = (await a_ws.recv_type("message.new"))["message"]
    result["record_b"] = (await b_socks[0].recv_type("message.new"))["message"]
    ended_a = await a_ws.recv_type("call.ended")
    ended_b = await b_socks[0].recv_type("call.ended")
    assert ended_a["reason"] == ended_b["reason"] == "hangup"
    return result


async def test_relayed_call_carries_audio_both_ways_and_leaks_no_address(
    server: tuple[LiveServer, Api], caplog: pytest.LogCaptureFixture
) -> None:
    live, api = server
    caplog.set_level(logging.DEBUG)
    r = await run_call(live, api, callee_devices=2)
    caller, callee = r["caller"], r["callee"]
    try:
        assert r["started"]["ice_transport_policy"] == "relay"
        assert r["incoming"]["ice_transport_policy"] == "relay"
        # A 440 Hz tone one way and 660 Hz the other, through the relay.
        assert abs(callee.dominant_frequency() - 440) < 5
        assert abs(caller.dominant_frequency() - 660) < 5
        assert caller.selected_pair_types() == ("relay", "relay")
        assert callee.selected_pair_types() == ("relay", "relay")
        # Nothing either side received names an address of this machine.
        assert addresses_in(r["seen_by_alice"]) == set()
        assert addresses_in(r["seen_by_bob"]) == set()
        for record in (r["record_a"], r["record_b"]):
            assert record["kind"] == "call"
            assert record["call"]["outcome"] == "completed"
            assert record["call"]["duration_s"] >= 3
            assert record["call"]["media"] == "audio"
    finally:
        await caller.close()
        await callee.close()

    # SDP and candidates were passed on and forgotten: not in the database, not in logs.
    markers = ("a=fingerprint", "a=ice-ufrag", "candidate:", "typ relay", "v=0\r\n")
    async with live.services.db.engine.connect() as conn:
        for table in ("messages", "events", "conversations", "users", "sessions"):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            dump = repr(rows)
            for marker in markers:
                assert marker not in dump, f"{marker!r} stored in {table}"
    # The test's own aiortc peers log their SDP at debug level; what must stay clean is
    # everything the server side logs.
    for record in caplog.records:
        if not record.name.startswith(SERVER_LOGGERS):
            continue
        message = record.getMessage()
        # (pytest hooks even the silenced uvicorn.access logger; the serve process test
        # checks the real server's output for client addresses.)
        if record.name == "uvicorn.error":
            assert '"WebSocket ' not in message, "client address logged"
            assert "websockets" not in record.pathname or record.levelno >= logging.WARNING, (
                "frame-level log line kept"
            )
        for marker in markers:
            assert marker not in message, f"{marker!r} logged by {record.name}"
        assert r["alice_token"] not in message
        assert r["bob_token"] not in message


async def test_direct_connections_allowed_by_both_give_a_direct_pair(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await allow_direct(api, alice, bob)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, alice, "bob")).json()
    assert started["ice_transport_policy"] == "all"
    caller = Peer("all", started["ice_servers"], tone=440)
    await a_ws.send(
        {"type": "call.offer", "call_id": started["call_id"], "sdp": await caller.offer()}
    )
    incoming = await b_ws.recv_type("call.incoming")
    assert incoming["ice_transport_policy"] == "all"
    callee = Peer("all", incoming["ice_servers"], tone=660)
    try:
        await b_ws.send(
            {
                "type": "call.answer",
                "call_id": started["call_id"],
                "sdp": await callee.answer(incoming["sdp"]),
            }
        )
        await caller.accept_answer((await a_ws.recv_type("call.answer"))["sdp"])
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        assert caller.selected_pair_types()[0] == "host"
        assert callee.selected_pair_types()[0] == "host"
        # Host candidates were allowed through, because both users chose that.
        assert "typ host" in incoming["sdp"]
    finally:
        await caller.close()
        await callee.close()


async def test_one_sided_consent_relays_both_sides_even_for_a_client_that_gathers_all(
    server: tuple[LiveServer, Api],
) -> None:
    """Alice allows direct connections, Bob does not: the call is relayed at *both*
    ends. Alice's client here ignores the policy and gathers everything, as a buggy or
    third-party client might: none of her addresses may reach Bob's device, because
    his client could dial them from his own address and so expose it."""
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await allow_direct(api, alice)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, alice, "bob")).json()
    assert started["ice_transport_policy"] == "relay"
    caller = Peer("all", started["ice_servers"], tone=440)  # ignores the policy
    callee: Peer | None = None
    try:
        await a_ws.send(
            {"type": "call.offer", "call_id": started["call_id"], "sdp": await caller.offer()}
        )
        incoming = await b_ws.recv_type("call.incoming")
        assert incoming["ice_transport_policy"] == "relay"
        assert incoming["direct_allowed"] is False
        assert addresses_in([json.dumps(incoming)]) == set()
        callee = Peer("relay", incoming["ice_servers"], tone=660)
        answer = await callee.answer(incoming["sdp"])
        await b_ws.send({"type": "call.answer", "call_id": started["call_id"], "sdp": answer})
        got = await a_ws.recv_type("call.answer")
        assert got["direct_allowed"] is False
        assert addresses_in([json.dumps(got)]) == set()
        await caller.accept_answer(got["sdp"])
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        assert callee.selected_pair_types() == ("relay", "relay")
        assert caller.selected_pair_types() == ("relay", "relay")
        # Nothing Bob's device was given afterwards names one of Alice's addresses.
        assert addresses_in([json.dumps(f) for f in await collect(b_ws, 0.5)]) == set()
    finally:
        await caller.close()
        if callee is not None:
            await callee.close()
