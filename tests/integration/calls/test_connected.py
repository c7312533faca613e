"""``call.connected``: only a call whose media connected is recorded as a conversation.

An in-call device says ``call.connected`` when its peer connection first comes up. The
server stores when (the call moves ANSWERED -> CONNECTED), times the call from then, and
records an answered call that never connected as ``not_connected`` with no duration. The
frame is accepted only from the two in-call devices of an answered call, is idempotent,
and is used for nothing but that call's own record.

The server runs on a fake clock here, so durations are exact; the SDP is real but no
media flows (tests/integration/client/test_fail_fast.py has the real-media cases).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from ringfence.backends.redis.calls import RedisCallStore
from ringfence.calls.live import LiveCall
from ringfence.calls.state import Call, CallState, Media, transition
from ringfence.clock import FakeClock
from tests.conftest import Api, LiveServer, Socket, open_socket
from tests.integration.calls.conftest import Coturn, befriend, call_settings, start_call
from tests.integration.calls.sdp import sdp_pair
from tests.integration.scale.conftest import running_redis


class Setup:
    """A live server on a fake clock, with alice allowed to call bob."""

    def __init__(self, live: LiveServer, api: Api, clock: FakeClock) -> None:
        self.live, self.api, self.clock = live, api, clock
        self.alice = self.bob = ""

    async def ring(self, *, callee_devices: int = 1) -> tuple[str, Socket, list[Socket]]:
        a_ws = await open_socket(self.live.ws_url, self.alice)
        b_socks = [await open_socket(self.live.ws_url, self.bob) for _ in range(callee_devices)]
        call_id: str = (await start_call(self.api, self.alice, "bob")).json()["call_id"]
        offer, _ = await sdp_pair()
        await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
        for sock in b_socks:
            await sock.recv_type("call.incoming")
        return call_id, a_ws, b_socks

    async def answer(self, sock: Socket, call_id: str, a_ws: Socket) -> None:
        _, sdp = await sdp_pair()
        await sock.send({"type": "call.answer", "call_id": call_id, "sdp": sdp})
        await a_ws.recv_type("call.answer")

    async def history(self, token: str) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = (await self.api.call("GET", "/api/v1/calls", token)).json()[
            "calls"
        ]
        return calls

    async def thread(self, token: str, peer: str) -> list[dict[str, Any]]:
        resp = await self.api.call("GET", f"/api/v1/conversations/{peer}/messages", token)
        return [m for m in resp.json()["messages"] if m["kind"] == "call"]


@pytest.fixture(params=["memory", "redis"])
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, coturn: Coturn
) -> AsyncIterator[Setup]:
    """Both call stores: the Redis one keeps the new state and its time in its JSON."""
    async with contextlib.AsyncExitStack() as stack:
        overrides: dict[str, Any] = {}
        if request.param == "redis":
            redis = await stack.enter_async_context(running_redis(tmp_path))
            overrides = {"redis_url": redis.url, "redis_prefix": "rf-connected:"}
        settings = call_settings(tmp_path, database_url, coturn, **overrides)
        clock = FakeClock()
        live = await stack.enter_async_context(LiveServer(settings, clock))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=live.url))
        s = Setup(live, Api(client), clock)
        s.alice, s.bob = await befriend(s.api, "alice", "bob")
        yield s


async def record_of(sock: Socket, call_id: str, reason: str) -> dict[str, Any]:
    record: dict[str, Any] = (await sock.recv_type("message.new", timeout=10))["message"]
    assert await sock.recv_type("call.ended") == {
        "type": "call.ended",
        "call_id": call_id,
        "reason": reason,
    }
    assert record["call"]["call_id"] == call_id
    call: dict[str, Any] = record["call"]
    return call


async def test_duration_runs_from_when_media_connected_not_from_the_answer(
    setup: Setup,
) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    setup.clock.advance(3)
    await setup.answer(b_ws, call_id, a_ws)
    setup.clock.advance(5)  # five seconds of "Connecting…": not part of the call
    await a_ws.send({"type": "call.connected", "call_id": call_id})
    await a_ws.nothing_within(0.3)  # accepted silently
    setup.clock.advance(42)
    await b_ws.send({"type": "call.hangup", "call_id": call_id})
    for sock in (a_ws, b_ws):
        assert await record_of(sock, call_id, "hangup") == {
            "call_id": call_id,
            "media": "audio",
            "outcome": "completed",
            "duration_s": 42,
        }
    for token in (setup.alice, setup.bob):
        (item,) = await setup.history(token)
        assert (item["call"]["outcome"], item["call"]["duration_s"]) == ("completed", 42)


async def test_an_answered_call_that_never_connected_is_recorded_as_not_connected(
    setup: Setup,
) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    await setup.answer(b_ws, call_id, a_ws)
    setup.clock.advance(30)  # thirty seconds of "Connecting…", then the caller gives up
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    for sock in (a_ws, b_ws):
        call = await record_of(sock, call_id, "hangup")
        assert (call["outcome"], call["duration_s"]) == ("not_connected", 0)
    # The same in the call history and in the thread, for both people.
    for token, peer, direction in (
        (setup.alice, "bob", "outgoing"),
        (setup.bob, "alice", "incoming"),
    ):
        (item,) = await setup.history(token)
        assert item["direction"] == direction
        assert (item["call"]["outcome"], item["call"]["duration_s"]) == ("not_connected", 0)
        (message,) = await setup.thread(token, peer)
        assert (message["call"]["outcome"], message["call"]["duration_s"]) == ("not_connected", 0)


async def test_saying_it_again_changes_nothing(setup: Setup) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    await setup.answer(b_ws, call_id, a_ws)
    await b_ws.send({"type": "call.connected", "call_id": call_id})
    await b_ws.nothing_within(0.3)  # read by the server before the clock moves on
    setup.clock.advance(2)
    # Both devices say it, one of them twice (after an ICE restart, say): no error, and
    # the call is still timed from the first.
    await a_ws.send({"type": "call.connected", "call_id": call_id})
    await b_ws.send({"type": "call.connected", "call_id": call_id})
    await a_ws.nothing_within(0.3)
    await b_ws.nothing_within(0.3)
    setup.clock.advance(10)
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    call = await record_of(b_ws, call_id, "hangup")
    assert (call["outcome"], call["duration_s"]) == ("completed", 12)


async def test_it_is_not_passed_on_to_the_other_side(setup: Setup) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    await setup.answer(b_ws, call_id, a_ws)
    await a_ws.send({"type": "call.connected", "call_id": call_id})
    await b_ws.nothing_within(0.5)
    # And it moves nothing else on: the call is still in progress, signaling works.
    live = await setup.live.services.calls.store.get(call_id)
    assert live.call.state is CallState.CONNECTED
    await b_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await record_of(a_ws, call_id, "hangup"))["outcome"] == "completed"


@pytest.mark.parametrize("who", ["caller", "callee"])
async def test_a_ringing_call_cannot_be_connected(setup: Setup, who: str) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    sock = a_ws if who == "caller" else b_ws
    await sock.send({"type": "call.connected", "call_id": call_id})
    error = await sock.recv_type("error")
    assert (error["error"], error["call_id"]) == ("call_state", call_id)
    # It still rings, and an answer without media is still "not connected".
    await setup.answer(b_ws, call_id, a_ws)
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await record_of(b_ws, call_id, "hangup"))["outcome"] == "not_connected"


@pytest.mark.parametrize("who", ["callee_other_device", "caller_other_device"])
async def test_only_the_in_call_devices_may_say_it(setup: Setup, who: str) -> None:
    call_id, a_ws, (b_ws, b_other) = await setup.ring(callee_devices=2)
    await setup.answer(b_ws, call_id, a_ws)
    assert (await b_other.recv_type("call.ended"))["reason"] == "answered_elsewhere"
    a_other = await open_socket(setup.live.ws_url, setup.alice)
    sock = b_other if who == "callee_other_device" else a_other
    await sock.send({"type": "call.connected", "call_id": call_id})
    assert (await sock.recv_type("error"))["error"] == "call_state"
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await record_of(b_ws, call_id, "hangup"))["outcome"] == "not_connected"


async def test_outsiders_and_ended_calls_get_the_same_answer_as_no_call(setup: Setup) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    await setup.answer(b_ws, call_id, a_ws)
    carol = await setup.api.register("carol")
    c_ws = await open_socket(setup.live.ws_url, carol)
    await c_ws.send({"type": "call.connected", "call_id": call_id})
    assert (await c_ws.recv_type("error"))["error"] == "call_not_found"
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await record_of(b_ws, call_id, "hangup"))["outcome"] == "not_connected"
    # Too late: the record stands as it was written.
    await b_ws.send({"type": "call.connected", "call_id": call_id})
    assert (await b_ws.recv_type("error"))["error"] == "call_not_found"
    (item,) = await setup.history(setup.bob)
    assert item["call"]["outcome"] == "not_connected"


async def test_a_malformed_frame_is_refused_by_the_codec(setup: Setup) -> None:
    call_id, a_ws, (b_ws,) = await setup.ring()
    await setup.answer(b_ws, call_id, a_ws)
    await a_ws.send({"type": "call.connected", "call_id": call_id, "at": 1.0})
    error = await a_ws.recv_type("error")
    assert error["error"] == "malformed"
    assert error["detail"].startswith("at:")


async def test_a_connected_call_can_still_switch_transport(setup: Setup) -> None:
    """Media connected (CONNECTED) is as much "in the call" as answered: a switch (or
    a restart of a dropped connection) works the same, and does not undo it."""
    call_id, a_ws, (b_ws,) = await setup.ring()
    await setup.answer(b_ws, call_id, a_ws)
    await a_ws.send({"type": "call.connected", "call_id": call_id})
    await a_ws.nothing_within(0.3)
    setup.clock.advance(4)
    await a_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    assert (await a_ws.recv_type("call.transport"))["restart"] is True
    assert (await b_ws.recv_type("call.transport"))["restart"] is False
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.reoffer", "call_id": call_id, "sdp": offer})
    await b_ws.recv_type("call.reoffer")
    await b_ws.send({"type": "call.reanswer", "call_id": call_id, "sdp": answer})
    await a_ws.recv_type("call.reanswer")
    setup.clock.advance(6)
    await b_ws.send({"type": "call.hangup", "call_id": call_id})
    call = await record_of(a_ws, call_id, "hangup")
    assert (call["outcome"], call["duration_s"]) == ("completed", 10)


async def test_the_api_schema_says_what_the_outcomes_mean(setup: Setup) -> None:
    schema = (await setup.api.client.get("/api/openapi.json")).json()
    record = schema["components"]["schemas"]["CallRecord"]["properties"]
    assert "not_connected" in record["outcome"]["enum"]
    assert "never connected" in record["outcome"]["description"]
    assert "media connected" in record["duration_s"]["description"]


async def test_the_redis_store_keeps_a_connected_call_as_long_as_an_answered_one(
    tmp_path: Path,
) -> None:
    async with running_redis(tmp_path) as redis_server:
        await _keeps_a_connected_call(redis_server.url)


async def _keeps_a_connected_call(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    store = RedisCallStore(client, prefix="rf-ttl:", ringing_ttl_s=60, answered_ttl_s=120)
    call = Call("call-0001", 1, 2, Media.AUDIO, caller_device=None, created_at=1000.0)
    call = transition(call, CallState.RINGING, at=1001.0, device_id="caller-laptop")
    call = transition(call, CallState.ANSWERED, at=1002.0, device_id="callee-phone")
    try:
        await store.put(LiveCall(call))
        connected = transition(call, CallState.CONNECTED, at=1004.5)
        answered = await store.get("call-0001")
        assert answered is not None
        assert await store.replace(answered, LiveCall(connected))
        assert not await store.replace(answered, LiveCall(connected))  # compare-and-set
        key = "rf-ttl:call:call-0001"
        assert 60 < await client.ttl(key) <= 120
        # Setting a deadline (the liveness check does, every few seconds) keeps it so.
        await store.set_deadline("call-0001", "check", 2000.0)
        assert 60 < await client.ttl(key) <= 120
        stored = await store.get("call-0001")
        assert stored is not None
        assert (stored.call.state, stored.call.connected_at) == (CallState.CONNECTED, 1004.5)
    finally:
        await store.remove("call-0001")
        await client.aclose()
