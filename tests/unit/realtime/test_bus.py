"""InMemoryBus delivery, and the Hub's bookkeeping of this node's connections."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ringfence.backends.memory import InMemoryPresence
from ringfence.realtime.bus import Envelope, InMemoryBus, user_topic
from ringfence.realtime.connection import CLOSE_TOO_SLOW, Connection
from ringfence.realtime.hub import Hub
from tests.unit.realtime.fakes import FakeHistory, FakeTransport, event, eventually


async def test_publish_reaches_every_subscriber_of_the_topic_only() -> None:
    bus = InMemoryBus()
    got: dict[str, list[str]] = {"a1": [], "a2": [], "b": []}
    await bus.subscribe("a", lambda env: got["a1"].append(env.payload))
    await bus.subscribe("a", lambda env: got["a2"].append(env.payload))
    await bus.subscribe("b", lambda env: got["b"].append(env.payload))
    await bus.publish("a", Envelope("x"))
    await bus.publish("nobody-listens", Envelope("y"))
    assert got == {"a1": ["x"], "a2": ["x"], "b": []}


async def test_unsubscribe_stops_delivery_and_forgets_empty_topics() -> None:
    bus = InMemoryBus()
    got: list[str] = []
    sub = await bus.subscribe("a", lambda env: got.append(env.payload))
    assert bus.topic_count() == 1
    await bus.unsubscribe(sub)
    await bus.unsubscribe(sub)  # twice is harmless
    await bus.publish("a", Envelope("x"))
    assert got == []
    assert bus.topic_count() == 0


async def test_a_failing_handler_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InMemoryBus()
    got: list[str] = []

    def broken(_env: Envelope) -> None:
        raise ValueError("handler bug")

    await bus.subscribe("a", broken)
    await bus.subscribe("a", lambda env: got.append(env.payload))
    with caplog.at_level(logging.ERROR, logger="ringfence.realtime.bus"):
        await bus.publish("a", Envelope("x"))
    assert got == ["x"]
    assert "bus handler for a failed" in caplog.text


def make_connection(
    user_id: int, device_id: str, transport: FakeTransport, queue_size: int = 64
) -> Connection:
    return Connection(
        user_id=user_id,
        device_id=device_id,
        transport=transport,
        history=FakeHistory(),
        queue_size=queue_size,
    )


async def test_hub_routes_a_users_events_to_each_of_their_devices() -> None:
    bus = InMemoryBus()
    hub = Hub(bus, InMemoryPresence())
    phone, laptop, other = FakeTransport(), FakeTransport(), FakeTransport()
    conns = [
        make_connection(1, "phone", phone),
        make_connection(1, "laptop", laptop),
        make_connection(2, "other", other),
    ]
    for conn in conns:
        await hub.attach(conn)
        conn.start(since=None, current=0)
    assert hub.connection_count() == 3
    assert {c.device_id for c in hub.local_devices(1)} == {"phone", "laptop"}
    await bus.publish(user_topic(1), event(1))
    await phone.until(lambda: len(phone.sent) == 1)
    await laptop.until(lambda: len(laptop.sent) == 1)
    await asyncio.sleep(0)
    assert other.sent == []
    await hub.close_all()
    assert hub.connection_count() == 0
    assert bus.topic_count() == 0
    assert all(conn.closed for conn in conns)


async def test_detach_unsubscribes() -> None:
    bus = InMemoryBus()
    hub = Hub(bus, InMemoryPresence())
    transport = FakeTransport()
    conn = make_connection(1, "phone", transport)
    await hub.attach(conn)
    conn.start(since=None, current=0)
    await conn.stop()
    await hub.detach(conn)
    await hub.detach(conn)  # the socket's own clean-up may come second
    assert hub.connection_count() == 0
    assert hub.local_devices(1) == []
    assert bus.topic_count() == 0


async def test_hub_drops_a_connection_that_stops_reading() -> None:
    bus = InMemoryBus()
    hub = Hub(bus, InMemoryPresence())
    transport = FakeTransport()
    conn = make_connection(1, "phone", transport, queue_size=8)
    await hub.attach(conn)
    conn.start(since=None, current=0)
    transport.reading.clear()  # the client stops reading
    for pos in range(1, 50):
        await bus.publish(user_topic(1), event(pos))
    await eventually(lambda: hub.connection_count() == 0)
    assert bus.topic_count() == 0  # no handler left to buffer into
    assert hub.local_devices(1) == []
    transport.reading.set()
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_TOO_SLOW, "send queue overflow")]
    await conn.stop()


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope('{"type":"pong"}'),
        Envelope('{"type":"message.new","pos":7}', pos=7),
        Envelope("{}", exclude_device="dev-1"),
        Envelope("", end_session=42),
    ],
)
def test_redis_envelope_encoding_round_trips(envelope: Envelope) -> None:
    """Every field a node publishes, including a session to close, reaches the others."""
    from ringfence.realtime.redis_bus import decode_envelope, encode_envelope

    assert decode_envelope(encode_envelope(envelope)) == envelope
