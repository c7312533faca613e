"""The token cache: a few seconds without a read transaction per request, never a
revoked token honoured beyond that, and revocations applied at once on every node that
hears of them over the Bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import event
from sqlalchemy.orm.exc import DetachedInstanceError

from ringfence.backends.memory import InMemoryPresence, InMemoryRateLimiter
from ringfence.clock import FakeClock
from ringfence.realtime.bus import InMemoryBus
from ringfence.realtime.connection import CLOSE_SESSION_ENDED, Connection
from ringfence.realtime.hub import Hub
from ringfence.services.accounts import Accounts, AuthCache, hash_token
from ringfence.services.errors import Unauthorized
from ringfence.services.moderation import Moderation
from ringfence.services.passwords import Passwords
from ringfence.services.stream import EventStream
from ringfence.storage.database import Database
from ringfence.storage.repositories import User
from tests.unit.realtime.fakes import FakeHistory, FakeTransport

PASSWORD = "correct horse battery"
TTL = 5.0


class ResyncBus(InMemoryBus):
    """An in-memory Bus that can say it may have lost deliveries, as RedisBus does
    after an outage."""

    def __init__(self) -> None:
        super().__init__()
        self._hooks: list[Callable[[], None]] = []

    def on_resync(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def resync(self) -> None:
        for hook in self._hooks:
            hook()


@dataclass
class Node:
    """One server's share of the services, on a database and Bus shared with others."""

    accounts: Accounts
    cache: AuthCache
    hub: Hub
    moderation: Moderation


@dataclass
class World:
    db: Database
    clock: FakeClock
    bus: ResyncBus
    nodes: list[Node]
    statements: list[str]

    @property
    def node(self) -> Node:
        return self.nodes[0]

    async def add_node(self) -> Node:
        stream = EventStream(self.db, self.bus, self.clock)
        cache = AuthCache(TTL, 100, self.clock.monotonic)
        accounts = Accounts(self.db, Passwords(), self.clock, None, stream, cache)
        hub = Hub(self.bus, InMemoryPresence())
        await accounts.watch_sessions(hub, check_every_s=3600)
        limiter = InMemoryRateLimiter(self.clock.monotonic)
        node = Node(accounts, cache, hub, Moderation(self.db, limiter, self.clock, stream))
        self.nodes.append(node)
        return node

    async def revoke_in_the_database(self, token: str) -> None:
        """Revoke behind every node's back (as another process would)."""
        async with self.db.write() as store:
            found = await store.sessions.user_for_token(hash_token(token))
            assert found is not None
            await store.sessions.revoke(found[0].id)


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    db = Database(database_url)
    await db.start()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    w = World(db, FakeClock(), ResyncBus(), [], statements)
    await w.add_node()
    yield w
    for node in w.nodes:
        await node.accounts.close()
        await node.hub.close_all()
    await db.close()


async def test_a_checked_token_is_not_read_again_within_the_ttl(world: World) -> None:
    _, token = await world.node.accounts.register("alice", PASSWORD, None)
    first = await world.node.accounts.authenticate(token)
    world.statements.clear()
    again = await world.node.accounts.authenticate(token)
    assert world.statements == []
    assert (again.user.id, again.user.username, again.session_id) == (
        first.user.id,
        "alice",
        first.session_id,
    )
    # Keyed by the token's hash: the token itself is kept nowhere.
    assert list(world.node.cache._entries) == [hash_token(token)]
    assert token not in repr(world.node.cache._entries)


async def test_a_token_revoked_without_notice_is_refused_once_the_ttl_is_over(
    world: World,
) -> None:
    _, token = await world.node.accounts.register("alice", PASSWORD, None)
    await world.node.accounts.authenticate(token)
    await world.revoke_in_the_database(token)
    world.clock.advance(TTL - 0.1)
    await world.node.accounts.authenticate(token)  # still within the TTL
    world.clock.advance(0.2)
    with pytest.raises(Unauthorized):
        await world.node.accounts.authenticate(token)


async def test_logout_is_refused_at_once_on_every_node(world: World) -> None:
    other = await world.add_node()
    _, token = await world.node.accounts.register("alice", PASSWORD, None)
    _, phone = await world.node.accounts.register("bob", PASSWORD, None)
    auth = await world.node.accounts.authenticate(token)
    await other.accounts.authenticate(token)
    await other.accounts.authenticate(phone)
    await world.node.accounts.logout(auth)
    for node in world.nodes:
        with pytest.raises(Unauthorized):
            await node.accounts.authenticate(token)
    assert len(other.cache) == 1  # bob's token stays cached


async def test_a_suspension_is_refused_at_once_and_closes_sockets_on_every_node(
    world: World,
) -> None:
    other = await world.add_node()
    _, token = await world.node.accounts.register("alice", PASSWORD, None)
    auth = await other.accounts.authenticate(token)
    await world.node.accounts.authenticate(token)
    transport = FakeTransport()
    conn = Connection(
        user_id=auth.user.id,
        device_id="phone",
        transport=transport,
        history=FakeHistory(),
        queue_size=16,
        session_id=auth.session_id,
    )
    await other.hub.attach(conn)
    conn.start(since=None, current=0)

    await world.node.moderation.set_suspended("alice", True)
    for node in world.nodes:
        with pytest.raises(Unauthorized):
            await node.accounts.authenticate(token)
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    await conn.stop()


async def test_the_periodic_check_closes_sockets_of_users_suspended_without_notice(
    world: World,
) -> None:
    _, alice_token = await world.node.accounts.register("alice", PASSWORD, None)
    _, bob_token = await world.node.accounts.register("bob", PASSWORD, None)
    transports = {}
    for name, token in (("alice", alice_token), ("bob", bob_token)):
        auth = await world.node.accounts.authenticate(token)
        transports[name] = FakeTransport()
        conn = Connection(
            user_id=auth.user.id,
            device_id=name,
            transport=transports[name],
            history=FakeHistory(),
            queue_size=16,
            session_id=auth.session_id,
        )
        await world.node.hub.attach(conn)
        conn.start(since=None, current=0)
    # As `ringfence admin suspend` without Redis does: the database only.
    async with world.db.write() as store:
        bob = await store.users.by_username("bob")
        assert bob is not None
        await store.users.set_suspended(bob.id, True)
        await store.sessions.revoke_all(bob.id)
    assert await world.node.accounts.check_sockets() == 1
    bob_socket = transports["bob"]
    await bob_socket.until(lambda: bool(bob_socket.closes))
    assert bob_socket.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    assert transports["alice"].closes == []
    # Bob's cached token went with it; Alice's did not.
    with pytest.raises(Unauthorized):
        await world.node.accounts.authenticate(bob_token)
    world.statements.clear()
    await world.node.accounts.authenticate(alice_token)
    assert world.statements == []
    assert await world.node.accounts.check_sockets() == 0


async def test_a_lookup_that_raced_a_revocation_is_not_kept() -> None:
    clock = FakeClock()
    cache = AuthCache(TTL, 100, clock.monotonic)
    epoch = cache.epoch  # a lookup starts, reads a session still in the database...
    cache.drop_session(1)  # ...which is revoked before the lookup finishes
    user = User(id=1, username="alice", display_name="alice", verified=False)
    cache.put("hash", 1, user, since=clock.monotonic(), epoch=epoch)
    assert cache.get("hash") is None
    cache.put("hash", 1, user, since=clock.monotonic(), epoch=cache.epoch)
    assert cache.get("hash") is not None


async def test_the_cache_is_bounded_and_a_zero_ttl_keeps_nothing() -> None:
    clock = FakeClock()
    user = User(id=1, username="alice", display_name="alice", verified=False)
    cache = AuthCache(TTL, 3, clock.monotonic)
    for n in range(10):
        cache.put(f"h{n}", n, user, since=clock.monotonic(), epoch=cache.epoch)
    assert len(cache) == 3
    assert [cache.get(f"h{n}") is not None for n in (0, 7, 8, 9)] == [False, True, True, True]
    off = AuthCache(0, 3, clock.monotonic)
    off.put("h", 1, user, since=clock.monotonic(), epoch=off.epoch)
    assert len(off) == 0


async def test_a_bus_that_may_have_lost_notices_empties_the_cache_and_checks_now(
    world: World,
) -> None:
    _, token = await world.node.accounts.register("alice", PASSWORD, None)
    auth = await world.node.accounts.authenticate(token)
    transport = FakeTransport()
    conn = Connection(
        user_id=auth.user.id,
        device_id="phone",
        transport=transport,
        history=FakeHistory(),
        queue_size=16,
        session_id=auth.session_id,
    )
    await world.node.hub.attach(conn)
    conn.start(since=None, current=0)
    async with world.db.write() as store:  # a suspension whose notice was lost
        await store.users.set_suspended(auth.user.id, True)
    assert len(world.node.cache) == 1
    world.bus.resync()
    assert len(world.node.cache) == 0
    # The next check is an hour away; the resync brought it forward.
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    await conn.stop()


async def test_the_cached_user_has_no_password_hash(world: World) -> None:
    _, token = await world.node.accounts.register("alice", PASSWORD, None)
    await world.node.accounts.authenticate(token)
    cached = await world.node.accounts.authenticate(token)
    assert cached.user.username == "alice"
    with pytest.raises(DetachedInstanceError):
        _ = cached.user.password_hash
