"""Connection: ordered, gap-free, duplicate-free delivery, and a bounded send queue."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.realtime.bus import Envelope
from ringfence.realtime.connection import CLOSE_TOO_SLOW, REPLAY_PAGE, Connection
from tests.unit.realtime.fakes import FakeHistory, FakeTransport, event, eventually


def connect(
    transport: FakeTransport,
    history: FakeHistory,
    *,
    queue_size: int = 64,
    send_timeout_s: float = 30.0,
    device_id: str = "dev-1",
) -> Connection:
    return Connection(
        user_id=1,
        device_id=device_id,
        transport=transport,
        history=history,
        queue_size=queue_size,
        send_timeout_s=send_timeout_s,
    )


async def test_live_events_are_sent_in_order() -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = connect(transport, history)
    conn.start(since=None, current=0)
    for pos in (1, 2, 3):
        history.add(pos)
        conn.deliver(history.events[pos])
    await transport.until(lambda: len(transport.sent) == 3)
    assert transport.positions() == [1, 2, 3]
    assert history.reads == []  # nothing needed reading back
    await conn.stop()


async def test_ephemeral_events_pass_through_without_a_position() -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = connect(transport, history)
    conn.start(since=None, current=0)
    conn.deliver(event(None, kind="ring"))
    conn.reply(json.dumps({"type": "pong"}))
    await transport.until(lambda: len(transport.sent) == 2)
    assert transport.sent == [{"type": "test", "kind": "ring"}, {"type": "pong"}]
    await conn.stop()


async def test_without_since_only_events_after_the_current_position_are_sent() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=5)
    conn = connect(transport, history)
    # Published between subscribing and reading the position: already reflected in it.
    conn.deliver(history.events[4])
    conn.deliver(history.events[5])
    conn.start(since=None, current=5)
    history.add(6)
    conn.deliver(history.events[6])
    await transport.until(lambda: len(transport.sent) >= 1)
    await asyncio.sleep(0)
    assert transport.positions() == [6]
    await conn.stop()


async def test_since_replays_the_missed_events_then_goes_live_without_duplicates() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=7)
    conn = connect(transport, history)
    # Live copies of events the replay will also read: each must arrive once.
    conn.deliver(history.events[6])
    conn.deliver(history.events[7])
    conn.start(since=3, current=7)
    history.add(8)
    conn.deliver(history.events[8])
    await transport.until(lambda: transport.positions()[-1:] == [8])
    assert transport.positions() == [4, 5, 6, 7, 8]
    await conn.stop()


async def test_replay_is_read_in_pages() -> None:
    total = REPLAY_PAGE * 2 + 7
    transport, history = FakeTransport(), FakeHistory(upto=total)
    conn = connect(transport, history)
    conn.start(since=0, current=total)
    await transport.until(lambda: len(transport.sent) == total)
    assert transport.positions() == list(range(1, total + 1))
    assert len(history.reads) == 3
    await conn.stop()


async def test_a_gap_is_filled_from_history_before_the_later_event() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=2)
    conn = connect(transport, history)
    conn.start(since=None, current=2)
    history.add(5)  # 3, 4 and 5 committed; 5 is published first (another node)
    conn.deliver(history.events[5])
    await transport.until(lambda: len(transport.sent) == 3)
    conn.deliver(history.events[3])  # the late live copies are duplicates now
    conn.deliver(history.events[4])
    history.add(6)
    conn.deliver(history.events[6])
    await transport.until(lambda: len(transport.sent) >= 4)
    assert transport.positions() == [3, 4, 5, 6]
    assert history.reads == [(2, 4, REPLAY_PAGE)]
    await conn.stop()


def test_any_delivery_order_reaches_the_client_in_order_exactly_once() -> None:
    @settings(max_examples=150, deadline=None)
    @given(
        total=st.integers(min_value=1, max_value=30),
        since_fraction=st.none() | st.floats(min_value=0, max_value=1),
        data=st.data(),
    )
    def check(total: int, since_fraction: float | None, data: st.DataObject) -> None:
        since = None if since_fraction is None else int(since_fraction * total)
        current = data.draw(st.integers(min_value=0, max_value=total), label="current")
        deliveries = data.draw(
            st.lists(st.integers(min_value=1, max_value=total), max_size=60), label="order"
        )
        split = data.draw(st.integers(min_value=0, max_value=len(deliveries)), label="split")
        asyncio.run(scenario(total, since, current, deliveries, split))

    check()


async def scenario(
    total: int, since: int | None, current: int, deliveries: list[int], split: int
) -> None:
    transport, history = FakeTransport(), FakeHistory(upto=total)
    conn = connect(transport, history, queue_size=100)
    for pos in deliveries[:split]:
        conn.deliver(history.events[pos])
    conn.start(since=since, current=current)
    for _ in range(3):
        await asyncio.sleep(0)
    for pos in deliveries[split:]:
        conn.deliver(history.events[pos])
    start = current if since is None else since
    end = max([total if since is not None else 0, *deliveries, start])
    await transport.until(lambda: len(transport.sent) >= end - start)
    for _ in range(5):
        await asyncio.sleep(0)
    assert transport.positions() == list(range(start + 1, end + 1))
    await conn.stop()


async def test_a_client_that_stops_reading_is_disconnected_and_nothing_more_is_buffered() -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = connect(transport, history, queue_size=8)
    gave_up: list[Connection] = []

    async def hook(c: Connection) -> None:
        gave_up.append(c)

    conn.on_give_up(hook)
    conn.start(since=None, current=0)
    transport.reading.clear()  # the client stops reading
    for pos in range(1, 200):
        history.add(pos)
        conn.deliver(history.events[pos])
    assert conn.closed
    assert conn.close_reason == "send queue overflow"
    # Unsubscribed at once, although the close frame cannot get through yet.
    await eventually(lambda: gave_up == [conn])
    assert transport.closes == []
    # If the client ever reads again it gets what was in flight, then the close.
    transport.reading.set()
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_TOO_SLOW, "send queue overflow")]
    assert len(transport.sent) <= 1
    await conn.stop()


async def test_overflow_before_the_sender_starts_still_closes() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=20)
    conn = connect(transport, history, queue_size=8)
    for pos in range(1, 21):
        conn.deliver(history.events[pos])
    assert conn.closed
    conn.start(since=None, current=0)
    await transport.until(lambda: bool(transport.closes))
    assert transport.sent == []
    assert transport.closes == [(CLOSE_TOO_SLOW, "send queue overflow")]
    await conn.stop()


async def test_a_stalled_send_disconnects_the_client() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=1)
    conn = connect(transport, history, send_timeout_s=0.05)
    gave_up: list[Connection] = []

    async def hook(c: Connection) -> None:
        gave_up.append(c)

    conn.on_give_up(hook)
    transport.reading.clear()
    conn.start(since=None, current=0)
    conn.deliver(history.events[1])
    await eventually(lambda: gave_up == [conn])
    assert conn.closed
    assert conn.close_reason == "send timed out"
    transport.reading.set()
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_TOO_SLOW, "send timed out")]
    await conn.stop()


async def test_a_vanished_socket_ends_the_sender_quietly() -> None:
    transport, history = FakeTransport(), FakeHistory(upto=1)
    conn = connect(transport, history)
    gave_up: list[Connection] = []

    async def hook(c: Connection) -> None:
        gave_up.append(c)

    conn.on_give_up(hook)
    conn.start(since=None, current=0)
    transport.gone = True
    conn.deliver(history.events[1])
    await eventually(lambda: conn.closed and bool(gave_up))
    conn.deliver(event(2))  # ignored, not queued
    await conn.stop()  # does not raise
    assert transport.sent == []


async def test_stop_ends_the_sender_without_a_close_frame() -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = connect(transport, history)
    conn.start(since=None, current=0)
    await conn.stop()
    assert conn.closed
    conn.deliver(event(1))
    await asyncio.sleep(0)
    assert transport.sent == []
    assert transport.closes == []


async def test_stop_before_start_is_harmless() -> None:
    conn = connect(FakeTransport(), FakeHistory())
    await conn.stop()
    assert conn.closed


async def test_an_event_excluding_this_device_is_skipped() -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = connect(transport, history, device_id="mine")
    conn.start(since=None, current=0)
    conn.deliver(Envelope('{"type":"a"}', exclude_device="mine"))
    conn.deliver(Envelope('{"type":"b"}', exclude_device="other"))
    await transport.until(lambda: len(transport.sent) == 1)
    assert transport.sent == [{"type": "b"}]
    await conn.stop()


@pytest.mark.parametrize("queue_size", [8, 32])
async def test_the_queue_never_holds_more_than_its_size(queue_size: int) -> None:
    transport, history = FakeTransport(), FakeHistory()
    conn = connect(transport, history, queue_size=queue_size)
    transport.reading.clear()
    conn.start(since=None, current=0)
    for pos in range(1, queue_size * 10):
        conn.deliver(event(pos))
        assert conn.queued() <= queue_size
    assert conn.closed
    # What was queued is dropped once the connection has given up.
    await eventually(lambda: conn.queued() == 0)
    transport.reading.set()
    await conn.stop()
