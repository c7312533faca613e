"""Engine set-up for SQLite and PostgreSQL, migrations at start-up, and transactions.

The same code serves both backends. SQLite runs in WAL mode with full fsync so that an
acknowledged message survives a crash, and write transactions start with
``BEGIN IMMEDIATE`` so that two writers queue on the busy timeout instead of failing
with "database is locked" when a read lock cannot be upgraded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from ringfence.storage.repositories import Store

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant: serialises migrations when several nodes start at once.
_PG_MIGRATION_LOCK = 0x52494E47


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message says which and why."""


class Database:
    """Owns the engine; hands out read and write transactions as a :class:`Store`."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: a failed statement must not copy row values into the logs.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._write_engine = self.engine.execution_options(ringfence_write=True)

    async def start(self) -> None:
        """Create the SQLite directory if needed and apply every pending migration."""
        try:
            if self.is_sqlite:
                db_path = self.url.split(":///", 1)[1]
                if db_path and db_path != ":memory:":
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            async with self._write_engine.begin() as conn:
                if not self.is_sqlite:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                    )
                await conn.run_sync(_upgrade_to_head)
        except (OperationalError, DBAPIError, OSError) as exc:
            # Name the settings to look at, never the URL (it may hold a password).
            where = "data_dir / database_url" if self.is_sqlite else "database_url"
            raise DatabaseUnavailable(
                f"cannot open the database (check {where}): {_safe_error(exc)}"
            ) from exc

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Store]:
        """A read-only unit of work."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield Store(session)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Store]:
        """A unit of work that commits when the block exits without an exception."""
        async with (
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield Store(session)


def _safe_error(exc: BaseException) -> str:
    # Never echo a URL (it may hold a password) - only the driver's own message.
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0][:300]


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _no_statement_logs(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def _configure_sqlite(engine: AsyncEngine) -> None:
    # aiosqlite logs every statement with its parameters at DEBUG: message text,
    # password hashes. Drop those lines even when the server runs at debug level.
    aiosqlite_log = logging.getLogger("aiosqlite")
    if _no_statement_logs not in aiosqlite_log.filters:
        aiosqlite_log.addFilter(_no_statement_logs)
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("ringfence_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
