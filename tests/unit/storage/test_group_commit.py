"""Group commit on a SQLite file (ringfence.storage.group_commit): writers that queue
up share one COMMIT, each returns only once its work is committed, a writer that fails
takes only its own work with it, and a commit that fails fails every writer of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from ringfence.storage.database import Database
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="SQLite group commit (the SQLite run)")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/group.db")
    await database.start()
    async with database.write() as store:
        await store.session.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        await store.session.execute(
            text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                "parent_id INTEGER NOT NULL REFERENCES parent(id), name TEXT)"
            )
        )
        await store.session.execute(text("INSERT INTO parent (id) VALUES (1)"))
    try:
        yield database
    finally:
        await database.close()


def count_commits(db: Database) -> list[int]:
    commits = [0]

    def on_commit(_conn: Any) -> None:
        commits[0] += 1

    event.listen(db.engine.sync_engine, "commit", on_commit)
    return commits


async def names(db: Database) -> list[str]:
    async with db.read() as store:
        rows = await store.session.execute(text("SELECT name FROM child ORDER BY name"))
        return [r[0] for r in rows]


async def add(db: Database, name: str, parent: int = 1) -> None:
    async with db.write() as store:
        await store.session.execute(
            text("INSERT INTO child (parent_id, name) VALUES (:p, :n)"), {"p": parent, "n": name}
        )


async def test_queued_writers_share_commits_and_each_returns_after_its_own(db: Database) -> None:
    commits = count_commits(db)
    seen_after_return: dict[str, bool] = {}

    async def writer(name: str) -> None:
        await add(db, name)
        # Returned: committed, so another connection sees it.
        seen_after_return[name] = name in await names(db)

    wanted = [f"w{i:02d}" for i in range(30)]
    await asyncio.gather(*(writer(n) for n in wanted))

    assert await names(db) == wanted
    assert all(seen_after_return.values()), seen_after_return
    # 30 writers queued at once: far fewer commits (fsyncs) than writers.
    assert 1 <= commits[0] <= 10, commits[0]


async def test_a_failing_writer_undoes_only_its_own_work(db: Database) -> None:
    class Refused(Exception):
        pass

    async def failing() -> None:
        async with db.write() as store:
            await store.session.execute(
                text("INSERT INTO child (parent_id, name) VALUES (1, 'refused')")
            )
            raise Refused

    results = await asyncio.gather(
        add(db, "a"), failing(), add(db, "b"), failing(), add(db, "c"), return_exceptions=True
    )

    assert [type(r) for r in results] == [type(None), Refused, type(None), Refused, type(None)]
    assert await names(db) == ["a", "b", "c"]


async def test_a_commit_that_fails_fails_every_writer_of_its_group(db: Database) -> None:
    async def violates_at_commit() -> None:
        async with db.write() as store:
            # Checked at COMMIT, not at the INSERT: the whole group's commit fails.
            await store.session.execute(text("PRAGMA defer_foreign_keys = ON"))
            await store.session.execute(
                text("INSERT INTO child (parent_id, name) VALUES (999, 'orphan')")
            )

    results = await asyncio.gather(
        add(db, "before"), violates_at_commit(), add(db, "after"), return_exceptions=True
    )

    assert all(isinstance(r, IntegrityError) for r in results), results
    assert await names(db) == []
    # The database is usable afterwards: the failed group was rolled back.
    await add(db, "next")
    assert await names(db) == ["next"]


async def test_a_writer_after_a_quiet_moment_commits_alone(db: Database) -> None:
    commits = count_commits(db)
    await add(db, "one")
    await add(db, "two")
    assert commits[0] == 2
    assert await names(db) == ["one", "two"]
