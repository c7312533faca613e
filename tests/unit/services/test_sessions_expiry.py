"""Sessions end: after ``session_idle_days`` without use, and ``session_max_days`` after
their login however much they are used. An ended session answers 401 (JSON, code
``session_expired``), is gone from the database and from every token cache, and its
WebSockets close; the password starts a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ringfence.app import create_app
from ringfence.backends.memory import InMemoryPresence
from ringfence.clock import FakeClock
from ringfence.realtime.bus import InMemoryBus
from ringfence.realtime.connection import CLOSE_SESSION_ENDED, Connection
from ringfence.realtime.hub import Hub
from ringfence.services.accounts import Accounts, AuthCache, SessionLifetime
from ringfence.services.errors import Unauthorized
from ringfence.services.passwords import Passwords
from ringfence.services.stream import EventStream
from ringfence.storage.database import Database
from tests.conftest import make_settings
from tests.unit.realtime.fakes import FakeHistory, FakeTransport

PASSWORD = "correct horse battery"
DAY = 24 * 3600.0
TTL = 5.0


@dataclass
class Node:
    db: Database
    clock: FakeClock
    accounts: Accounts
    cache: AuthCache
    hub: Hub

    async def session_rows(self) -> int:
        async with self.db.read() as store:
            user = await store.users.by_username("alice")
            assert user is not None
            return len(await store.sessions.for_user(user.id))

    async def socket(self, token: str) -> tuple[Connection, FakeTransport]:
        auth = await self.accounts.authenticate(token)
        transport = FakeTransport()
        conn = Connection(
            user_id=auth.user.id,
            device_id="phone",
            transport=transport,
            history=FakeHistory(),
            queue_size=16,
            session_id=auth.session_id,
        )
        await self.hub.attach(conn)
        conn.start(since=None, current=0)
        return conn, transport


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    db = Database(database_url)
    await db.start()
    clock = FakeClock()
    bus = InMemoryBus()
    cache = AuthCache(TTL, 100, clock.monotonic)
    lifetime = SessionLifetime(idle=timedelta(days=30), max_age=timedelta(days=180))
    stream = EventStream(db, bus, clock)
    accounts = Accounts(db, Passwords(), clock, None, stream, cache, sessions=lifetime)
    hub = Hub(bus, InMemoryPresence())
    await accounts.watch_sessions(hub, check_every_s=3600)
    yield Node(db, clock, accounts, cache, hub)
    await accounts.close()
    await hub.close_all()
    await db.close()


async def expired(accounts: Accounts, token: str) -> None:
    """Refused as expired: the first time it is presented after its end."""
    with pytest.raises(Unauthorized) as refused:
        await accounts.authenticate(token)
    assert refused.value.code == "session_expired"


async def gone(accounts: Accounts, token: str) -> None:
    """Refused as unknown: once deleted, an ended session's token is like any other
    wrong token (only its hash was ever stored, and that is gone too)."""
    with pytest.raises(Unauthorized) as refused:
        await accounts.authenticate(token)
    assert refused.value.code == "unauthorized"


async def test_a_session_unused_for_the_idle_time_ends(node: Node) -> None:
    _, token = await node.accounts.register("alice", PASSWORD, None)
    node.clock.advance(30 * DAY - 60)
    await node.accounts.authenticate(token)  # used just in time: 30 more days from now
    node.clock.advance(30 * DAY - 60)
    await node.accounts.authenticate(token)
    node.clock.advance(30 * DAY + 1)
    await expired(node.accounts, token)
    assert await node.session_rows() == 0  # deleted, not merely refused
    await gone(node.accounts, token)
    # The password starts a new session.
    _, fresh = await node.accounts.login("alice", PASSWORD)
    await node.accounts.authenticate(fresh)


async def test_a_session_ends_at_its_maximum_age_however_much_it_is_used(node: Node) -> None:
    _, token = await node.accounts.register("alice", PASSWORD, None)
    for _ in range(17):  # every 10 days, up to day 170
        node.clock.advance(10 * DAY)
        await node.accounts.authenticate(token)
    node.clock.advance(10 * DAY)  # day 180 (and the cache's few seconds are long over)
    await expired(node.accounts, token)


async def test_the_token_cache_does_not_outlive_the_session(node: Node) -> None:
    _, token = await node.accounts.register("alice", PASSWORD, None)
    for _ in range(17):
        node.clock.advance(10 * DAY)
        await node.accounts.authenticate(token)
    node.clock.advance(10 * DAY - 2)
    await node.accounts.authenticate(token)  # cached, with 2 s of the session left
    node.clock.advance(1)
    await node.accounts.authenticate(token)
    node.clock.advance(1.5)  # within the cache's TTL, but past the session's end
    await expired(node.accounts, token)


async def test_the_sweep_ends_expired_sessions_and_closes_their_sockets(node: Node) -> None:
    _, token = await node.accounts.register("alice", PASSWORD, None)
    _, other = await node.accounts.login("alice", PASSWORD)
    conn, transport = await node.socket(token)
    node.clock.advance(30 * DAY + 1)
    assert await node.accounts.sweep_sessions() == 1  # the other one, never used
    await gone(node.accounts, other)
    for _ in range(14):  # the socket's session is in use up to day 170...
        node.clock.advance(10 * DAY)
        assert await node.accounts.sweep_sessions() == 0
    assert transport.closes == []
    node.clock.advance(10 * DAY)  # ...and reaches its maximum age
    assert await node.accounts.sweep_sessions() == 1
    await transport.until(lambda: bool(transport.closes))
    assert transport.closes == [(CLOSE_SESSION_ENDED, "session ended")]
    assert await node.session_rows() == 0
    await gone(node.accounts, token)
    await conn.stop()


async def test_an_open_websocket_counts_as_use(node: Node) -> None:
    _, token = await node.accounts.register("alice", PASSWORD, None)
    conn, transport = await node.socket(token)
    for _ in range(6):  # 60 days connected, with no HTTP request at all
        node.clock.advance(10 * DAY)
        assert await node.accounts.sweep_sessions() == 0
    assert transport.closes == []
    await node.accounts.authenticate(token)
    await conn.stop()
    await node.hub.detach(conn)
    node.clock.advance(30 * DAY + 1)  # then unused for the idle time
    assert await node.accounts.sweep_sessions() == 1
    await gone(node.accounts, token)


async def test_an_expired_session_may_not_signal_calls(node: Node) -> None:
    _, token = await node.accounts.register("alice", PASSWORD, None)
    auth = await node.accounts.authenticate(token)
    assert await node.accounts.session_active(auth.session_id)
    node.clock.advance(180 * DAY + 1)
    assert not await node.accounts.session_active(auth.session_id)


async def test_the_api_answers_an_expired_session_with_a_json_401(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path, database_url, session_idle_days=1, session_max_days=7)
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            resp = await client.post(
                "/api/v1/accounts", json={"username": "alice", "password": PASSWORD}
            )
            token = resp.json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/v1/me", headers=auth)).status_code == 200
            clock.advance(DAY + 1)
            resp = await client.get("/api/v1/me", headers=auth)
            assert resp.status_code == 401
            assert resp.json()["error"] == "session_expired"
            resp = await client.post(
                "/api/v1/sessions", json={"username": "alice", "password": PASSWORD}
            )
            assert resp.status_code == 201
