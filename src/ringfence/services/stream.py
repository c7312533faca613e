"""Per-user event streams: durable events with positions, and ephemeral ones without.

Persist first, then notify: :meth:`EventStream.append` writes the event inside the
caller's transaction and returns its envelope; the caller publishes it with
:meth:`publish` only after the commit. A reconnecting client asks for everything
after position N and :meth:`history` reads it back.
"""

from __future__ import annotations

import json
from typing import Any

from ringfence.clock import Clock
from ringfence.realtime.bus import Bus, Envelope, device_topic, user_topic
from ringfence.storage.database import Database
from ringfence.storage.repositories import Store


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)


class EventStream:
    def __init__(self, db: Database, bus: Bus, clock: Clock) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock

    async def append(self, store: Store, user_id: int, type: str, body: dict[str, Any]) -> Envelope:
        """Record a durable event in the current transaction; publish it after commit."""
        pos = await store.users.next_stream_pos(user_id)
        payload = encode({"type": type, "pos": pos, **body})
        await store.events.append(
            user_id=user_id, pos=pos, type=type, payload=payload, now=self._clock.now()
        )
        return Envelope(payload, pos=pos)

    async def publish(self, user_id: int, envelope: Envelope) -> None:
        await self._bus.publish(user_topic(user_id), envelope)

    async def notify(
        self, user_id: int, body: dict[str, Any], *, exclude_device: str | None = None
    ) -> None:
        """Send an ephemeral event (never stored, no position) to a user's devices."""
        await self._bus.publish(
            user_topic(user_id), Envelope(encode(body), exclude_device=exclude_device)
        )

    async def notify_device(self, user_id: int, device_id: str, body: dict[str, Any]) -> None:
        """Send an ephemeral event to one of a user's connections."""
        await self._bus.publish(device_topic(user_id, device_id), Envelope(encode(body)))

    async def end_session(self, user_id: int, session_id: int) -> None:
        """Close, on every node, the sockets that authenticated with this session."""
        await self._bus.publish(user_topic(user_id), Envelope("", end_session=session_id))

    async def position(self, user_id: int) -> int:
        async with self._db.read() as store:
            return await store.users.stream_pos(user_id)

    async def history(
        self, user_id: int, *, after: int, upto: int | None, limit: int
    ) -> list[Envelope]:
        async with self._db.read() as store:
            rows = await store.events.range(user_id, after=after, upto=upto, limit=limit)
        return [Envelope(row.payload, pos=row.pos) for row in rows]
