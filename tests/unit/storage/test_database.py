"""Engine set-up: SQLite WAL in the data dir by default, PostgreSQL by URL, migrations
applied at start-up, and failures that say which setting to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ringfence.app import create_app
from ringfence.config import Settings
from ringfence.storage.database import MIGRATIONS, Database, DatabaseUnavailable
from ringfence.storage.models import Base

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


async def scalar(database: Database, sql: str) -> Any:
    async with database.engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ringfence.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.start()
    try:
        assert path.exists()  # the directory was created
        assert await scalar(database, "PRAGMA journal_mode") == "wal"
        assert await scalar(database, "PRAGMA synchronous") == 2  # FULL
        assert await scalar(database, "PRAGMA foreign_keys") == 1
    finally:
        await database.close()


async def test_app_defaults_to_sqlite_wal_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", port=0)
    assert settings.database_url is None
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        database: Database = app.state.services.db
        assert database.is_sqlite
        assert (tmp_path / "data" / "ringfence.db").exists()
        assert await scalar(database, "PRAGMA journal_mode") == "wal"
        assert await scalar(database, "SELECT version_num FROM alembic_version") == HEAD


async def test_migrations_are_applied_at_start_up(db: Database, database_url: str) -> None:
    assert db.is_sqlite == database_url.startswith("sqlite")
    assert await scalar(db, "SELECT version_num FROM alembic_version") == HEAD
    assert await scalar(db, "SELECT count(*) FROM users") == 0


async def test_migrated_schema_matches_the_models(db: Database) -> None:
    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        result: list[Any] = compare_metadata(context, Base.metadata)
        return result

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_starting_again_is_a_no_op(db: Database, database_url: str) -> None:
    async with db.write() as store:
        await store.session.execute(
            text(
                "INSERT INTO users (username, display_name, password_hash, verified, "
                "suspended, stream_pos, created_at) "
                "VALUES ('kept', 'kept', 'x', false, false, 0, CURRENT_TIMESTAMP)"
            )
        )
    again = Database(database_url)
    await again.start()
    try:
        assert await scalar(again, "SELECT username FROM users") == "kept"
        assert await scalar(again, "SELECT count(*) FROM alembic_version") == 1
    finally:
        await again.close()


async def test_write_rolls_back_on_error(db: Database) -> None:
    async def insert_then_fail() -> None:
        async with db.write() as store:
            await store.session.execute(
                text(
                    "INSERT INTO users (username, display_name, password_hash, verified, "
                    "suspended, stream_pos, created_at) "
                    "VALUES ('gone', 'gone', 'x', false, false, 0, CURRENT_TIMESTAMP)"
                )
            )
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await insert_then_fail()
    assert await scalar(db, "SELECT count(*) FROM users") == 0


async def test_unreachable_postgresql_names_the_setting_not_the_password() -> None:
    database = Database("postgresql+asyncpg://rf:hunter2secret@127.0.0.1:1/ringfence")
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await database.start()
    finally:
        await database.close()
    assert "database_url" in str(info.value)
    assert "hunter2secret" not in str(info.value)


async def test_uncreatable_sqlite_directory_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    database = Database(f"sqlite+aiosqlite:///{blocker / 'data' / 'ringfence.db'}")
    try:
        with pytest.raises(DatabaseUnavailable, match="data_dir"):
            await database.start()
    finally:
        await database.close()
