"""A momentarily overloaded database answers 503 with Retry-After, never 500, and stores
nothing half-way: a lock held by another process, an exhausted pool, a PostgreSQL
deadlock or serialization failure, a server that cannot be reached. SQLite writers of
one process take turns on the event loop instead of on the busy timeout."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

import ringfence.app
from ringfence.app import create_app
from ringfence.storage.database import Database, DatabaseBusy
from ringfence.storage.repositories import NEVER, LiveSession
from tests.conftest import PG_URL, Api, DbPeek, make_settings

sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite locking (the SQLite run covers it)")
postgresql_only = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL")


@asynccontextmanager
async def app_with(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, **db_options: Any
) -> AsyncIterator[tuple[Api, Database]]:
    """The app in-process, its Database built with ``db_options`` (small timeouts)."""
    monkeypatch.setattr(ringfence.app, "Database", partial(Database, **db_options))
    app = create_app(make_settings(tmp_path, database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client), app.state.services.db


def assert_busy(resp: httpx.Response, code: str = "database_busy") -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": code, "detail": resp.json()["detail"]}
    assert resp.json()["detail"]
    assert int(resp.headers["retry-after"]) >= 1


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "ringfence.storage.database" and r.levelno == logging.WARNING
    ]


@sqlite_only
async def test_a_send_while_another_process_writes_is_a_503_and_its_retry_lands_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ringfence.db"
    async with app_with(
        tmp_path, f"sqlite+aiosqlite:///{path}", monkeypatch, busy_timeout_s=0.2
    ) as (api, _db):
        alice = await api.register("alice")
        await api.register("bob")
        other = sqlite3.connect(path, isolation_level=None)  # e.g. `ringfence admin`
        try:
            other.execute("BEGIN IMMEDIATE")
            with caplog.at_level(logging.WARNING):
                resp = await api.send(alice, "bob", "secret words", txn_id="t-1")
            assert_busy(resp)
            [warning] = warnings_of(caplog)
            assert "secret words" not in caplog.text
            assert "INSERT" not in warning.getMessage()
            assert other.execute("SELECT count(*) FROM messages").fetchone() == (0,)
            assert other.execute("SELECT count(*) FROM events").fetchone() == (0,)
        finally:
            other.execute("ROLLBACK")
            other.close()
        first = await api.send(alice, "bob", "secret words", txn_id="t-1")
        again = await api.send(alice, "bob", "secret words", txn_id="t-1")
        assert first.status_code == again.status_code == 201, first.text
        assert again.json() == first.json()
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT count(*) FROM messages").fetchone() == (1,)
        assert check.execute("SELECT count(*) FROM events").fetchone() == (2,)
        assert check.execute("SELECT max(stream_pos) FROM users").fetchone() == (1,)
    finally:
        check.close()


@postgresql_only
async def test_a_send_behind_a_row_lock_is_a_503_and_its_retry_lands_once(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    db_peek: DbPeek,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every new connection to this test's database waits at most 200 ms for a lock.
    name = make_url(database_url).database
    async with db_peek.engine.connect() as conn:
        await conn.execute(text(f'ALTER DATABASE "{name}" SET lock_timeout = 200'))
        await conn.commit()
    async with app_with(tmp_path, database_url, monkeypatch) as (api, _db):
        alice = await api.register("alice")
        await api.register("bob")
        async with db_peek.engine.connect() as other:  # e.g. an admin task, or a stuck node
            await other.execute(text("SELECT id FROM users WHERE username = 'bob' FOR UPDATE"))
            with caplog.at_level(logging.WARNING):
                resp = await api.send(alice, "bob", "secret words", txn_id="t-1")
            assert_busy(resp)
            [warning] = warnings_of(caplog)
            assert "55P03" in warning.getMessage()
            assert "secret words" not in caplog.text
            await other.rollback()
        assert await db_peek.rows("SELECT count(*) FROM messages") == [(0,)]
        first = await api.send(alice, "bob", "secret words", txn_id="t-1")
        again = await api.send(alice, "bob", "secret words", txn_id="t-1")
        assert first.status_code == again.status_code == 201, first.text
        assert again.json() == first.json()
    assert await db_peek.rows("SELECT count(*) FROM messages") == [(1,)]
    assert await db_peek.rows("SELECT count(*) FROM events") == [(2,)]


async def test_an_exhausted_pool_is_a_503(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout_s": 0.2}
    async with app_with(tmp_path, database_url, monkeypatch, **options) as (api, db):
        alice = await api.register("alice")
        await api.register("bob")
        async with db.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            with caplog.at_level(logging.WARNING):
                resp = await api.send(alice, "bob", "hi", txn_id="t-1")
            assert_busy(resp)
            assert len(warnings_of(caplog)) == 1
        resp = await api.send(alice, "bob", "hi", txn_id="t-1")
        assert resp.status_code == 201, resp.text


async def test_pool_timeouts_surface_from_read_and_write_as_busy(database_url: str) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0, pool_timeout_s=0.1)
    await db.start()
    try:
        async with db.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            for unit in (db.read, db.write):
                with pytest.raises(DatabaseBusy) as info:
                    async with unit() as store:
                        await store.users.by_id(1)
                assert info.value.code == "database_busy"
                assert info.value.retry_after_s == 1
        async with db.read() as store:  # released: all is well again
            assert await store.users.by_id(1) is None
    finally:
        await db.close()


async def test_an_unreachable_server_mid_run_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Database("postgresql+asyncpg://rf:hunter2secret@127.0.0.1:1/ringfence")
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(DatabaseBusy) as info:
            async with db.write() as store:
                await store.users.by_id(1)
    finally:
        await db.close()
    assert info.value.code == "database_unavailable"
    assert info.value.retry_after_s >= 1
    assert "hunter2secret" not in caplog.text
    assert len(warnings_of(caplog)) == 1


async def test_genuine_faults_are_not_disguised_as_busy(database_url: str) -> None:
    db = Database(database_url)
    await db.start()
    try:
        for unit in (db.read, db.write):
            # A syntax error: OperationalError on SQLite, ProgrammingError on PostgreSQL.
            with pytest.raises(DBAPIError) as info:
                async with unit() as store:
                    await store.session.execute(text("SELEC 1"))
            assert not isinstance(info.value, DatabaseBusy)
        with pytest.raises(IntegrityError):
            async with db.write() as store:
                await store.session.execute(
                    text(
                        "INSERT INTO events (user_id, pos, type, payload, created_at) "
                        "VALUES (424242, 1, 'x', '{}', CURRENT_TIMESTAMP)"
                    )
                )
    finally:
        await db.close()


@sqlite_only
async def test_sqlite_writers_take_turns_without_holding_connections(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ringfence.db'}", busy_timeout_s=30)
    await db.start()
    checked_out = 0
    most = 0
    order: list[int] = []

    # Only writers run here, so a checked-out connection is a writer holding one.
    def on_checkout(*_args: Any) -> None:
        nonlocal checked_out, most
        checked_out += 1
        most = max(most, checked_out)

    def on_checkin(*_args: Any) -> None:
        nonlocal checked_out
        checked_out -= 1

    event.listen(db.engine.sync_engine.pool, "checkout", on_checkout)
    event.listen(db.engine.sync_engine.pool, "checkin", on_checkin)

    async def writer(n: int) -> None:
        async with db.write() as store:
            await store.session.execute(
                text(
                    "INSERT INTO users (username, display_name, password_hash, verified, "
                    "suspended, stream_pos, created_at) "
                    "VALUES (:name, :name, 'x', false, false, 0, CURRENT_TIMESTAMP)"
                ),
                {"name": f"user{n}"},
            )
            await asyncio.sleep(0.01)  # other writers get the loop meanwhile
            order.append(n)

    try:
        await asyncio.gather(*(writer(n) for n in range(12)))
        assert most == 1
        assert sorted(order) == list(range(12))
        # A reader does not wait for a writer's turn (WAL): it sees the committed state.
        async with db.write() as store:
            await store.session.execute(text("UPDATE users SET display_name = 'changing'"))
            reader = asyncio.create_task(_display_names(db))
            names = await asyncio.wait_for(reader, 10)
            assert "changing" not in names
    finally:
        await db.close()


async def _display_names(db: Database) -> set[str]:
    async with db.read() as store:
        return set((await store.session.execute(text("SELECT display_name FROM users"))).scalars())


@postgresql_only
@pytest.mark.parametrize("provoke", ["lock_timeout", "deadlock", "serialization"])
async def test_postgresql_lock_failures_are_busy_and_roll_back(
    database_url: str, provoke: str
) -> None:
    db = Database(database_url)
    await db.start()
    try:
        async with db.write() as store:
            for name in ("a", "b"):
                await store.users.add(
                    username=name,
                    display_name=name,
                    password_hash="x",
                    now=datetime.now(UTC),
                )
        provoke_failure, outcomes = PROVOKE[provoke]
        with pytest.raises(DatabaseBusy) as info:
            await provoke_failure(db)
        assert info.value.code == "database_busy"
        async with db.read() as store:  # the failed transaction left nothing behind
            rows = await store.session.execute(text("SELECT username, stream_pos FROM users"))
            assert dict(tuple(row) for row in rows) in outcomes
    finally:
        await db.close()


async def _lock_timeout(db: Database) -> None:
    async with db.engine.connect() as other:
        await other.execute(text("SELECT id FROM users WHERE username = 'a' FOR UPDATE"))
        async with db.write() as store:
            await store.session.execute(text("SET LOCAL lock_timeout = '100ms'"))
            await store.session.execute(
                text("UPDATE users SET stream_pos = 99 WHERE username = 'a'")
            )


async def _deadlock(db: Database) -> None:
    """Two writers lock a and b in opposite orders; PostgreSQL breaks the tie by
    failing one of them. The other commits."""
    both_hold_one = asyncio.Barrier(2)

    async def writer(first: str, second: str, pos: int) -> None:
        async with db.write() as store:
            await store.session.execute(
                text("UPDATE users SET stream_pos = :p WHERE username = :u"),
                {"p": pos, "u": first},
            )
            await both_hold_one.wait()
            await store.session.execute(
                text("UPDATE users SET stream_pos = :p WHERE username = :u"),
                {"p": pos, "u": second},
            )

    results = await asyncio.gather(writer("a", "b", 5), writer("b", "a", 7), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1, results
    raise failures[0]


async def _serialization(db: Database) -> None:
    async with db.write() as store:
        await store.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        await store.session.execute(text("SELECT stream_pos FROM users WHERE username = 'a'"))
        async with db.engine.begin() as other:
            await other.execute(text("UPDATE users SET stream_pos = 5 WHERE username = 'a'"))
        await store.session.execute(text("UPDATE users SET stream_pos = 6 WHERE username = 'a'"))


# How to make each failure happen, and the states it may leave (the failed
# transaction's own writes never among them).
PROVOKE: dict[str, tuple[Callable[[Database], Any], list[dict[str, int]]]] = {
    "lock_timeout": (_lock_timeout, [{"a": 0, "b": 0}]),
    "deadlock": (_deadlock, [{"a": 5, "b": 5}, {"a": 7, "b": 7}]),
    "serialization": (_serialization, [{"a": 5, "b": 0}]),
}


async def _backend_pid(db: Database) -> int:
    """Run a write unit of work; the pid of the server backend that served it."""
    async with db.write() as store:
        return int(await store.session.scalar(text("SELECT pg_backend_pid()")))


async def _pooled_backend_dropped(db: Database) -> int:
    """Use a pooled connection, give it back, and have the server drop it: the pid of
    the backend that is gone (the pool is last in, first out: it is handed out next)."""
    import asyncpg  # type: ignore[import-untyped]

    pid = await _backend_pid(db)
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    killer = await asyncpg.connect(url)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        while await killer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            await asyncio.sleep(0.01)
    finally:
        await killer.close()
    return pid


@postgresql_only
async def test_an_idle_pooled_connection_the_server_dropped_is_replaced_unseen(
    database_url: str,
) -> None:
    # Idle for at least 0 s: every reused connection is pinged before it is handed out.
    db = Database(database_url, ping_after_idle_s=0)
    await db.start()
    try:
        gone = await _pooled_backend_dropped(db)
        assert await _backend_pid(db) != gone  # no error: replaced before use
    finally:
        await db.close()


@postgresql_only
async def test_a_connection_dropped_right_after_use_fails_one_unit_as_unavailable(
    database_url: str,
) -> None:
    # Used moments ago (within the hour): handed out without a ping, as under load.
    db = Database(database_url, ping_after_idle_s=3600)
    await db.start()
    try:
        gone = await _pooled_backend_dropped(db)
        with pytest.raises(DatabaseBusy) as info:
            await _backend_pid(db)
        assert info.value.code == "database_unavailable"  # a 503 with Retry-After
        assert await _backend_pid(db) != gone  # and the next one gets a new connection
    finally:
        await db.close()


@postgresql_only
async def test_a_one_statement_read_on_a_dropped_connection_is_unavailable_then_works(
    database_url: str,
) -> None:
    # Database.read_one runs its statement on the driver directly, in no transaction:
    # a lost connection must still be a 503 and be replaced, as under read().
    db = Database(database_url, ping_after_idle_s=3600)
    await db.start()
    nobody = LiveSession(1, NEVER, NEVER)

    async def check() -> bool:
        async with db.read_one() as store:
            return await store.sessions.is_active(nobody)

    try:
        await _pooled_backend_dropped(db)
        with pytest.raises(DatabaseBusy) as info:
            await check()
        assert info.value.code == "database_unavailable"
        assert await check() is False  # a new connection, and no session 1
    finally:
        await db.close()
