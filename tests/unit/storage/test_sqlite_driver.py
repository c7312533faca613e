"""The SQLite adapter (ringfence.storage.sqlite_driver): one aiosqlite call per
statement, none for a write's direct statements and savepoints (they run on the event
loop's thread), and everything a statement returns arrives intact. It leans on two aiosqlite
internals; the first test fails loudly, naming them, when aiosqlite changes.

Group-commit writers run the send path's statements directly (``SqliteDirect``), inside
each writer's savepoint; what they read and write either way is checked on both
backends in test_direct.py."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection
from sqlalchemy.exc import IntegrityError

from ringfence.storage.database import Database
from ringfence.storage.repositories import NEVER, LiveSession, Store, StoredMessage
from ringfence.storage.sqlite_driver import OneHopDialect, SqliteDirect, engine_url
from tests.unit.storage.helpers import add_message, add_users


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    await database.start()
    try:
        yield database
    finally:
        await database.close()


def test_the_aiosqlite_internals_it_uses_are_still_there() -> None:
    execute = getattr(aiosqlite.Connection, "_execute", None)
    assert inspect.iscoroutinefunction(execute), (
        "aiosqlite.Connection._execute(fn, *args) is gone or changed: "
        "ringfence.storage.sqlite_driver queues each statement with it"
    )
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn", None), property), (
        "aiosqlite.Connection._conn (the sqlite3 connection) is gone: "
        "ringfence.storage.sqlite_driver runs statements on it"
    )
    source = inspect.getsource(aiosqlite.Connection.__init__)
    assert "self._connection" in source, (
        "aiosqlite.Connection._connection (the sqlite3 connection, or None once closed) "
        "is gone: ringfence.storage.sqlite_driver reads whether it is in a transaction"
    )


def test_only_sqlite_aiosqlite_urls_are_served_by_it() -> None:
    assert str(engine_url("sqlite+aiosqlite:////data/ringfence.db")).startswith(
        "sqlite+ringfence_aiosqlite:////data/ringfence.db"
    )
    url = "postgresql+asyncpg://u@localhost/ringfence"
    assert engine_url(url) == url


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls queued on aiosqlite's thread from now on, by function name."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_a_statement_is_one_call_on_aiosqlites_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(db.engine.dialect, OneHopDialect)
    calls = _count_calls(monkeypatch)
    async with db.read() as store:
        await store.session.execute(text("SELECT 0"))  # the transaction's BEGIN is a call too
        calls.clear()
        rows = (
            await store.session.execute(text("SELECT 1, 'two' UNION ALL SELECT 3, 'four'"))
        ).all()
        assert calls == ["_execute"]
    assert [tuple(r) for r in rows] == [(1, "two"), (3, "four")]


async def test_a_one_statement_read_is_one_call_on_aiosqlites_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call frame's session check (Accounts.session_active): no BEGIN, and no
    # ROLLBACK when the pool takes the connection back, as a read() has.
    (alice,) = await add_users(db, "alice", now=NOW)
    async with db.write() as store:
        session_id = (await store.sessions.add(user_id=alice, token_hash="h" * 64, now=NOW)).id
    live = LiveSession(session_id, NEVER, NEVER)
    async with db.read_one() as store:  # the connection is opened once, before counting
        assert await store.sessions.is_active(live)
    calls = _count_calls(monkeypatch)
    async with db.read_one() as store:
        assert await store.sessions.is_active(live)
        assert not await store.sessions.is_active(LiveSession(session_id + 1, NEVER, NEVER))
        assert await store.users.shown(alice) is not None  # a ring's caller read too
    assert calls == ["_execute"] * 3  # the three statements, nothing else
    calls.clear()
    async with db.read() as store:
        assert await store.sessions.is_active(live)
    assert len(calls) == 3  # BEGIN, the statement, ROLLBACK


async def test_a_connection_given_back_after_a_commit_costs_no_rollback_call(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.write() as store:
        await store.session.execute(text("CREATE TABLE t (x INTEGER)"))
    calls = _count_calls(monkeypatch)
    async with db.write() as store:
        await store.session.execute(text("INSERT INTO t VALUES (1)"))
    # BEGIN IMMEDIATE (the write turn's), SAVEPOINT, the INSERT, RELEASE and COMMIT; the
    # pool's rollback as it takes the connection back found nothing to roll back.
    assert "rollback" not in calls

    async def failing_writer() -> None:
        async with db.write() as store:
            await store.session.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("a writer fails: its work is rolled back")

    with pytest.raises(RuntimeError):
        await failing_writer()
    async with db.read() as store:
        assert await store.session.scalar(text("SELECT count(*) FROM t")) == 1


async def test_rows_counts_ids_and_errors_come_back_as_sqlalchemy_expects(db: Database) -> None:
    async with db.write() as store:
        s = store.session
        await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        inserted = await s.execute(text("INSERT INTO t (name) VALUES (:n)"), {"n": "a"})
        assert inserted.lastrowid == 1
        # executemany
        await s.execute(text("INSERT INTO t (name) VALUES (:n)"), [{"n": "b"}, {"n": "c"}])
        updated = await s.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        returned = await s.execute(text("INSERT INTO t (name) VALUES ('d') RETURNING id, name"))
        assert [tuple(r) for r in returned] == [(4, "d")]
        one = await s.execute(text("SELECT name FROM t ORDER BY id"))
        assert one.fetchone() == ("a",)
        assert [r[0] for r in one.fetchmany(2)] == ["b!", "c!"]
        assert [r[0] for r in one.fetchall()] == ["d"]
        empty = await s.execute(text("SELECT name FROM t WHERE id > 100"))
        assert empty.first() is None
    with pytest.raises(IntegrityError):
        async with db.write() as store:
            await store.session.execute(text("INSERT INTO t (name) VALUES ('a')"))
    async with db.read() as store:
        count = await store.session.scalar(text("SELECT count(*) FROM t"))
    assert count == 4


NOW = datetime(2026, 12, 7, 10, 11, 12, 345678, tzinfo=UTC)


async def _users(db: Database, *names: str) -> list[int]:
    return await add_users(db, *names, now=NOW)


async def _message(
    store: Store, conv_id: int, sender: int, recipient: int, txn_id: str, text: str = "hi"
) -> StoredMessage | None:
    return await add_message(store, conv_id, sender, recipient, text=text, txn_id=txn_id, now=NOW)


def test_the_sqlalchemy_internal_it_uses_is_still_there() -> None:
    source = inspect.getsource(AsyncAdapt_aiosqlite_connection.__init__)
    assert "_execute_mutex" in source, (
        "SQLAlchemy's aiosqlite adapter no longer has _execute_mutex: "
        "ringfence.storage.sqlite_driver.SqliteDirect holds it around each statement"
    )


async def test_group_commit_writers_run_the_send_path_directly(db: Database) -> None:
    async with db.write() as store:
        assert isinstance(store.messages._direct, SqliteDirect)
        assert store.messages._direct is not None


async def test_a_failed_writers_direct_writes_are_undone_and_its_groups_others_kept(
    db: Database,
) -> None:
    alice, bob = await _users(db, "alice", "bob")
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)

    async def send(txn_id: str, *, fail: bool) -> None:
        async with db.write() as store:
            assert store.messages._direct is not None
            await _message(store, conv_id, alice, bob, txn_id, txn_id)
            await store.users.next_stream_positions([alice, bob])
            if fail:
                raise RuntimeError("this writer fails after its writes")

    outcomes = await asyncio.gather(
        send("kept-1", fail=False),
        send("undone", fail=True),
        send("kept-2", fail=False),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "RuntimeError", "NoneType"]
    async with db.read() as store:
        texts = (await store.session.execute(text("SELECT text FROM messages ORDER BY id"))).all()
        assert [t for (t,) in texts] == ["kept-1", "kept-2"]
        assert await store.users.stream_pos(alice) == 2


async def test_a_writes_savepoints_make_no_call_on_aiosqlites_thread_and_roll_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[1]) if len(args) > 1 else "")
        return await original(self, fn, *args, **kwargs)

    heard: list[str] = []

    def listen(*args: Any) -> None:
        heard.append(args[2])

    (alice,) = await _users(db, "alice")
    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        async with db.write() as store:
            s = store.session
            await s.execute(text("SELECT 0"))
            calls.clear()
            heard.clear()
            kept = await s.begin_nested()
            await s.execute(
                text("UPDATE users SET display_name = 'kept' WHERE id = :id"), {"id": alice}
            )
            await kept.commit()
            # The UPDATE went through SQLAlchemy to aiosqlite's thread; the savepoint
            # and its release ran on this one, and were heard all the same.
            assert calls == ["UPDATE users SET display_name = 'kept' WHERE id = ?"]
            assert heard[0].startswith("SAVEPOINT sa_savepoint_")
            assert heard[-1].startswith("RELEASE SAVEPOINT sa_savepoint_")
            undone = await s.begin_nested()
            await s.execute(
                text("UPDATE users SET display_name = 'undone' WHERE id = :id"), {"id": alice}
            )
            await undone.rollback()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)
    async with db.read() as store:
        name = await store.session.scalar(
            text("SELECT display_name FROM users WHERE id = :id"), {"id": alice}
        )
    assert name == "kept"


async def test_a_writes_direct_statements_make_no_call_on_aiosqlites_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A send's statements under the write turn: none is handed to aiosqlite's thread
    # (SqliteDirect). The write's BEGIN IMMEDIATE and COMMIT are: they can wait, for
    # the lock and for the fsync.
    alice, bob = await add_users(db, "alice", "bob", now=NOW)
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)
    calls = _count_calls(monkeypatch)
    async with db.write() as store:
        assert isinstance(store.messages._direct, SqliteDirect)
        begun = list(calls)
        context = await store.conversations.send_context(alice, username="bob", txn_id="t")
        assert context is not None
        msg = await add_message(store, conv_id, alice, bob, text="hi", txn_id="t", now=NOW)
        assert msg is not None
        positions = await store.conversations.touch_and_reserve(conv_id, msg.id, NOW, [bob, alice])
        await store.events.append_many(
            [(u, p, "message.new", "{}") for u, p in sorted(positions.items())], NOW
        )
        assert calls == begun  # nothing since the transaction began
    assert positions == {alice: 1, bob: 1}
    assert len(calls) == 2, calls  # BEGIN IMMEDIATE, COMMIT
    async with db.read() as store:
        row = await store.session.execute(text("SELECT last_message_id FROM conversations"))
        assert row.scalar_one() == msg.id
    # A one-statement read is no write: one call on aiosqlite's thread, as before.
    calls.clear()
    async with db.read_one() as store:
        assert await store.users.shown(alice) is not None
    assert calls == ["_execute"]
