"""The Redis backends against a real Redis: pub/sub order and confirmed subscriptions,
reconnection after a restart, compare-and-set under concurrency, deadlines claimed by
exactly one node, the rate limiter, and presence that expires with its node.

The contract tests run against the in-memory backend too: both must behave the same,
since the code above them is identical.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from ringfence.backends.memory import InMemoryCallStore, InMemoryPresence, InMemoryRateLimiter
from ringfence.backends.redis.calls import RedisCallStore, live_call_from_json, live_call_to_json
from ringfence.backends.redis.limiter import RedisRateLimiter
from ringfence.backends.redis.presence import RedisPresence
from ringfence.calls.live import LiveCall
from ringfence.calls.state import Call, CallState, Media, transition
from ringfence.realtime.bus import Envelope
from ringfence.realtime.hub import PresenceRegistry
from ringfence.realtime.redis_bus import RedisBus
from ringfence.services.calls.store import CallStore
from ringfence.services.ratelimit import RateLimiter
from tests.conftest import REDIS_URL
from tests.integration.scale.conftest import RedisServer, until

pytestmark = pytest.mark.integration

NO_REDIS = (
    "RINGFENCE_TEST_REDIS_URL is not set: these tests need a Redis server "
    "(scripts/test starts a throwaway one)"
)


@dataclass
class Shared:
    """Two clients of one Redis (two nodes), under a key prefix of this test's own."""

    url: str
    prefix: str
    a: Redis
    b: Redis

    async def keys(self) -> list[str]:
        return sorted([k.decode() async for k in self.a.scan_iter(match=self.prefix + "*")])


@pytest.fixture
async def redis() -> AsyncIterator[Shared]:
    if not REDIS_URL:
        pytest.skip(NO_REDIS)
    prefix = f"rf-unit-{secrets.token_hex(6)}:"
    shared = Shared(REDIS_URL, prefix, Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL))
    yield shared
    keys = await shared.keys()
    if keys:
        await shared.a.delete(*keys)
    await shared.a.aclose()
    await shared.b.aclose()


async def buses(shared: Shared) -> tuple[RedisBus, RedisBus]:
    one = RedisBus(shared.url, prefix=shared.prefix, client=shared.a)
    two = RedisBus(shared.url, prefix=shared.prefix, client=shared.b)
    await one.start()
    await two.start()
    return one, two


# --- the Bus ---------------------------------------------------------------------------


async def test_each_topic_arrives_in_order_on_another_node(redis: Shared) -> None:
    sender, receiver = await buses(redis)
    try:
        got: dict[str, list[Envelope]] = {"user:1": [], "user:2": []}
        for topic, seen in got.items():
            await receiver.subscribe(topic, seen.append)
        for n in range(1, 301):
            topic = "user:1" if n % 3 else "user:2"
            await sender.publish(topic, Envelope(f'{{"n":{n}}}', pos=n, exclude_device="dev-x"))
        await until(lambda: _true(sum(map(len, got.values())) == 300), 10, "300 envelopes")
        for topic, seen in got.items():
            positions = [env.pos for env in seen]
            assert positions == sorted(positions)
            assert all(env.payload == f'{{"n":{env.pos}}}' for env in seen), topic
            assert all(env.exclude_device == "dev-x" for env in seen)
        assert len(got["user:2"]) == 100
    finally:
        await sender.close()
        await receiver.close()


async def test_subscribe_returns_once_redis_has_the_subscription(redis: Shared) -> None:
    sender, receiver = await buses(redis)
    try:
        got: list[str] = []
        for n in range(100):
            # Published by another connection right after subscribe returns: it would
            # be lost if subscribe returned before Redis had registered it.
            await receiver.subscribe(f"device:1:d{n}", lambda env: got.append(env.payload))
            await sender.publish(f"device:1:d{n}", Envelope(str(n)))
        await until(lambda: _true(len(got) == 100), 10, "every envelope")
        assert got == [str(n) for n in range(100)]
    finally:
        await sender.close()
        await receiver.close()


async def test_the_channel_is_dropped_with_its_last_subscriber(redis: Shared) -> None:
    bus, other = await buses(redis)
    await other.close()
    try:
        channel = redis.prefix + "user:7"

        async def subscribers() -> int:
            counts = await redis.a.pubsub_numsub(channel)
            return int(counts[0][1])

        first = await bus.subscribe("user:7", lambda env: None)
        second = await bus.subscribe("user:7", lambda env: None)
        assert await subscribers() == 1  # one Redis subscription per node and topic
        await bus.unsubscribe(first)
        assert await subscribers() == 1
        await bus.unsubscribe(second)
        await until(lambda: _equal(subscribers(), 0), 5, "the unsubscription")
        assert bus.topic_count() == 0
    finally:
        await bus.close()


async def test_the_bus_reconnects_after_a_redis_restart_and_asks_for_a_resync(
    redis_server: RedisServer,
) -> None:
    client = Redis.from_url(redis_server.url)
    bus = RedisBus(redis_server.url, prefix="rf:", client=client)
    await bus.start()
    try:
        got: list[str] = []
        resyncs: list[int] = []
        bus.on_resync(lambda: resyncs.append(1))
        await bus.subscribe("user:1", lambda env: got.append(env.payload))
        await bus.publish("user:1", Envelope("before"))
        await until(lambda: _true(got == ["before"]), 5, "the first envelope")

        redis_server.kill()
        await bus.publish("user:1", Envelope("lost"))  # Redis is down: not an error
        await redis_server.start()
        await until(lambda: _true(bool(resyncs)), 30, "the resync after reconnecting")
        assert bus.reconnects >= 1
        await bus.publish("user:1", Envelope("after"))
        await until(lambda: _true("after" in got), 10, "an envelope after the restart")
        assert "lost" not in got
    finally:
        await bus.close()
        await client.aclose()


# --- live calls and deadlines (contract: in memory and in Redis) --------------------------


StoreMaker = Callable[[], CallStore]


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest) -> StoreMaker:
    """Makes the stores of two nodes sharing state (in memory: one store)."""
    if request.param == "memory":
        store = InMemoryCallStore()
        return lambda: store
    shared: Shared = request.getfixturevalue("redis")
    clients = iter([shared.a, shared.b, shared.a, shared.b])
    return lambda: RedisCallStore(next(clients), prefix=shared.prefix, ringing_ttl_s=60)


def ringing_call(call_id: str = "call-1") -> LiveCall:
    call = Call(call_id, 1, 2, Media.AUDIO, caller_device=None, created_at=1000.0)
    rang = transition(call, CallState.RINGING, at=1001.0, device_id="caller-phone")
    return LiveCall(
        rang,
        offer_sdp="v=0\r\no=- 1 1 IN IP4 203.0.113.9\r\n",
        pending_candidates=({"type": "call.candidate", "candidate": {"candidate": "x"}},),
        callee_policy="all",
    )


def test_a_live_call_survives_json_unchanged() -> None:
    live = ringing_call()
    assert live_call_from_json(live_call_to_json(live)) == live
    answered = LiveCall(
        transition(live.call, CallState.ANSWERED, at=1002.0, device_id="callee-laptop"),
        caller_policy="relay",
        callee_policy="relay",
        switching_device="caller-phone",
        switch_started=1003.5,
    )
    assert live_call_from_json(live_call_to_json(answered)) == answered


async def test_the_first_of_many_concurrent_answers_wins(stores: StoreMaker) -> None:
    node_a, node_b = stores(), stores()
    live = ringing_call()
    await node_a.put(live)
    read = await node_b.get("call-1")  # every device read the call while it rang
    assert read is not None

    async def answer(store: CallStore, device: str) -> bool:
        answered = transition(live.call, CallState.ANSWERED, at=1002.0, device_id=device)
        return await store.replace(read, LiveCall(answered))

    devices = [f"device-{n}" for n in range(20)]
    won = await asyncio.gather(
        *(answer(node_a if n % 2 else node_b, dev) for n, dev in enumerate(devices))
    )
    assert won.count(True) == 1
    stored = await node_b.get("call-1")
    assert stored is not None
    assert stored.call.answered_device == devices[won.index(True)]
    assert stored.offer_sdp is None


async def test_calls_are_indexed_by_user_and_removed_without_a_trace(
    stores: StoreMaker,
) -> None:
    node_a, node_b = stores(), stores()
    await node_a.put(ringing_call("call-1"))
    await node_a.put(ringing_call("call-2"))
    await node_a.set_deadline("call-1", "ring", 2000.0)
    await node_a.set_deadline("call-1", "check", 1500.0)
    assert {live.call.call_id for live in await node_b.calls_of(2)} == {"call-1", "call-2"}
    await node_b.remove("call-1")
    await node_b.remove("call-2")
    assert await node_a.get("call-1") is None
    assert await node_a.calls_of(1) == []
    assert await node_a.calls_of(2) == []
    assert await node_a.claim_due(10_000.0, lease_s=30, limit=100) == []


async def test_a_call_that_is_gone_gets_no_deadline(stores: StoreMaker) -> None:
    store = stores()
    await store.set_deadline("no-such-call", "ring", 1.0)
    assert await store.claim_due(10.0, lease_s=30, limit=10) == []


async def test_each_due_deadline_is_claimed_by_exactly_one_node(stores: StoreMaker) -> None:
    node_a, node_b = stores(), stores()
    for n in range(60):
        await node_a.put(ringing_call(f"call-{n}"))
        await node_a.set_deadline(f"call-{n}", "ring", 1000.0 + n)
    await node_a.put(ringing_call("later"))
    await node_a.set_deadline("later", "ring", 5000.0)

    claimed: list[tuple[str, str]] = []

    async def sweep(store: CallStore) -> None:
        while batch := await store.claim_due(2000.0, lease_s=30, limit=7):
            claimed.extend((d.call_id, d.kind) for d in batch)
            await asyncio.sleep(0)

    await asyncio.gather(sweep(node_a), sweep(node_b), sweep(node_a), sweep(node_b))
    assert sorted(claimed) == sorted((f"call-{n}", "ring") for n in range(60))


async def test_a_claim_that_is_not_released_comes_due_again(stores: StoreMaker) -> None:
    node_a, node_b = stores(), stores()
    await node_a.put(ringing_call())
    await node_a.set_deadline("call-1", "ring", 1000.0)
    (first,) = await node_a.claim_due(1000.0, lease_s=30, limit=10)
    assert await node_b.claim_due(1029.0, lease_s=30, limit=10) == []
    # Node a died holding it: after the lease another node gets it.
    (again,) = await node_b.claim_due(1031.0, lease_s=30, limit=10)
    assert (again.call_id, again.kind) == ("call-1", "ring")
    await node_a.release(first)  # a stale release does not drop the newer claim
    assert await node_b.claim_due(1062.0, lease_s=30, limit=10) != []


async def test_release_keeps_a_deadline_set_again_meanwhile(stores: StoreMaker) -> None:
    store = stores()
    await store.put(ringing_call())
    await store.set_deadline("call-1", "check", 1000.0)
    (claim,) = await store.claim_due(1000.0, lease_s=30, limit=10)
    await store.set_deadline("call-1", "check", 1002.0)  # what the action did
    await store.release(claim)
    (again,) = await store.claim_due(1002.0, lease_s=30, limit=10)
    assert again.kind == "check"
    await store.release(again)
    assert await store.claim_due(10_000.0, lease_s=30, limit=10) == []


async def test_keep_existing_deadline_when_asked(stores: StoreMaker) -> None:
    store = stores()
    await store.put(ringing_call())
    await store.set_deadline("call-1", "grace:1:phone", 1000.0)
    await store.set_deadline("call-1", "grace:1:phone", 1500.0, replace=False)
    (claim,) = await store.claim_due(1000.0, lease_s=30, limit=10)
    assert claim.kind == "grace:1:phone"


async def test_a_writer_that_read_before_another_wrote_cannot_undo_it(
    stores: StoreMaker,
) -> None:
    """Compare-and-set on the revision, not the state: a write decided on a stale read
    (here: the call still allowed direct connections) loses, even though the call is in
    the same state, so a tightened policy can never be written back loosened."""
    node_a, node_b = stores(), stores()
    await node_a.put(ringing_call())
    stale = await node_a.get("call-1")
    fresh = await node_b.get("call-1")
    assert stale is not None
    assert fresh is not None
    assert stale.revision == fresh.revision == 1
    tightened = dataclasses.replace(fresh, callee_policy="relay")
    assert await node_b.replace(fresh, tightened)
    queued = dataclasses.replace(stale, pending_candidates=(*stale.pending_candidates, {}))
    assert not await node_a.replace(stale, queued)
    stored = await node_a.get("call-1")
    assert stored is not None
    assert stored.callee_policy == "relay"
    assert stored.revision == 2
    # Read again, the same change goes through on top of the tightening.
    again = dataclasses.replace(stored, pending_candidates=(*stored.pending_candidates, {}))
    assert await node_a.replace(stored, again)
    final = await node_b.get("call-1")
    assert final is not None
    assert (final.callee_policy, len(final.pending_candidates), final.revision) == ("relay", 2, 3)
    # A value never read from the store (revision 0) replaces nothing.
    assert not await node_a.replace(ringing_call(), ringing_call())


async def test_redis_call_keys_expire_and_hold_sdp_only_while_ringing(redis: Shared) -> None:
    store = RedisCallStore(redis.a, prefix=redis.prefix, ringing_ttl_s=60, answered_ttl_s=120)
    live = ringing_call()
    await store.put(live)
    key = f"{redis.prefix}call:call-1"
    assert 0 < await redis.a.ttl(key) <= 60
    assert b"203.0.113.9" in (await redis.a.hget(key, "data") or b"")
    answered = transition(live.call, CallState.ANSWERED, at=1002.0, device_id="callee-phone")
    read = await store.get("call-1")
    assert read is not None
    assert await store.replace(read, LiveCall(answered))
    assert 60 < await redis.a.ttl(key) <= 120
    assert b"203.0.113.9" not in (await redis.a.hget(key, "data") or b"")
    await store.remove("call-1")
    assert await redis.keys() == []


# --- rate limits ---------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def limiters(request: pytest.FixtureRequest) -> Callable[[], RateLimiter]:
    if request.param == "memory":
        limiter = InMemoryRateLimiter(time.monotonic)
        return lambda: limiter
    shared: Shared = request.getfixturevalue("redis")
    clients = iter([shared.a, shared.b])
    return lambda: RedisRateLimiter(next(clients), prefix=shared.prefix)


async def test_the_limit_holds_across_nodes_and_waiting_helps(
    limiters: Callable[[], RateLimiter],
) -> None:
    node_a, node_b = limiters(), limiters()
    results = await asyncio.gather(
        *(
            (node_a if n % 2 else node_b).hit("call:caller:1", limit=5, window_s=0.6)
            for n in range(20)
        )
    )
    assert results.count(None) == 5
    waits = [wait for wait in results if wait is not None]
    assert all(0 < wait <= 0.6 for wait in waits)
    assert await node_a.hit("call:caller:2", limit=5, window_s=0.6) is None  # per key
    await asyncio.sleep(max(waits) + 0.05)
    assert await node_b.hit("call:caller:1", limit=5, window_s=0.6) is None


async def test_while_redis_is_down_each_node_still_enforces_the_limit(
    redis_server: RedisServer,
) -> None:
    client = Redis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=1)
    limiter = RedisRateLimiter(client, prefix="rf-down:")
    try:
        assert await limiter.hit("msg:1", limit=2, window_s=60) is None
        redis_server.kill()
        # What Redis counted is out of reach; this node counts afresh, and refuses
        # the third attempt rather than answering an error or letting it through.
        assert await limiter.hit("msg:1", limit=2, window_s=60) is None
        assert await limiter.hit("msg:1", limit=2, window_s=60) is None
        wait = await limiter.hit("msg:1", limit=2, window_s=60)
        assert wait is not None
        assert 0 < wait <= 60
        await redis_server.start()  # empty, as after a crash

        async def counted_in_redis() -> bool:
            await limiter.hit("msg:2", limit=5, window_s=60)
            return bool(await client.exists("rf-down:rate:msg:2"))

        await until(counted_in_redis, 10, "counting to go back to Redis")
    finally:
        await client.aclose()


# --- presence ------------------------------------------------------------------------


async def test_presence_is_shared_and_ends_with_its_node(redis: Shared) -> None:
    node_a = RedisPresence(redis.a, prefix=redis.prefix, heartbeat_s=0.1, ttl_s=0.5)
    node_b = RedisPresence(redis.b, prefix=redis.prefix, heartbeat_s=0.1, ttl_s=0.5)
    await node_a.start()
    await node_b.start()
    try:
        await node_a.add(1, "phone")
        await node_b.add(1, "laptop")
        await node_b.add(1, "phone")  # the same device resumed on node b
        assert await node_a.devices(1) == ["laptop", "phone"]
        await node_b.remove(1, "phone")  # the old socket's clean-up on node b
        assert await node_b.is_connected(1, "phone")  # still on node a
        assert await node_b.devices(2) == []

        # Node a stops beating, as if SIGKILLed: its devices go once its heartbeat expires.
        assert node_a._beater is not None
        node_a._beater.cancel()

        async def phone_gone() -> bool:
            return not await node_b.is_connected(1, "phone")

        await until(phone_gone, 5, "node a's devices to expire")
        assert await node_b.devices(1) == ["laptop"]
        assert await redis.a.smembers(f"{redis.prefix}presence:1") == {
            f"{node_b.node_id} laptop".encode()
        }  # the dead node's entries were pruned
    finally:
        await node_a.close()
        await node_b.close()
    assert await redis.keys() == []


async def test_presence_comes_back_after_redis_lost_it(redis: Shared) -> None:
    node = RedisPresence(redis.a, prefix=redis.prefix, heartbeat_s=0.1, ttl_s=0.5)
    await node.start()
    try:
        await node.add(3, "phone")
        await redis.a.delete(*await redis.keys())  # as a Redis restart would

        async def back() -> bool:
            return await node.is_connected(3, "phone")

        await until(back, 5, "the device to be registered again")
    finally:
        await node.close()


async def test_in_memory_presence_follows_the_same_contract() -> None:
    presence: PresenceRegistry = InMemoryPresence()
    await presence.add(1, "phone")
    await presence.add(1, "laptop")
    await presence.remove(1, "phone")
    assert await presence.devices(1) == ["laptop"]
    assert not await presence.is_connected(1, "phone")


async def _true(value: bool) -> bool:
    return value


async def _equal(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
