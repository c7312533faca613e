"""Rate limits shared by every node, counted in Redis (``rate:<key>``)."""

from __future__ import annotations

import logging
import secrets
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ringfence.backends.memory import InMemoryRateLimiter
from ringfence.services.ratelimit import RateLimiter

log = logging.getLogger(__name__)


# A sliding-window log on Redis's own clock, so that nodes' clocks need not agree.
# KEYS: the counter. ARGV: limit, window (microseconds), a unique suffix.
# Returns 0 when allowed, else the microseconds to wait.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 0
"""


class RedisRateLimiter(RateLimiter):
    """Limits shared by every node, counted in Redis.

    While Redis cannot be reached, each node counts on its own, in memory, and keeps
    answering: a limit that holds per node (looser by the number of nodes) is better
    than refusing every message and login until Redis is back, and far better than
    no limit. Counting returns to Redis with the first command that succeeds; what a
    node counted alone is not carried over.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        fallback: RateLimiter | None = None,
    ) -> None:
        self._p = prefix
        self._hit = client.register_script(_HIT)
        self._fallback = fallback or InMemoryRateLimiter(time.monotonic)
        self._unreachable = False

    async def hit(self, key: str, *, limit: int, window_s: float) -> float | None:
        try:
            wait_us = await self._hit(
                keys=[f"{self._p}rate:{key}"],
                args=[limit, int(window_s * 1_000_000), secrets.token_hex(4)],
            )
        except (RedisError, OSError) as exc:
            if not self._unreachable:
                self._unreachable = True
                log.warning(
                    "rate limits: Redis unreachable (%s); counting on this node alone "
                    "until it is back",
                    type(exc).__name__,
                )
            return await self._fallback.hit(key, limit=limit, window_s=window_s)
        if self._unreachable:
            self._unreachable = False
            log.info("rate limits: Redis reachable again; counting shared limits there")
        return None if not wait_us else int(wait_us) / 1_000_000
