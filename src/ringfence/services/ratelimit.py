"""The rate limiter every limit in services/ counts in (messages, logins, calls, TURN
credentials). Services own this interface; its implementations sit in
``ringfence.backends`` (memory for one node, Redis for many)."""

from __future__ import annotations

import abc
import math


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    async def hit(self, key: str, *, limit: int, window_s: float) -> float | None:
        """Count one attempt for ``key``. Returns None when allowed, or the seconds to
        wait when ``limit`` attempts were already made within the last ``window_s``.
        Refused attempts are not counted, so waiting always helps."""


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
