"""The Bus for several nodes: Redis pub/sub, one subscriber connection per node.

Each node keeps one dedicated connection in subscribed mode and subscribes a channel
per topic (``<prefix>user:7``, ``<prefix>device:7:abc``) only while a local connection
needs it; its handlers are the same as on :class:`~ringfence.realtime.bus.InMemoryBus`.
Publishing goes through an ordinary connection pool.

Redis answers on one connection in order, so :meth:`RedisBus.subscribe` sends
``SUBSCRIBE`` and then ``PING`` and returns when the ``PONG`` comes back: by then Redis
has registered the subscription, and anything published afterwards reaches us.

Redis pub/sub is fire-and-forget: while the connection is down, events are lost. The
bus reconnects by itself with backoff, subscribes every topic again and then calls
its resync hooks, so that every connection reads the durable events it missed back
from the database (they have positions; see ``Connection``). A publish that fails is
not retried (the event is committed in the database already); once publishing works
again the bus tells every node to resync, in case only this node lost Redis.

Nothing from an envelope is ever logged: payloads carry SDP and candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import RedisError

from ringfence.realtime.bus import (
    Bus,
    Envelope,
    Handler,
    Subscribers,
    Subscription,
    dispatch,
    without,
)
from ringfence.tasks import raise_if_cancelled, stop

log = logging.getLogger(__name__)

RESYNC_CHANNEL = "bus:resync"  # after the prefix: "every node, read back what you missed"


def encode_envelope(envelope: Envelope) -> bytes:
    return json.dumps(
        {
            "p": envelope.payload,
            "n": envelope.pos,
            "x": envelope.exclude_device,
            "s": envelope.end_session,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def decode_envelope(data: bytes) -> Envelope:
    raw = json.loads(data)
    pos, exclude, session = raw.get("n"), raw.get("x"), raw.get("s")
    if not isinstance(raw.get("p"), str) or not (pos is None or type(pos) is int):
        raise ValueError("malformed envelope")
    return Envelope(
        raw["p"],
        pos=pos,
        exclude_device=exclude if isinstance(exclude, str) else None,
        end_session=session if type(session) is int else None,
    )


async def _pass_through(response: Any) -> Any:
    return response


class RedisBus(Bus):
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        client: Redis,
        ping_interval_s: float = 5.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._prefix = prefix
        self._client = client  # publishing (a pool shared with the rest of the backend)
        # The subscriber connection fails fast: reconnecting is this class's job.
        self._pool = ConnectionPool.from_url(url, socket_connect_timeout=5, retry=None)
        self._ping_interval_s = ping_interval_s
        self._max_backoff_s = max_backoff_s
        self._topics: dict[str, Subscribers] = {}
        self._resync_hooks: list[Callable[[], None]] = []
        self._conn: AbstractConnection | None = None
        self._send_lock = asyncio.Lock()
        self._pongs: deque[asyncio.Future[None]] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None
        self._publish_only = False
        self.reconnects = 0  # how many times the subscriber connection came back

    @classmethod
    def publisher(cls, url: str, *, prefix: str) -> RedisBus:
        """A Bus for a process that holds no connections (``ringfence admin``): it is
        never started, only publishes (connecting at the first publish), owns its
        client, and a failed publish is logged but not followed by a resync: the nodes
        find out what they missed on their own."""
        client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        bus = cls(url, prefix=prefix, client=client)
        bus._publish_only = True
        return bus

    # --- Bus ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect now, so that a wrong URL stops start-up; later losses reconnect."""
        conn = await self._connect()
        self._runner = asyncio.get_running_loop().create_task(
            self._run(conn), name="redis-bus-subscriber"
        )

    async def close(self) -> None:
        for task in (self._runner, self._announcer):
            await stop(task)
        self._runner = self._announcer = None
        if self._conn is not None:  # the runner was cancelled before it began
            await self._conn.disconnect()
            self._conn = None
        await self._pool.aclose()
        if self._publish_only:
            await self._client.aclose()

    async def publish(self, topic: str, envelope: Envelope) -> None:
        try:
            await self._client.publish(self._channel(topic), encode_envelope(envelope))
        except (RedisError, OSError) as exc:
            if self._publish_only:
                log.warning("publishing to Redis failed (%s)", type(exc).__name__)
                return
            # Durable events are in the database already and are read back on resync;
            # ephemeral ones are lost, as they would be with the recipient offline.
            log.warning("publishing to Redis failed (%s); nodes will resync", type(exc).__name__)
            self._announce_resync()

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        sub = Subscription(topic, handler)
        subs = self._topics.get(topic)
        if subs is None:
            self._topics[topic] = (sub,)
            await self._command("SUBSCRIBE", self._channel(topic))
        else:
            self._topics[topic] = (*subs, sub)
        # Whether this call sent SUBSCRIBE or another one did and is still waiting,
        # the PONG comes only after Redis has handled it.
        await self._barrier()
        return sub

    async def unsubscribe(self, subscription: Subscription) -> None:
        remaining = without(self._topics.get(subscription.topic), subscription)
        if remaining is None:
            return
        if remaining:
            self._topics[subscription.topic] = remaining
        else:
            del self._topics[subscription.topic]
            await self._command("UNSUBSCRIBE", self._channel(subscription.topic))

    def on_resync(self, hook: Callable[[], None]) -> None:
        self._resync_hooks.append(hook)

    def topic_count(self) -> int:
        return len(self._topics)

    # --- the subscriber connection ----------------------------------------------------

    def _channel(self, topic: str) -> str:
        return self._prefix + topic

    async def _connect(self) -> AbstractConnection:
        """Open the subscriber connection and subscribe every topic that has subscribers.

        The connection is published in ``_conn`` before the list of topics is read, so
        a topic subscribed meanwhile is either in the list or sent on its own."""
        conn = self._pool.connection_class(**self._pool.connection_kwargs)
        # redis-py's default handler logs every pushed message at debug level, and
        # ours carry SDP, candidates and message text (as redis-py's PubSub does).
        set_push_handler = getattr(conn._parser, "set_pubsub_push_handler", None)
        if set_push_handler is not None:  # RESP3 parsers; RESP2 ones log nothing
            set_push_handler(_pass_through)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py
            self._conn = conn
            async with self._send_lock:
                channels = [self._prefix + RESYNC_CHANNEL, *map(self._channel, self._topics)]
                await conn.send_command("SUBSCRIBE", *channels, check_health=False)
        except BaseException:
            self._conn = None
            self._release_waiters()
            await conn.disconnect(nowait=True)
            raise
        return conn

    def _release_waiters(self) -> None:
        """The connection is gone: whoever waits for a PONG on it returns now; the next
        connection subscribes their topics and resyncs."""
        while self._pongs:
            pong = self._pongs.popleft()
            if not pong.done():
                pong.set_result(None)

    async def _command(self, *args: str) -> None:
        """Send on the subscriber connection; while it is down there is nothing to do,
        because reconnecting subscribes every topic that has subscribers then."""
        conn = self._conn
        if conn is None:
            return
        try:
            async with self._send_lock:
                await conn.send_command(*args, check_health=False)
        except (RedisError, OSError) as exc:
            log.debug("Redis subscriber command failed: %s", type(exc).__name__)

    async def _barrier(self, within_s: float | None = None) -> None:
        """Wait until Redis has handled everything sent before on the subscriber
        connection. Returns at once while it is down (see _command); a subscriber
        registered then is subscribed and resynced on reconnection."""
        conn = self._conn
        if conn is None:
            return
        pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            async with self._send_lock:
                self._pongs.append(pong)
                await conn.send_command("PING", check_health=False)
        except (RedisError, OSError):
            return  # the reader notices, and resolves the future
        await asyncio.wait_for(asyncio.shield(pong), within_s)

    async def _run(self, conn: AbstractConnection) -> None:
        """Serve one connection after another until closed."""
        first = True
        while True:
            try:
                await self._serve(conn, resync=not first)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("lost the Redis subscriber connection (%s)", type(exc).__name__)
                raise_if_cancelled()
            finally:
                self._conn = None
                self._release_waiters()
                await conn.disconnect(nowait=True)
            first = False
            conn = await self._reconnect()

    async def _reconnect(self) -> AbstractConnection:
        delay = 0.05
        while True:
            await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                conn = await self._connect()
            except (RedisError, OSError) as exc:
                log.debug("reconnecting to Redis failed: %s", type(exc).__name__)
                delay = min(self._max_backoff_s, delay * 2)
                raise_if_cancelled()
                continue
            self.reconnects += 1
            log.info("Redis subscriber connection is back")
            return conn

    async def _serve(self, conn: AbstractConnection, *, resync: bool) -> None:
        reader = asyncio.get_running_loop().create_task(self._read(conn), name="redis-bus-reader")
        try:
            # The PONG follows the confirmations of every SUBSCRIBE sent on connecting.
            await self._barrier(within_s=10)
            if resync:
                self._resync()
            while not reader.done():
                done, _ = await asyncio.wait({reader}, timeout=self._ping_interval_s)
                if not done:  # quiet for a while: make sure Redis is still there
                    await self._barrier(within_s=self._ping_interval_s * 2)
            reader.result()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await reader

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            response = await conn.read_response(timeout=math.inf, push_request=True)
            self._on_response(response)

    def _on_response(self, response: Any) -> None:
        if isinstance(response, list) and response:
            kind = response[0]
            if kind == b"message" and len(response) == 3:
                self._on_message(response[1], response[2])
                return
            if kind != b"pong":
                return  # subscribe / unsubscribe confirmations
        elif response != b"PONG":
            return
        if self._pongs:
            pong = self._pongs.popleft()
            if not pong.done():
                pong.set_result(None)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        topic = channel.decode()[len(self._prefix) :]
        if topic == RESYNC_CHANNEL:
            self._resync()
            return
        try:
            envelope = decode_envelope(data)
        except ValueError:
            log.warning("dropped a malformed envelope on a Redis channel")
            return
        dispatch(self._topics.get(topic), envelope)

    def _resync(self) -> None:
        for hook in self._resync_hooks:
            try:
                hook()
            except Exception:
                log.exception("bus resync hook failed")

    def _announce_resync(self) -> None:
        """Once publishing works again, have every node resync (retried with backoff)."""
        if self._announcer is not None and not self._announcer.done():
            return

        async def announce() -> None:
            delay = 0.1
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._client.publish(self._prefix + RESYNC_CHANNEL, b"")
                    return
                except (RedisError, OSError):
                    delay = min(self._max_backoff_s, delay * 2)
                    raise_if_cancelled()

        self._announcer = asyncio.get_running_loop().create_task(
            announce(), name="redis-bus-announce"
        )
