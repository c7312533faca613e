"""SQLite through aiosqlite with one thread hand-off per statement instead of four.

aiosqlite runs every call on its connection's own thread and hands the result back to
the event loop. SQLAlchemy's aiosqlite adapter makes four such calls per statement
(create a cursor, execute, fetch all rows, close the cursor), and each one waits for
the event loop to come round again. Under load that wait is most of a write's cost:
measured with bench's `dm-sqlite` at 400 DMs/s, the write turn (SQLite has one
writer) was held 5.5 ms per DM, 96 % of every second, for 2.3 ms of fsync.

This adapter does the same work in one call: execute, read the description, row count,
last row id and every row, and close the cursor, all on aiosqlite's thread. Everything
else (connections, transactions, isolation, errors, the pool) is SQLAlchemy's own
aiosqlite dialect, unchanged.

It leans on two aiosqlite internals, ``Connection._execute`` (queue a function for the
connection's thread) and ``Connection._conn`` (the sqlite3 connection, which
SQLAlchemy's own adapter uses too). ``tests/unit/storage/test_sqlite_driver.py`` fails
loudly if either changes.

:class:`SqliteDirect` goes one step further for the few statements a DM send runs on
every message (``ringfence.storage.direct``): a statement compiled once, run on the
connection's thread in the same single call, without SQLAlchemy's per-execution
machinery; and several such statements that do not depend on one another's rows in one
call (:meth:`SqliteDirect.rows_each`). In a write it makes no call at all: a write
holds SQLite's write lock, so its statements cannot wait on another connection, and
they run on the event loop's own thread (see :class:`SqliteDirect`), as do its
savepoints. Its BEGIN IMMEDIATE and its COMMIT, which can wait (for the lock, for the
fsync), stay on aiosqlite's thread.

:func:`engine_url` is how :class:`~ringfence.storage.database.Database` opts in: a
``sqlite+aiosqlite`` URL is served by this dialect; any other URL is left alone.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.sql import ClauseElement
from sqlalchemy.util import EMPTY_DICT

from ringfence.storage.direct import Direct, driver_error, prepared, tell_listeners

DRIVERNAME = "sqlite+ringfence_aiosqlite"
# The execution option that marks a write's connection (``Database``'s write engine):
# its transactions begin with BEGIN IMMEDIATE.
WRITE_OPTION = "ringfence_write"

_Result = tuple[Any, list[Any], int, Any]
_T = TypeVar("_T")


def _execute(
    conn: sqlite3.Connection, operation: str, parameters: Any, *, many: bool = False
) -> _Result:
    """On aiosqlite's thread: run one statement (``many``: once per parameter set) and
    collect everything it returns."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _StepFailed(Exception):
    """Which of :func:`_execute_each`'s statements failed, and how."""

    def __init__(self, index: int, error: sqlite3.Error) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


def _execute_each(conn: sqlite3.Connection, steps: list[tuple[str, Any]]) -> list[list[Any]]:
    """Run each ``(sql, parameters)`` in order; the rows of each. Stops at the first
    that fails (:class:`_StepFailed` says which)."""
    found = []
    for index, (operation, parameters) in enumerate(steps):
        try:
            found.append(_execute(conn, operation, parameters)[1])
        except sqlite3.Error as exc:
            raise _StepFailed(index, exc) from exc
    return found


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement, rows and close are one aiosqlite call."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor to create
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: Any = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # the statement's cursor is closed already

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def _keep(self, result: _Result) -> None:
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection._conn
            self._keep(await self._connection._execute(_execute, conn, operation, parameters))
        return None

    async def _executemany_async(self, operation: Any, param_sets: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection._conn
            result = await self._connection._execute(
                _execute, conn, operation, param_sets, many=True
            )
            self._keep(result)
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor

    def rollback(self) -> None:
        # The pool rolls back every connection it takes back, committed or not, and
        # each rollback was one more call on aiosqlite's thread. Without a transaction
        # open (after a commit, or after a one-statement read that began none) there
        # is nothing to roll back: sqlite3's own rollback would do nothing either.
        conn: sqlite3.Connection | None = self._connection._connection
        if conn is not None and not conn.in_transaction:
            return
        super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect with :class:`OneHopCursor` for plain cursors
    (server-side cursors stay SQLAlchemy's) and savepoints as one driver call each."""

    supports_statement_cache = True

    # Savepoints: every group-commit writer has one (ringfence.storage.group_commit).
    # SQLAlchemy runs each as a full execution of a compiled clause; here they are one
    # driver call each, still under SQLAlchemy's own transaction bookkeeping.
    def do_savepoint(self, connection: Connection, name: str) -> None:
        _savepoint_sql(connection, "SAVEPOINT", name)

    def do_release_savepoint(self, connection: Connection, name: str) -> None:
        _savepoint_sql(connection, "RELEASE SAVEPOINT", name)

    def do_rollback_to_savepoint(self, connection: Connection, name: str) -> None:
        _savepoint_sql(connection, "ROLLBACK TO SAVEPOINT", name)

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        import aiosqlite

        return OneHopDBAPI(aiosqlite, sqlite3)


def _savepoint_sql(connection: Connection, verb: str, name: str) -> None:
    """Run ``verb name`` (name as SQLAlchemy generated it, ``sa_savepoint_N``): on this
    thread in a write, else as one driver call; telling ``before_cursor_execute``
    listeners as an execution would, and raising driver errors as SQLAlchemy's."""
    if not name.isidentifier():  # never interpolate anything but SQLAlchemy's own names
        raise ValueError(f"unexpected savepoint name {name!r}")
    sql = f"{verb} {name}"
    tell_listeners(connection, sql, (), many=False)
    adapted = connection.connection.dbapi_connection
    assert isinstance(adapted, OneHopConnection)
    if holds_write_lock(connection):
        # A write's savepoint (a group-commit writer's): on this thread, as the
        # write's direct statements are (see SqliteDirect).
        if adapted._execute_mutex.locked():
            raise RuntimeError("a savepoint while the connection is busy on its thread")
        try:
            _execute(adapted._connection._conn, sql, None)
        except sqlite3.Error as exc:
            raise driver_error(sql, (), exc, sqlite3.Error, connection) from exc
        return
    cursor = adapted.cursor()
    try:
        cursor.execute(sql)
    except sqlite3.Error as exc:
        raise driver_error(sql, (), exc, sqlite3.Error, connection) from exc
    finally:
        cursor.close()


def holds_write_lock(connection: Connection) -> bool:
    """Whether ``connection`` is a write's: its transaction began with ``BEGIN
    IMMEDIATE`` (``Database``'s write engine, marked with :data:`WRITE_OPTION`), so it
    holds SQLite's write lock from its first statement on."""
    return bool(connection.get_execution_options().get(WRITE_OPTION, False))


class SqliteDirect(Direct):
    """:class:`~ringfence.storage.direct.Direct` for a :class:`OneHopDialect`
    connection, under the adapter's mutex: a write's statements run on the event
    loop's own thread, anything else's as one call on aiosqlite's thread.

    Why a write's may. A write transaction began with ``BEGIN IMMEDIATE`` (on
    aiosqlite's thread: that is where waiting for SQLite's write lock happens), so it
    holds the lock, and in WAL mode nothing another connection does can make its
    statements wait: readers never block a writer, and there is no other writer. The
    statements run here are the send path's, each a lookup or a change of a few rows
    by key; their changes stay in SQLite's page cache until the COMMIT, which, with its
    fsync, still runs on aiosqlite's thread. So each costs tens of microseconds of
    this thread, where a hand-off to aiosqlite's thread and back cost two trips
    through the scheduler, with the write turn held: under load those waits, not the
    work, bounded how many DMs a second a process committed (docs/benchmarks.md, run
    25: 500/s queued for seconds with the event loop at 56 % of a core). A
    one-statement read (``Database.read_one``, autocommit) is not a write and stays on
    aiosqlite's thread."""

    __slots__ = ("_inline",)
    DIALECT = OneHopDialect
    ADAPTED = OneHopConnection
    _adapted: OneHopConnection

    def __init__(self, sync: Connection, driver_connection: Any, *, autocommit: bool) -> None:
        super().__init__(sync, driver_connection, autocommit=autocommit)
        self._inline = not autocommit and holds_write_lock(sync)

    async def _run(self, sql: str, args: tuple[Any, ...], *, alone: bool) -> Sequence[Any]:
        return await self._call(sql, args, many=False)  # in the transaction, ``alone`` or not

    async def _run_many(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        await self._call(sql, args, many=True)

    async def rows_each(
        self, steps: Sequence[tuple[ClauseElement, Mapping[str, Any]]]
    ) -> list[Sequence[Any]]:
        """:meth:`Direct.rows_each` in one go: on this thread for a write, else in one
        call on aiosqlite's thread."""
        found = [prepared(self._dialect, statement) for statement, _ in steps]
        runs = [(p.sql, p.arguments(params)) for p, (_, params) in zip(found, steps, strict=True)]
        for sql, args in runs:
            tell_listeners(self._sync, sql, args, many=False)
        try:
            rows = await self._perform(_execute_each, runs)
        except _StepFailed as failed:
            sql, args = runs[failed.index]
            raise self._error(sql, args, failed.error, sqlite3.Error) from failed.error
        return [p.convert(r) for p, r in zip(found, rows, strict=True)]

    async def _call(self, sql: str, args: Any, *, many: bool) -> list[Any]:
        try:
            result = await self._perform(_execute, sql, args, many=many)
        except sqlite3.Error as exc:
            raise self._error(sql, args, exc, sqlite3.Error) from exc
        rows: list[Any] = result[1]
        return rows

    async def _perform(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``fn(the sqlite3 connection, *args, **kwargs)`` under the adapter's mutex:
        on this thread for a write, else as one call on aiosqlite's thread."""
        connection = self._adapted._connection
        mutex: asyncio.Lock = self._adapted._execute_mutex
        async with mutex:
            if self._inline:
                return fn(connection._conn, *args, **kwargs)
            result: _T = await connection._execute(fn, connection._conn, *args, **kwargs)
            return result


registry.register(DRIVERNAME.replace("+", "."), __name__, "OneHopDialect")


def engine_url(url: str) -> URL | str:
    """The URL to build the engine from: ``sqlite+aiosqlite`` goes through
    :class:`OneHopDialect`; anything else is returned as it was given."""
    if not url.startswith("sqlite+aiosqlite:"):
        return url
    return make_url(url).set(drivername=DRIVERNAME)
