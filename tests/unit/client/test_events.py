"""EventStream against a live server: auth, positions, routing, and surviving a drop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ringfence.client.api import RingfenceClient, RingfenceError
from ringfence.client.events import EventStream, EventStreamClosed
from tests.conftest import Api, LiveServer

PASSWORD = "correct horse 1"


@pytest.fixture
async def pair(
    live: tuple[LiveServer, Api],
) -> AsyncIterator[tuple[LiveServer, RingfenceClient, RingfenceClient]]:
    server, _ = live
    async with RingfenceClient(server.url) as alice, RingfenceClient(server.url) as bob:
        await alice.register("alice", PASSWORD)
        await bob.register("bob", PASSWORD)
        yield server, alice, bob


def stream(
    server: LiveServer,
    client: RingfenceClient,
    *,
    since: int | None = None,
    device_id: str | None = None,
) -> EventStream:
    assert client.token is not None
    return EventStream(
        server.url, client.token, since=since, device_id=device_id, backoff_initial_s=0.05
    )


async def test_ready_then_durable_events_with_positions(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, alice, bob = pair
    async with stream(server, bob) as events:
        assert events.user["username"] == "bob"
        assert events.device_id
        assert events.pos == 0
        await alice.send_message("bob", "one")
        await alice.send_message("bob", "two")
        first = await events.next_event("message.new")
        second = await events.next_event("message.new")
        assert [first["message"]["text"], second["message"]["text"]] == ["one", "two"]
        assert second["pos"] > first["pos"]
        assert events.pos >= second["pos"]


async def test_a_refused_token_is_an_error_not_a_retry_loop(live: tuple[LiveServer, Api]) -> None:
    server, _ = live
    events = EventStream(server.url, "rf_not-a-real-token")
    with pytest.raises(RingfenceError) as refused:
        await events.connect()
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")


async def test_since_replays_what_was_missed(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, alice, bob = pair
    await alice.send_message("bob", "before")
    await alice.send_message("bob", "missed")
    async with stream(server, bob, since=1) as events:
        replayed = await events.next_event("message.new")
        assert replayed["message"]["text"] == "missed"


async def test_reconnects_after_a_drop_with_the_same_device_and_no_gap(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, alice, bob = pair
    async with stream(server, bob) as events:
        device = events.device_id
        ws = events._ws
        assert ws is not None
        ws.transport.abort()  # the network goes away under the client
        sent = await alice.send_message("bob", "while you were away")

        ready = await events.next_event("ready")
        assert ready["device_id"] == device
        assert events.reconnects == 1
        arrived = await events.next_event("message.new")
        assert arrived["message"]["id"] == sent["id"]

        # Exactly once: the next message is next, with no replayed copy before it.
        sentinel = await alice.send_message("bob", "sentinel")
        following = await events.next_event("message.new")
        assert following["message"]["id"] == sentinel["id"]


async def test_send_and_receive_a_reply(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, _, bob = pair
    async with stream(server, bob) as events:
        await events.send({"type": "ping"})
        assert (await events.next_event("pong"))["type"] == "pong"
        await events.send({"type": "call.hangup", "call_id": "no-such-call-00"})
        error = await events.next_event("error", call_id="no-such-call-00")
        assert error["error"] == "call_not_found"


async def test_subscriptions_claim_their_frames_and_leave_the_rest(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, _, bob = pair
    async with stream(server, bob) as events:
        await events.send({"type": "call.hangup", "call_id": "early-call-01"})
        await events.send({"type": "ping"})
        await events.next_event("pong")  # so the error for early-call-01 is buffered by now
        with events.subscribe_call("early-call-01") as sub:
            assert (await sub.get())["error"] == "call_not_found"  # claimed from the inbox
            await events.send({"type": "call.hangup", "call_id": "early-call-01"})
            await events.send({"type": "call.hangup", "call_id": "other-call-02"})
            assert (await sub.get())["call_id"] == "early-call-01"
            other = await events.next_event("error")
            assert other["call_id"] == "other-call-02"


async def test_a_device_taken_over_elsewhere_stops_for_good(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, _, bob = pair
    async with (
        stream(server, bob) as first,
        stream(server, bob, device_id=first.device_id) as second,
    ):
        with pytest.raises(EventStreamClosed) as closed:
            async for _ in first:
                pass
        assert closed.value.fatal
        with pytest.raises(EventStreamClosed):
            await first.send({"type": "ping"})
        await second.send({"type": "ping"})
        await second.next_event("pong")


async def test_closing_ends_iteration(
    pair: tuple[LiveServer, RingfenceClient, RingfenceClient],
) -> None:
    server, alice, bob = pair
    events = stream(server, bob)
    await events.connect()
    await alice.send_message("bob", "last")
    seen = []

    async def read() -> None:
        async for event in events:
            seen.append(event["type"])
            if event["type"] == "message.new":
                await events.close()

    await asyncio.wait_for(read(), 10)
    assert seen == ["message.new"]
