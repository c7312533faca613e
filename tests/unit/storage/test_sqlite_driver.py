"""The SQLite adapter (ringfence.storage.sqlite_driver): one aiosqlite call per
statement, and everything a statement returns arrives intact. It leans on two aiosqlite
internals; the first test fails loudly, naming them, when aiosqlite changes."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from ringfence.storage.database import Database
from ringfence.storage.sqlite_driver import OneHopDialect, engine_url


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


def test_only_sqlite_aiosqlite_urls_are_served_by_it() -> None:
    assert str(engine_url("sqlite+aiosqlite:////data/ringfence.db")).startswith(
        "sqlite+ringfence_aiosqlite:////data/ringfence.db"
    )
    url = "postgresql+asyncpg://u@localhost/ringfence"
    assert engine_url(url) == url


async def test_a_statement_is_one_call_on_aiosqlites_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(db.engine.dialect, OneHopDialect)
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    async with db.read() as store:
        await store.session.execute(text("SELECT 0"))  # the transaction's BEGIN is a call too
        calls.clear()
        rows = (
            await store.session.execute(text("SELECT 1, 'two' UNION ALL SELECT 3, 'four'"))
        ).all()
        assert calls == ["_execute"]
    assert [tuple(r) for r in rows] == [(1, "two"), (3, "four")]


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
