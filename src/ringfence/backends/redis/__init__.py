"""Shared ephemeral state in Redis, for several nodes: live calls and their deadlines,
rate limits, and presence (``calls``, ``limiter``, ``presence``), plus the Bus
(``ringfence.realtime.redis_bus``); this module opens them together.

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

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ringfence.backends import Backend
from ringfence.backends.redis.calls import RedisCallStore
from ringfence.backends.redis.limiter import RedisRateLimiter
from ringfence.backends.redis.presence import RedisPresence
from ringfence.config import ConfigError
from ringfence.realtime.redis_bus import RedisBus

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
