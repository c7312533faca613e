"""Which devices are connected on which node, in Redis (see ``ringfence.backends.redis`` for the
keys): a heartbeat per node, and each user's devices tagged with their node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ringfence.backends.redis.calls import text
from ringfence.realtime.hub import PresenceRegistry
from ringfence.tasks import raise_if_cancelled, stop

log = logging.getLogger(__name__)

PRESENCE_SET_TTL_S = 3600


class RedisPresence(PresenceRegistry):
    """Every node's devices, as long as the node keeps beating.

    A node that dies stops beating; ``ttl_s`` later its devices no longer count as
    connected anywhere, and calls they were in end after their grace period (the call
    service checks). If Redis loses the entries (a restart without persistence, or a
    node so stalled that its heartbeat expired), the next beat finds its own heartbeat
    gone and registers every local device again.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        node_id: str | None = None,
        heartbeat_s: float = 2.0,
        ttl_s: float = 6.0,
    ) -> None:
        self._r = client
        self._p = prefix
        self.node_id = node_id or secrets.token_hex(6)
        self._heartbeat_s = heartbeat_s
        self._ttl_ms = int(ttl_s * 1000)
        self._local: set[tuple[int, str]] = set()
        self._dirty = False
        self._beater: asyncio.Task[None] | None = None

    def _node(self, node_id: str) -> str:
        return f"{self._p}node:{node_id}"

    def _user(self, user_id: int) -> str:
        return f"{self._p}presence:{user_id}"

    def _member(self, device_id: str) -> str:
        return f"{self.node_id} {device_id}"

    async def start(self) -> None:
        await self._beat()
        self._beater = asyncio.get_running_loop().create_task(self._beat_forever())

    async def close(self) -> None:
        await stop(self._beater)
        self._beater = None
        with contextlib.suppress(RedisError, OSError):
            async with self._r.pipeline(transaction=False) as pipe:
                for user_id, device_id in self._local:
                    pipe.srem(self._user(user_id), self._member(device_id))
                pipe.delete(self._node(self.node_id))
                await pipe.execute()
        self._local.clear()

    async def add(self, user_id: int, device_id: str) -> None:
        self._local.add((user_id, device_id))
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.sadd(self._user(user_id), self._member(device_id))
                pipe.expire(self._user(user_id), PRESENCE_SET_TTL_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def remove(self, user_id: int, device_id: str) -> None:
        self._local.discard((user_id, device_id))
        try:
            await self._r.srem(self._user(user_id), self._member(device_id))
        except (RedisError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        # Redis is away: the next heartbeat that gets through writes the whole local
        # set again. (A removal it missed is left to the heartbeat-expiry filter.)
        log.warning("presence update failed (%s); will retry", type(exc).__name__)
        self._dirty = True

    async def devices(self, user_id: int) -> list[str]:
        key = self._user(user_id)
        entries = [text(m).partition(" ") for m in await self._r.smembers(key)]
        nodes = sorted({node for node, _, _ in entries})
        if not nodes:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.exists(self._node(node))
            alive = {node for node, up in zip(nodes, await pipe.execute(), strict=True) if up}
        stale = [f"{node} {dev}" for node, _, dev in entries if node not in alive]
        if stale:
            await self._r.srem(key, *stale)
        return sorted({dev for node, _, dev in entries if node in alive})

    async def is_connected(self, user_id: int, device_id: str) -> bool:
        return device_id in await self.devices(user_id)

    async def _beat(self) -> None:
        """Renew the heartbeat; if it had gone, write every local device again."""
        previous = await self._r.set(self._node(self.node_id), "1", px=self._ttl_ms, get=True)
        if previous is None or self._dirty:
            self._dirty = False
            await self._register_all()

    async def _register_all(self) -> None:
        local = list(self._local)
        if not local:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            for user_id, device_id in local:
                pipe.sadd(self._user(user_id), self._member(device_id))
                pipe.expire(self._user(user_id), PRESENCE_SET_TTL_S)
            await pipe.execute()

    async def _beat_forever(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                if loop.time() - renewed > PRESENCE_SET_TTL_S / 6:
                    self._dirty = True  # write the users' sets again, renewing their TTLs
                    renewed = loop.time()
                await self._beat()
            except (RedisError, OSError) as exc:
                log.warning("presence heartbeat failed: %s", type(exc).__name__)
                self._dirty = True
                raise_if_cancelled()
