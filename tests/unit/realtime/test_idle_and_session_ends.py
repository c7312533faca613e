"""What an idle connection keeps (no task, no queue), and closing the sockets of a
session that ended, on this node or announced by another."""

from __future__ import annotations

import asyncio

from ringfence.backends.memory import InMemoryPresence
from ringfence.realtime.bus import SESSIONS_TOPIC, Envelope, InMemoryBus, user_topic
from ringfence.realtime.connection import CLOSE_SESSION_ENDED, Connection
from ringfence.realtime.hub import Hub
from ringfence.services.stream import SessionEnd
from tests.unit.realtime.fakes import FakeHistory, FakeTransport, event, eventually


def make(user_id: int, device_id: str, transport: FakeTransport, session_id: int) -> Connection:
    return Connection(
        user_id=user_id,
        device_id=device_id,
        transport=transport,
        history=FakeHistory(),
        queue_size=16,
        session_id=session_id,
    )


def connection_tasks() -> list[asyncio.Task[object]]:
    """Running tasks of Connection's own (sending, closing)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").startswith("Connection.")
    ]


async def test_an_idle_connection_holds_no_task_and_no_queue() -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = Connection(user_id=1, device_id="d", transport=transport, history=history, queue_size=16)
    conn.start(since=None, current=0)
    assert connection_tasks() == []
    for pos in (1, 2, 3):
        history.add(pos)
        conn.deliver(history.events[pos])
    await transport.until(lambda: transport.positions() == [1, 2, 3])
    # Once everything is sent the sender ends; the next delivery starts a new one.
    await eventually(lambda: not connection_tasks())
    assert conn.queued() == 0
    history.add(4)
    conn.deliver(history.events[4])
    await transport.until(lambda: transport.positions() == [1, 2, 3, 4])
    await eventually(lambda: not connection_tasks())
    await conn.stop()


async def test_since_replays_even_when_nothing_is_queued() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=3)
    conn = Connection(user_id=1, device_id="d", transport=transport, history=history, queue_size=16)
    conn.start(since=1, current=3)
    await transport.until(lambda: transport.positions() == [2, 3])
    await eventually(lambda: not connection_tasks())
    await conn.stop()


async def test_hub_closes_the_sockets_of_one_session_or_of_every_session() -> None:
    bus = InMemoryBus()
    hub = Hub(bus, InMemoryPresence())
    phone, laptop, tablet, other = (FakeTransport() for _ in range(4))
    conns = {
        "phone": make(1, "phone", phone, session_id=10),
        "laptop": make(1, "laptop", laptop, session_id=11),
        "tablet": make(1, "tablet", tablet, session_id=11),
        "other": make(2, "other", other, session_id=20),
    }
    for conn in conns.values():
        await hub.attach(conn)
        conn.start(since=None, current=0)

    assert hub.end_sessions(1, 11) == 2  # a logout: that session's sockets only
    await laptop.until(lambda: bool(laptop.closes))
    await tablet.until(lambda: bool(tablet.closes))
    assert laptop.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    assert not conns["phone"].closed
    # Given up on, they left the hub at once.
    await eventually(lambda: hub.connection_count() == 2)

    assert hub.end_sessions(1) == 1  # a suspension: every session of the user
    await phone.until(lambda: bool(phone.closes))
    assert phone.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    assert not conns["other"].closed
    assert sorted(hub.local_users()) == [2]
    await hub.close_all()


async def test_an_end_session_envelope_of_an_earlier_version_still_closes() -> None:
    """Nodes of earlier versions publish session ends on the user's topic."""
    bus = InMemoryBus()
    hub = Hub(bus, InMemoryPresence())
    transport = FakeTransport()
    conn = make(1, "phone", transport, session_id=10)
    await hub.attach(conn)
    conn.start(since=None, current=0)
    await bus.publish(user_topic(1), Envelope("", end_session=99))
    assert not conn.closed
    await bus.publish(user_topic(1), Envelope("", end_session=10))
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    await hub.close_all()


def test_session_end_notices_round_trip_and_nothing_else_is_one() -> None:
    for notice in (SessionEnd(7, 12), SessionEnd(7)):
        assert SessionEnd.of(notice.envelope()) == notice
    for payload in ("", "[]", '{"user":"7"}', '{"user":7,"session":"x"}', '{"type":"pong"}'):
        assert SessionEnd.of(Envelope(payload)) is None


async def test_a_handler_may_unsubscribe_while_a_topic_is_dispatched() -> None:
    bus = InMemoryBus()
    got: list[str] = []
    subs = []

    def first(env: Envelope) -> None:
        got.append("first")
        for sub in subs:
            asyncio.get_running_loop().create_task(bus.unsubscribe(sub))

    subs.append(await bus.subscribe(SESSIONS_TOPIC, first))
    subs.append(await bus.subscribe(SESSIONS_TOPIC, lambda env: got.append("second")))
    await bus.publish(SESSIONS_TOPIC, event(None))
    assert got == ["first", "second"]
    await eventually(lambda: bus.topic_count() == 0)
