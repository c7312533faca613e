"""Starting a call: who may ring whom, decided on the server from stored settings.

``start`` refuses every disallowed call with the same 403, after counting the attempt
against the rate limits, so a caller can probe neither settings nor blocks. The call
then waits in the call store for its offer (``services/calls/signaling.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from ringfence.calls.live import LiveCall
from ringfence.calls.session import RING
from ringfence.calls.state import IN_CALL, Call, CallState, Media
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.services.accounts import AuthContext
from ringfence.services.call_policy import call_verdict, pair_facts, transport_policies
from ringfence.services.calls.budget import CallBudget
from ringfence.services.calls.store import CallStore
from ringfence.services.errors import Conflict, Forbidden, RateLimited
from ringfence.storage.database import Database


@dataclass(frozen=True, slots=True)
class StartedCall:
    call_id: str
    ice_servers: list[dict[str, object]]
    ice_transport_policy: Literal["relay", "all"]
    ring_timeout_s: int


class CallAdmission:
    def __init__(
        self,
        *,
        db: Database,
        store: CallStore,
        budget: CallBudget,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self._db = db
        self.store = store
        self._budget = budget
        self._clock = clock
        self._cfg = settings

    async def start(self, auth: AuthContext, to: str, media: str) -> StartedCall:
        me = auth.user
        # Attempts are counted before any rule is looked at, refused or not, so that
        # probing someone's settings costs the same as calling them.
        await self._budget.limit(f"call:caller:{me.id}", self._cfg.call_attempts_per_minute)
        await self._budget.limit(
            f"call:pair:{me.id}:{to}", self._cfg.call_attempts_per_pair_per_minute
        )
        # The caller's credential, counted here with the attempts (before any rule) so
        # that running out of credentials answers the same whoever is called.
        await self._budget.charge(me.id, 1)
        async with self._db.read() as store:
            # The caller as stored now, not as the auth cache remembers it: being
            # verified or suspended a moment ago decides this call.
            fresh = await store.users.by_id(me.id)
            callee = await store.users.by_username(to)
            facts = (
                None if callee is None or fresh is None else await pair_facts(store, fresh, callee)
            )
            if callee is None or facts is None or (verdict := call_verdict(facts)) == "refuse":
                raise Forbidden("call_not_allowed", "you cannot call this user")
            caller_policy, callee_policy = transport_policies(facts)
        mine = await self.store.calls_of(me.id)
        if any(live.call.state in IN_CALL for live in mine):
            raise Conflict("already_in_call", "hang up your current call first")
        ringing = [
            live
            for live in mine
            if live.call.callee_id == callee.id
            and live.call.state in (CallState.CREATED, CallState.RINGING)
        ]
        if len(ringing) >= self._cfg.ringing_calls_per_pair:
            raise RateLimited(
                "call_rate_limited", "a call to this user is already ringing", retry_after_s=5
            )
        now = self._clock.time()
        call = Call(
            call_id=secrets.token_urlsafe(16),
            caller_id=me.id,
            callee_id=callee.id,
            media=Media(media),
            caller_device=None,
            created_at=now,
        )
        await self.store.put(
            LiveCall(
                call,
                caller_policy=caller_policy,
                callee_policy=callee_policy,
                silenced=verdict == "silence",
            )
        )
        # A call whose offer never comes ends quietly; its callee never knew of it.
        await self.store.set_deadline(call.call_id, RING.encode(), now + self._cfg.ring_timeout_s)
        return StartedCall(
            call_id=call.call_id,
            ice_servers=[self._budget.ice_server(me.id).model_dump()],
            ice_transport_policy=caller_policy,
            ring_timeout_s=self._cfg.ring_timeout_s,
        )
