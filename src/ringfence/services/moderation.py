"""Reports and suspensions: how harassment is dealt with once settings are not enough.

A report never tells the reported user anything. Suspending an account revokes every
session at once; a suspended user cannot log in, message or call, and nobody can
message or call them. The suspension is announced on the Bus when there is one (the
server's, or Redis for ``ringfence admin``), so every node closes the user's sockets and
forgets its tokens at once; without one, each node notices within a few seconds
(``Accounts.check_sockets``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ringfence.clock import Clock
from ringfence.services.accounts import AuthContext
from ringfence.services.errors import InvalidInput, NotFound, RateLimited
from ringfence.services.ratelimit import RateLimiter, retry_after
from ringfence.services.social import find_user
from ringfence.services.stream import EventStream
from ringfence.services.views import user_view
from ringfence.storage.database import Database
from ringfence.wire.models import UserView

REASON_MAX = 1000
REPORTS_PER_HOUR = 20


class ReportView(BaseModel):
    id: int
    reporter: UserView
    reported: UserView
    reason: str
    created_at: datetime
    resolved_at: datetime | None


class Moderation:
    def __init__(
        self,
        db: Database,
        limiter: RateLimiter,
        clock: Clock,
        stream: EventStream | None = None,
    ) -> None:
        self._db = db
        self._limiter = limiter
        self._clock = clock
        self._stream = stream

    async def report(self, auth: AuthContext, username: str, reason: str) -> ReportView:
        if len(reason) > REASON_MAX:
            raise InvalidInput("reason_too_long", f"reason is limited to {REASON_MAX} characters")
        wait = await self._limiter.hit(
            f"report:{auth.user.id}", limit=REPORTS_PER_HOUR, window_s=3600
        )
        if wait is not None:
            raise RateLimited(
                "report_rate_limited", "too many reports; try later", retry_after(wait)
            )
        async with self._db.write() as store:
            reported = await find_user(store, username)
            if reported.id == auth.user.id:
                raise InvalidInput("cannot_report_self", "you cannot report yourself")
            row = await store.reports.add(
                reporter_id=auth.user.id,
                reported_id=reported.id,
                reason=reason.strip(),
                now=self._clock.now(),
            )
        return ReportView(
            id=row.id,
            reporter=user_view(auth.user),
            reported=user_view(reported),
            reason=row.reason,
            created_at=row.created_at,
            resolved_at=None,
        )

    async def reports(self, *, include_resolved: bool, limit: int = 200) -> list[ReportView]:
        """Admin view: the queue of reports, oldest open first."""
        async with self._db.read() as store:
            rows = await store.reports.listing(include_resolved=include_resolved, limit=limit)
            users = await store.users.by_ids(
                [r.reporter_id for r in rows] + [r.reported_id for r in rows]
            )
        return [
            ReportView(
                id=r.id,
                reporter=user_view(users[r.reporter_id]),
                reported=user_view(users[r.reported_id]),
                reason=r.reason,
                created_at=r.created_at,
                resolved_at=r.resolved_at,
            )
            for r in rows
        ]

    async def resolve(self, report_id: int) -> None:
        async with self._db.write() as store:
            if not await store.reports.resolve(report_id, self._clock.now()):
                raise NotFound("report_not_found", f"no open report #{report_id}")

    async def set_suspended(self, username: str, suspended: bool) -> UserView:
        """Admin action. Suspending also signs the account out everywhere."""
        async with self._db.write() as store:
            user = await find_user(store, username)
            await store.users.set_suspended(user.id, suspended)
            if suspended:
                await store.sessions.revoke_all(user.id)
        if suspended and self._stream is not None:
            # After the commit: a node that re-reads the session must find it gone.
            await self._stream.end_sessions(user.id)
        return user_view(user)
