"""What calls cost: attempt limits and TURN credentials, charged to whoever acts.

Every credential handed to a device is counted against the budget of the account whose
action asks for it (the caller for ringing, the asker for a switch, the callee for a
device that reconnects), never against someone else's whom others could then drain.
"""

from __future__ import annotations

from ringfence.config import Settings
from ringfence.services.errors import RateLimited
from ringfence.services.ratelimit import RateLimiter, retry_after
from ringfence.turn.credentials import TurnCredentialIssuer
from ringfence.wire.calls import IceServer


class CallBudget:
    def __init__(
        self, *, limiter: RateLimiter, turn: TurnCredentialIssuer, settings: Settings
    ) -> None:
        self._limiter = limiter
        self._turn = turn
        self._cfg = settings

    async def limit(
        self, key: str, limit: int, detail: str = "too many call attempts; try again later"
    ) -> None:
        """Count one attempt for ``key`` within a minute, or raise RateLimited."""
        wait = await self._limiter.hit(key, limit=limit, window_s=60.0)
        if wait is not None:
            raise RateLimited("call_rate_limited", detail, retry_after(wait))

    async def charge(self, user_id: int, count: int) -> None:
        """Count ``count`` credentials against ``user_id``'s budget (the account whose
        action asks for them), or raise RateLimited."""
        for _ in range(count):
            await self.limit(
                f"turn:{user_id}",
                self._cfg.turn_credentials_per_minute,
                "too many calls and call changes; try again later",
            )

    async def try_charge(self, user_id: int) -> bool:
        """Charge one credential to ``user_id``; False when their budget is spent."""
        try:
            await self.charge(user_id, 1)
        except RateLimited:
            return False
        return True

    def ice_server(self, account_id: int) -> IceServer:
        """A credential for ``account_id``'s device, under the account's pseudonym, so
        the relay's quota counts all of the account's allocations together. Every
        caller of this has charged someone's credential budget first."""
        ice = self._turn.issue_for(account_id)
        return IceServer(urls=list(ice.urls), username=ice.username, credential=ice.credential)
