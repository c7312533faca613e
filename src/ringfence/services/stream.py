"""Per-user event streams: durable events with positions, and ephemeral ones without.

Persist first, then notify: :meth:`EventStream.append` writes the event inside the
caller's transaction and returns its envelope; the caller publishes it with
:meth:`publish` only after the commit. A reconnecting client asks for everything
after position N and :meth:`history` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ringfence.clock import Clock
from ringfence.realtime.bus import (
    SESSIONS_TOPIC,
    Bus,
    Envelope,
    Subscription,
    device_topic,
    user_topic,
)
from ringfence.storage.database import Database
from ringfence.storage.repositories import Store, StoredMessage
from ringfence.wire.events import StreamEvent, frame_at
from ringfence.wire.json import encode


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """A notice on :data:`SESSIONS_TOPIC`: a session (or, with ``session_id`` None,
    every session of a user) was revoked. Every node drops it from its token cache and
    closes its sockets."""

    user_id: int
    session_id: int | None = None

    def envelope(self) -> Envelope:
        return Envelope(encode({"user": self.user_id, "session": self.session_id}))

    @classmethod
    def of(cls, envelope: Envelope) -> SessionEnd | None:
        """The notice an envelope carries; None for anything else."""
        body = _notice(envelope)
        user, session = body.get("user"), body.get("session")
        if type(user) is not int or not (session is None or type(session) is int):
            return None
        return cls(user, session)


@dataclass(frozen=True, slots=True)
class UserChanged:
    """A notice on :data:`SESSIONS_TOPIC`: a user's row changed (a new display name,
    the verified badge). Every node drops the user from its token cache, so that what
    it answers next is read afresh rather than up to ``auth_cache_ttl_s`` late. Its
    shape is one a node that only knows :class:`SessionEnd` ignores."""

    user_id: int

    def envelope(self) -> Envelope:
        return Envelope(encode({"changed_user": self.user_id}))

    @classmethod
    def of(cls, envelope: Envelope) -> UserChanged | None:
        user = _notice(envelope).get("changed_user")
        return cls(user) if type(user) is int else None


def _framed(events: Mapping[int, StreamEvent]) -> dict[int, tuple[str, str, str]]:
    """Each user's stored event as ``(type, head, tail)``: its frame around the position
    it is yet to be given (``StreamEvent.stored_frame_parts``). An event told to many
    is serialised once."""
    framed: dict[int, tuple[str, str, str]] = {}
    fields: dict[int, str] = {}
    for user_id, event in events.items():
        if not event.STORED:
            raise ValueError(f"{event.TYPE} is never stored")
        if id(event) not in fields:
            fields[id(event)] = event.fields_json()
        framed[user_id] = (event.TYPE, *event.stored_frame_parts(fields[id(event)]))
    return framed


def _at(framed: tuple[str, str, str], pos: int) -> str:
    """The stored frame of a :func:`_framed` event at ``pos``."""
    _, head, tail = framed
    return frame_at(head, tail, pos)


def _notice(envelope: Envelope) -> dict[str, Any]:
    """The JSON object a notice on SESSIONS_TOPIC carries ({} for anything else)."""
    try:
        body = json.loads(envelope.payload)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class EventStream:
    def __init__(self, db: Database, bus: Bus, clock: Clock) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock

    async def append(self, store: Store, user_id: int, event: StreamEvent) -> Envelope:
        """Record a durable event in the current transaction; publish it after commit."""
        return (await self.append_many(store, {user_id: event}))[user_id]

    async def append_many(
        self, store: Store, events: Mapping[int, StreamEvent]
    ) -> dict[int, Envelope]:
        """The same for several users at once (each with its own event): all positions
        in one UPDATE, which locks the users in id order so that two transactions that
        share users cannot deadlock, and all events in one INSERT."""
        positions = await store.users.next_stream_positions(list(events))
        return await self.append_reserved(store, events, positions)

    async def append_reserved(
        self, store: Store, events: Mapping[int, StreamEvent], positions: Mapping[int, int]
    ) -> dict[int, Envelope]:
        """:meth:`append_many` at positions reserved already, in this transaction (a
        send reserves them with its last write, see ``Conversations.touch_and_reserve``)."""
        if positions.keys() != events.keys():
            raise ValueError("every event needs its reserved position, and only those")
        framed = _framed(events)
        rows = [
            (user_id, pos, framed[user_id][0], _at(framed[user_id], pos))
            for user_id, pos in sorted(positions.items())
        ]
        await store.events.append_many(rows, self._clock.now())
        return {user_id: Envelope(payload, pos=pos) for user_id, pos, _, payload in rows}

    async def append_with_message(
        self, store: Store, msg: StoredMessage, events: Mapping[int, StreamEvent]
    ) -> dict[int, Envelope] | None:
        """Store ``msg`` (with the id its send reserved) and :meth:`append_many` its
        ``events`` in one statement that is a unit of work of its own, committed when
        this returns (``Messages.add_with_events``: PostgreSQL's). None, and nothing
        stored, when the sender's ``txn_id`` was taken already."""
        framed = _framed(events)
        given = [(user_id, *framed[user_id]) for user_id in sorted(framed)]
        positions = await store.messages.add_with_events(msg, given, self._clock.now())
        if positions is None:
            return None
        return {
            user_id: Envelope(_at(framed[user_id], pos), pos=pos)
            for user_id, pos in sorted(positions.items())
        }

    async def publish(self, user_id: int, envelope: Envelope) -> None:
        await self._bus.publish(user_topic(user_id), envelope)

    async def notify(
        self,
        user_id: int,
        body: dict[str, Any] | StreamEvent,
        *,
        exclude_device: str | None = None,
    ) -> None:
        """Send an ephemeral event (never stored, no position) to a user's devices."""
        frame = body.frame() if isinstance(body, StreamEvent) else body
        await self._bus.publish(
            user_topic(user_id), Envelope(encode(frame), exclude_device=exclude_device)
        )

    async def notify_device(self, user_id: int, device_id: str, body: dict[str, Any]) -> None:
        """Send an ephemeral event to one of a user's connections."""
        await self._bus.publish(device_topic(user_id, device_id), Envelope(encode(body)))

    async def end_session(self, user_id: int, session_id: int) -> None:
        """Tell every node that this session ended: each drops it from its token cache
        and closes the sockets that authenticated with it. Publish after the commit."""
        await self._bus.publish(SESSIONS_TOPIC, SessionEnd(user_id, session_id).envelope())

    async def end_sessions(self, user_id: int) -> None:
        """The same for every session of a user (a suspension)."""
        await self._bus.publish(SESSIONS_TOPIC, SessionEnd(user_id).envelope())

    async def user_changed(self, user_id: int) -> None:
        """Tell every node that this user's row changed (see :class:`UserChanged`).
        Publish after the commit."""
        await self._bus.publish(SESSIONS_TOPIC, UserChanged(user_id).envelope())

    async def watch_session_ends(
        self, handler: Callable[[SessionEnd | UserChanged], None], missed: Callable[[], None]
    ) -> Subscription:
        """Call ``handler`` for every session end and user change any node announces,
        and ``missed`` whenever the Bus may have lost some (a Redis outage)."""

        def on_envelope(envelope: Envelope) -> None:
            notice = SessionEnd.of(envelope) or UserChanged.of(envelope)
            if notice is not None:
                handler(notice)

        self._bus.on_resync(missed)
        return await self._bus.subscribe(SESSIONS_TOPIC, on_envelope)

    async def unwatch(self, subscription: Subscription) -> None:
        await self._bus.unsubscribe(subscription)

    async def position(self, user_id: int) -> int:
        async with self._db.read() as store:
            return await store.users.stream_pos(user_id)

    async def history(
        self, user_id: int, *, after: int, upto: int | None, limit: int
    ) -> list[Envelope]:
        async with self._db.read() as store:
            rows = await store.events.range(user_id, after=after, upto=upto, limit=limit)
        return [Envelope(row.payload, pos=row.pos) for row in rows]
