"""Engine set-up for SQLite and PostgreSQL, migrations at start-up, and transactions.

The same code serves both backends. SQLite runs in WAL mode with full fsync so that an
acknowledged message survives a crash, and write transactions start with
``BEGIN IMMEDIATE`` so that two writers queue on the busy timeout instead of failing
with "database is locked" when a read lock cannot be upgraded. Inside one process,
SQLite writers also take turns on an :class:`asyncio.Lock`: they wait on the event
loop, holding no pooled connection, and only another process (``ringfence admin``)
can make one wait on the busy timeout. Readers stay concurrent (WAL).

A database that is momentarily overloaded or out of reach (a lock or pool timeout, a
PostgreSQL deadlock or serialization failure, a lost connection) surfaces from
:meth:`Database.read` and :meth:`Database.write` as one exception,
:class:`DatabaseBusy`, which the API answers with 503 and ``Retry-After``. The
transaction has been rolled back, so the client may simply retry.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from ringfence.storage.direct import Direct
from ringfence.storage.files import private_dir, private_sqlite_files
from ringfence.storage.group_commit import GroupCommit
from ringfence.storage.repositories import Store
from ringfence.storage.sqlite_driver import WRITE_OPTION, engine_url, holds_write_lock

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant: serialises migrations when several nodes start at once.
_PG_MIGRATION_LOCK = 0x52494E47


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message says which and why."""


class DatabaseBusy(DatabaseUnavailable):
    """The database could not serve this unit of work *now*; retrying later may succeed.

    ``code`` is ``"database_busy"`` (a lock, pool or deadlock wait ran out) or
    ``"database_unavailable"`` (the server cannot be reached). The transaction was
    rolled back. Deliberately not a ``ServiceError``: those mean "refused", and a
    WebSocket refuses an auth frame that raised one as a bad token, signing the client
    out over what is only a busy moment.
    """

    def __init__(self, code: str, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s


BUSY, UNAVAILABLE = "database_busy", "database_unavailable"
_BUSY_DETAIL = "the database is busy; try again shortly"
_UNAVAILABLE_DETAIL = "the database is unavailable; try again shortly"
_RETRY_AFTER_S = {BUSY: 1, UNAVAILABLE: 5}
# PostgreSQL SQLSTATEs that mean "not now": lock_not_available (lock_timeout),
# serialization_failure, deadlock_detected, query_canceled (statement_timeout),
# too_many_connections. Classes 08 (connection exception), 57P (shutting down,
# cannot connect now) and 53 (insufficient resources) mean the server is out of reach.
_PG_BUSY = {"55P03", "40001", "40P01", "57014", "53300"}
_PG_UNAVAILABLE = ("08", "57P", "53")
# SQLite primary result codes: BUSY and LOCKED are lock waits that ran out; CANTOPEN,
# IOERR and FULL mean the file cannot be used at the moment.
_SQLITE_BUSY = {5, 6}
_SQLITE_UNAVAILABLE = {10, 13, 14}
# Socket errors of a connection attempt (asyncpg lets them through unwrapped).
_NET_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EADDRNOTAVAIL,
    errno.EPIPE,
}
# A pooled connection used this recently is handed out without a ping
# (see _ping_idle_connections).
PING_AFTER_IDLE_S = 2.0
_IDLE_SINCE = "ringfence_idle_since"
# What a transient failure can surface as (anything else is re-raised untouched).
_DRIVER_ERRORS = (DBAPIError, PoolTimeout, OSError)


class Database:
    """Owns the engine; hands out read and write transactions as a :class:`Store`.

    The pool and lock-wait settings default to what production uses (``None`` means
    the backend's default: 30 connections on PostgreSQL, SQLAlchemy's 5 + 10 on
    SQLite); tests pass small values to provoke timeouts.

    A pooled PostgreSQL connection that sat idle for ``ping_after_idle_s`` or longer
    is pinged before it is handed out, and replaced if the server dropped it (see
    :func:`_ping_idle_connections`).
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout_s: float = 30.0,
        busy_timeout_s: float = 10.0,
        ping_after_idle_s: float = PING_AFTER_IDLE_S,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.busy_timeout_s = busy_timeout_s
        pool: dict[str, Any] = {"pool_timeout": pool_timeout_s}
        if not self.is_sqlite:
            # Up to 30 connections, as before (10 kept + 20 overflow), but every one
            # opened is kept: an overflow connection was closed as it came back
            # whenever 10 sat idle, so a bursty load kept opening new ones (a server
            # process each, its caches cold, statements prepared anew). That churn
            # queued DMs at 500/s (docs/benchmarks.md, run 22). Last in, first out:
            # a busy server keeps reusing its recently used connections (which need
            # no ping, see _ping_idle_connections) and the rest stay idle.
            pool.update(pool_size=30, max_overflow=0, pool_use_lifo=True)
        if pool_size is not None:
            pool["pool_size"] = pool_size
        if max_overflow is not None:
            pool["max_overflow"] = max_overflow
        if self.is_sqlite and url.split("?", 1)[0].endswith((":memory:", "://")):
            pool = {}  # in memory: one shared connection, no pool to size
        # hide_parameters: a failed statement must not copy row values into the logs.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True, **pool}
        if self.is_sqlite:
            # A write's hot statements run on the event loop's thread, the rest on
            # aiosqlite's (sqlite_driver.SqliteDirect), never both at once: a write's
            # BEGIN, statements and COMMIT follow one another under the write turn.
            kwargs["connect_args"] = {"check_same_thread": False}
        self.engine: AsyncEngine = create_async_engine(engine_url(url), **kwargs)
        if not self.is_sqlite:
            _ping_idle_connections(self.engine, ping_after_idle_s)
        # One writer at a time in this process (SQLite only: PostgreSQL has row locks).
        self._write_turn: asyncio.Lock | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine, busy_timeout_ms=int(busy_timeout_s * 1000))
            self._write_turn = asyncio.Lock()
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        # A read is one snapshot on both backends. SQLite's read transaction already is
        # one; PostgreSQL's default (READ COMMITTED) takes a new snapshot per statement,
        # so a conversation list could read its last message before a send committed
        # and its unread count after, and a client would count that message twice.
        # Read-only transactions never fail to serialize, so this costs nothing.
        self._read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        # A SQLite file's writers share commits (ringfence.storage.group_commit). In
        # memory there is no fsync to share, and one connection serves the readers too,
        # who must not see a group's uncommitted work.
        self._groups: GroupCommit | None = None
        if self._write_turn is not None and self._sqlite_file() is not None:
            self._groups = GroupCommit(
                lambda: AsyncSession(self._write_engine, expire_on_commit=False),
                self._writer_turn,
                self._write_turn,
            )

    async def start(self) -> None:
        """Create the SQLite directory if needed and apply every pending migration.

        A SQLite database and its -wal and -shm files are left 0600, and a directory
        made for it 0700 (:mod:`ringfence.storage.files`)."""
        try:
            sqlite_file = self._sqlite_file()
            if sqlite_file is not None:
                if not sqlite_file.parent.exists():
                    private_dir(sqlite_file.parent)
                private_sqlite_files(sqlite_file)
            async with self._write_engine.begin() as conn:
                if not self.is_sqlite:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                    )
                await conn.run_sync(_upgrade_to_head)
            if sqlite_file is not None:
                private_sqlite_files(sqlite_file)  # the -wal and -shm the migrations made
        except (OperationalError, DBAPIError, OSError) as exc:
            # Name the settings to look at, never the URL (it may hold a password).
            where = "data_dir / database_url" if self.is_sqlite else "database_url"
            raise DatabaseUnavailable(
                f"cannot open the database (check {where}): {_safe_error(exc)}"
            ) from exc

    async def close(self) -> None:
        if self._groups is not None:
            await self._groups.drain()
        await self.engine.dispose()

    def _sqlite_file(self) -> Path | None:
        """The SQLite database's file; None for PostgreSQL or an in-memory database."""
        if not self.is_sqlite:
            return None
        db_path = self.url.split(":///", 1)[1].split("?", 1)[0]
        if not db_path or db_path == ":memory:" or db_path.startswith("file:"):
            return None
        return Path(db_path)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Store]:
        """A read-only unit of work. Raises :class:`DatabaseBusy` when the database
        cannot serve it right now."""
        with _busy_as_unavailable("read"):
            async with AsyncSession(self._read_engine, expire_on_commit=False) as session:
                yield Store(session)

    @asynccontextmanager
    async def read_one(self) -> AsyncIterator[Store]:
        """A read of one statement, as a unit of work of its own: it begins no
        transaction (one statement is one snapshot on both backends), so a repository
        method that runs on the driver directly costs one call to it, where
        :meth:`read` costs three (BEGIN, the statement, ROLLBACK). Only for a block that
        runs one statement: two would each see the database as of their own start.
        Raises :class:`DatabaseBusy` as :meth:`read` does.

        A SQLite database in memory has one connection, shared with the writers: a
        read there stays a transaction of its own (:meth:`read`), or it would see a
        writer's uncommitted work."""
        if self.is_sqlite and self._groups is None:
            async with self.read() as store:
                yield store
            return
        with _busy_as_unavailable("read"):
            async with self.engine.connect() as connection:
                direct = await Direct.of_connection(connection, autocommit=True)
                async with AsyncSession(connection, expire_on_commit=False) as session:
                    yield Store(session, direct)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Store]:
        """A unit of work that commits when the block exits without an exception, and
        rolls back otherwise. Raises :class:`DatabaseBusy` when the database cannot
        serve it right now; nothing of it was stored, so the caller may retry.

        On a SQLite file, writers that queue up share one commit (group commit); the
        block's work is on disk when this returns, as before."""
        with _busy_as_unavailable("write"):
            if self._groups is not None:
                async with self._groups.write() as store:
                    yield store
                return
            async with (
                self._writer_turn(),
                AsyncSession(self._write_engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                yield Store(session, await Direct.of(session))

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """On SQLite, wait on the event loop for this process's previous writer to finish.

        SQLite has a single writer anyway; queueing here, rather than on the busy
        timeout, keeps waiting writers from each holding a pooled connection and
        sleeping in the driver's thread. The wait is bounded by the busy timeout too.
        """
        if self._write_turn is None:
            yield
            return
        try:
            async with asyncio.timeout(self.busy_timeout_s):
                await self._write_turn.acquire()
        except TimeoutError:
            log.warning(
                "database busy: no write turn within %.1f s; answering 503", self.busy_timeout_s
            )
            raise DatabaseBusy(BUSY, _BUSY_DETAIL, _RETRY_AFTER_S[BUSY]) from None
        try:
            yield
        finally:
            self._write_turn.release()


def _ping_idle_connections(engine: AsyncEngine, after_idle_s: float) -> None:
    """Ping a pooled connection before handing it out, if it has been idle a while.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: with asyncpg, three round
    trips (BEGIN, an empty query, ROLLBACK) before each transaction's own, three more
    waits on a busy event loop and 6.6 % of the server's CPU at 500 DMs/s (run 22 of
    docs/benchmarks.md). A connection that was in use moments ago is almost surely
    still open; one that sat idle may have been dropped (the server restarted, an
    idle timeout, a firewall), so that is the one worth a ping. A ping that fails
    replaces the connection before anyone uses it, and a lost connection marks every
    older pooled one stale too, as after a server restart. A connection lost between
    its last use and the next within the window fails that one transaction, which is
    answered "database unavailable" (503, retry) and replaced; so would a transaction
    under way when the server went.
    """
    pool = engine.sync_engine.pool
    dialect: Dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _went_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < after_idle_s:
            return  # new, or in use moments ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failed ping: hand out another connection
            lost = isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
                exc, dbapi_connection, None
            )
            if lost:
                raise InvalidatePoolError("the database server dropped the connection") from exc
            raise DisconnectionError("a pooled connection failed its ping") from exc


@contextmanager
def _busy_as_unavailable(what: str) -> Iterator[None]:
    """Turn a transient driver failure of a ``what`` transaction into DatabaseBusy;
    anything else passes through untouched."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        busy = _as_busy(exc, what)
        if busy is None:
            raise
        raise busy from exc


def _classify(exc: BaseException) -> str | None:
    """BUSY or UNAVAILABLE for a transient failure, None for anything else (a bug)."""
    if isinstance(exc, PoolTimeout):
        return BUSY
    if isinstance(exc, OSError):
        return UNAVAILABLE if _is_network_error(exc) else None
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF
        if primary in _SQLITE_BUSY:
            return BUSY
        return UNAVAILABLE if primary in _SQLITE_UNAVAILABLE else None
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_BUSY:
            return BUSY
        if sqlstate.startswith(_PG_UNAVAILABLE):
            return UNAVAILABLE
    if exc.connection_invalidated or isinstance(orig, ConnectionError):
        return UNAVAILABLE
    return None


def _is_network_error(exc: OSError) -> bool:
    # asyncio reports failed attempts at several addresses as one plain OSError.
    return (
        isinstance(exc, (ConnectionError, TimeoutError))
        or exc.errno in _NET_ERRNOS
        or str(exc).startswith("Multiple exceptions:")
    )


def _as_busy(exc: Exception, what: str) -> DatabaseBusy | None:
    """The :class:`DatabaseBusy` to raise instead of ``exc``, after one log line; or
    None when ``exc`` is not transient (a genuine fault keeps its 500)."""
    kind = _classify(exc)
    if kind is None:
        return None
    # Never str(exc): SQLAlchemy's text carries the statement. The driver's own first
    # line ("database is locked", "deadlock detected") holds no row values.
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    reason = type(orig).__name__ + (f" {code}" if code else "")
    first_line = (str(orig).splitlines() or [""])[0][:200]
    log.warning(
        "%s during a %s transaction (%s: %s); answering 503",
        kind.replace("_", " "),
        what,
        reason,
        first_line,
    )
    detail = _BUSY_DETAIL if kind == BUSY else _UNAVAILABLE_DETAIL
    return DatabaseBusy(kind, detail, _RETRY_AFTER_S[kind])


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


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
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
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = holds_write_lock(conn)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
