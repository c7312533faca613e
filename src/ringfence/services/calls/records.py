"""Calls as they are remembered: one record per call in the conversation it belongs
to, and the history built from those records (``GET /api/v1/calls``).

A record carries the call's outcome, media and duration, never anything about either
side's network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ringfence.calls.state import Call, duration_s, outcome
from ringfence.services.accounts import AuthContext
from ringfence.services.messaging import Messaging
from ringfence.services.views import user_view
from ringfence.storage.database import Database
from ringfence.wire.models import CallRecord, UserView


@dataclass(frozen=True, slots=True)
class CallHistoryEntry:
    message_id: int
    call: CallRecord
    peer: UserView
    direction: Literal["outgoing", "incoming"]
    created_at: Any


class CallRecords:
    def __init__(self, *, db: Database, messaging: Messaging) -> None:
        self._db = db
        self._messaging = messaging

    async def record(self, call: Call) -> None:
        """Keep an ended call's record in its conversation (and tell both users)."""
        async with self._db.read() as store:
            users = await store.users.by_ids([call.caller_id, call.callee_id])
        record = CallRecord(
            call_id=call.call_id,
            media=call.media.value,
            outcome=outcome(call).value,
            duration_s=duration_s(call),
        )
        await self._messaging.record_call(users[call.caller_id], users[call.callee_id], record)

    async def history(
        self, auth: AuthContext, *, before: int | None, limit: int
    ) -> list[CallHistoryEntry]:
        me = auth.user
        async with self._db.read() as store:
            rows = await store.messages.calls_of(me.id, before=before, limit=limit)
            peers = await store.users.by_ids(
                [m.recipient_id if m.sender_id == me.id else m.sender_id for m in rows]
            )
        entries = []
        for msg in rows:
            outgoing = msg.sender_id == me.id
            peer = peers[msg.recipient_id if outgoing else msg.sender_id]
            assert msg.call is not None
            entries.append(
                CallHistoryEntry(
                    message_id=msg.id,
                    call=CallRecord.model_validate_json(msg.call),
                    peer=user_view(peer),
                    direction="outgoing" if outgoing else "incoming",
                    created_at=msg.created_at,
                )
            )
        return entries
