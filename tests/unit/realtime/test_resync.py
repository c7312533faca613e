"""After the Bus lost events (a Redis outage), each connection reads back from the
database the durable events it never received: a nudge, no payload."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ringfence.backends.memory import InMemoryPresence
from ringfence.realtime.bus import Envelope, InMemoryBus, user_topic
from ringfence.realtime.connection import Connection
from ringfence.realtime.hub import Hub
from tests.unit.realtime.fakes import FakeHistory, FakeTransport, event


class OutageBus(InMemoryBus):
    """An in-memory bus that can drop what is published, as one whose backend is down,
    and then announce a resync as RedisBus does once it is back."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self._hooks: list[Callable[[], None]] = []

    async def publish(self, topic: str, envelope: Envelope) -> None:
        if not self.down:
            await super().publish(topic, envelope)

    def on_resync(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def back_up(self) -> None:
        self.down = False
        for hook in self._hooks:
            hook()


async def test_a_resync_reads_back_what_the_bus_dropped_once_and_in_order() -> None:
    bus = OutageBus()
    hub = Hub(bus, InMemoryPresence())
    history = FakeHistory(upto=1)
    transport = FakeTransport()
    conn = Connection(
        user_id=1, device_id="phone", transport=transport, history=history, queue_size=64
    )
    await hub.attach(conn)
    conn.start(since=None, current=1)

    bus.down = True
    history.add(3)  # committed while the bus was down: published into the void
    for pos in (2, 3):
        await bus.publish(user_topic(1), event(pos))
    await asyncio.sleep(0.01)
    assert transport.sent == []

    bus.back_up()
    await transport.until(lambda: transport.positions() == [2, 3])
    history.add(4)
    await bus.publish(user_topic(1), event(3))  # a late duplicate is dropped
    await bus.publish(user_topic(1), event(4))
    await transport.until(lambda: transport.positions() == [2, 3, 4])

    bus.back_up()  # nothing missed this time: nothing sent
    await bus.publish(user_topic(1), event(None, note="ephemeral"))
    await transport.until(lambda: len(transport.sent) == 4)
    assert transport.positions() == [2, 3, 4]
    await hub.close_all()
