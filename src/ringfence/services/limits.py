"""How much one account may do per minute or hour, so that one person cannot flood
another person, the moderators or the server.

Each limit is a sliding window per account in the shared :class:`RateLimiter` (memory
on one node, Redis across nodes). A refusal is :class:`RateLimited`: 429 with
``Retry-After`` and a JSON body that says what was limited and when to try again.
Nothing here looks at anyone else's settings or blocks, so a refusal reveals nothing
about the person on the other end. Calls and TURN credentials have their own limits
in :mod:`ringfence.services.calls`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringfence.config import Settings
from ringfence.services.errors import RateLimited
from ringfence.services.ratelimit import RateLimiter, retry_after

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True, slots=True)
class Limit:
    key: str  # the limiter's key prefix; the account id follows
    limit: int
    window_s: float
    code: str
    detail: str


class ActionLimits:
    """The per-account limits of messages, follows and profile lookups."""

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self._limiter = limiter
        self.messages = Limit(
            "msg",
            settings.messages_per_minute,
            MINUTE,
            "message_rate_limited",
            "you are sending messages too quickly",
        )
        self.message_requests = Limit(
            "msg-request",
            settings.message_requests_per_hour,
            HOUR,
            "message_request_rate_limited",
            "you have sent many messages to people who have not accepted them yet",
        )
        self.follows = Limit(
            "follow",
            settings.follows_per_hour,
            HOUR,
            "follow_rate_limited",
            "you have followed and unfollowed people too often",
        )
        self.typing = Limit(
            "typing",
            settings.typing_notices_per_minute,
            MINUTE,
            "typing_rate_limited",
            "you are sending typing notices too often",
        )
        self.renames = Limit(
            "rename",
            settings.display_name_changes_per_day,
            DAY,
            "rename_rate_limited",
            "you have changed your display name many times today",
        )
        self.exports = Limit(
            "export",
            settings.exports_per_day,
            DAY,
            "export_rate_limited",
            "you have exported your data several times today",
        )
        self.lookups = Limit(
            "lookup",
            settings.profile_lookups_per_hour,
            HOUR,
            "lookup_rate_limited",
            "you have looked up too many people",
        )

    async def count(self, limit: Limit, account_id: int) -> None:
        """Count one action of ``account_id`` against ``limit``, or raise RateLimited
        (the refused action is not counted, so waiting always helps)."""
        wait = await self._limiter.hit(
            f"limit:{limit.key}:{account_id}", limit=limit.limit, window_s=limit.window_s
        )
        if wait is not None:
            after = retry_after(wait)
            raise RateLimited(limit.code, f"{limit.detail}; try again in {_when(after)}", after)


def _when(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minutes"
