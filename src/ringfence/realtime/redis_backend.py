"""Shared ephemeral state in Redis, for several nodes: live calls and their deadlines,
rate limits, and presence. The Bus is in ``redis_bus``, live calls in ``redis_calls``,
presence in ``redis_presence``; this module opens them together.

Keys, all under the configured prefix (``ringfence:`` by default):

- ``call:<id>``: hash {state, users, data}; ``data`` is the LiveCall as JSON, with the
  offer SDP while the call rings. It expires ``ringing_ttl_s`` after its last write
  while it rings and ``answered_ttl_s`` after its last liveness check once answered,
  so nothing outlives the nodes that look after it.
- ``user-calls:<user id>``: set of the user's live call ids.
- ``call-deadlines``: sorted set of "<call id> <kind>" by due time (epoch seconds);
  ``call-deadline-kinds:<id>`` lists a call's kinds, so that removing a call clears
  them. A claim pushes the score to the end of a lease instead of removing it. Every
  live call sets a deadline every few seconds, which keeps these keys from expiring.
- ``rate:<key>``: sorted set of attempts (microseconds, Redis's clock).
- ``node:<node id>``: a node's heartbeat, expiring ``ttl_s`` after the last beat.
- ``presence:<user id>``: set of "<node id> <device id>"; entries of nodes whose
  heartbeat expired are ignored and pruned when read. Nodes renew the sets of their
  users now and then, so the entries of a dead node go within ``PRESENCE_SET_TTL_S``
  even if nobody reads them.

The scripts build key names from the prefix, so this targets a single Redis (or a
primary with replicas), not Redis Cluster. SDP and candidates are never logged.
"""

from __future__ import annotations

import logging
import secrets
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ringfence.config import ConfigError
from ringfence.realtime.backend import Backend
from ringfence.realtime.ephemeral import InMemoryRateLimiter, RateLimiter
from ringfence.realtime.redis_bus import RedisBus
from ringfence.realtime.redis_calls import RedisCallStore
from ringfence.realtime.redis_presence import RedisPresence

log = logging.getLogger(__name__)


async def open_redis_backend(
    url: str,
    *,
    prefix: str,
    ring_timeout_s: float,
    heartbeat_s: float = 2.0,
    presence_ttl_s: float = 6.0,
) -> Backend:
    """Connect to Redis (failing start-up loudly if it cannot) and build the backend."""
    client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        # Not the URL itself: it may hold a password.
        raise ConfigError(f"cannot reach Redis at redis_url: {type(exc).__name__}") from exc
    return Backend(
        bus=RedisBus(url, prefix=prefix, client=client),
        call_store=RedisCallStore(client, prefix=prefix, ringing_ttl_s=int(ring_timeout_s) + 60),
        limiter=RedisRateLimiter(client, prefix=prefix),
        presence=RedisPresence(
            client, prefix=prefix, heartbeat_s=heartbeat_s, ttl_s=presence_ttl_s
        ),
        finalizers=(client.aclose,),
    )


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
