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

:class:`Direct` goes one step further for the few statements a DM send runs on every
message: it runs a statement compiled once (:class:`Prepared`) on the connection's
thread in the same single call, skipping SQLAlchemy's per-execution machinery (the
greenlet bridge, the compiled cache lookup, the execution context and the result
object), which cost more CPU than the statement itself. Parameters and rows still go
through SQLAlchemy's own type processors, so what is written and read is exactly what
an ordinary execution would write and read, and driver errors are raised as
SQLAlchemy's exceptions, as an ordinary execution raises them.

:func:`engine_url` is how :class:`~ringfence.storage.database.Database` opts in: a
``sqlite+aiosqlite`` URL is served by this dialect; any other URL is left alone.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import EMPTY_DICT

DRIVERNAME = "sqlite+ringfence_aiosqlite"

_Result = tuple[Any, list[Any], int, Any]


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


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect with :class:`OneHopCursor` for plain cursors
    (server-side cursors stay SQLAlchemy's), and the statements :class:`Direct` runs,
    compiled once for this dialect."""

    supports_statement_cache = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepared: dict[ClauseElement, Prepared] = {}

    # Savepoints: every group-commit writer has one (ringfence.storage.group_commit).
    # SQLAlchemy runs each as a full execution of a compiled clause; here they are one
    # driver call each, still under SQLAlchemy's own transaction bookkeeping.
    def do_savepoint(self, connection: Connection, name: str) -> None:
        _savepoint_sql(connection, "SAVEPOINT", name)

    def do_release_savepoint(self, connection: Connection, name: str) -> None:
        _savepoint_sql(connection, "RELEASE SAVEPOINT", name)

    def do_rollback_to_savepoint(self, connection: Connection, name: str) -> None:
        _savepoint_sql(connection, "ROLLBACK TO SAVEPOINT", name)

    def prepared(self, statement: ClauseElement) -> Prepared:
        """``statement`` compiled for this dialect (once per statement object)."""
        found = self._prepared.get(statement)
        if found is None:
            found = self._prepared[statement] = Prepared(statement, self)
        return found

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        import aiosqlite

        return OneHopDBAPI(aiosqlite, sqlite3)


def _savepoint_sql(connection: Connection, verb: str, name: str) -> None:
    """Run ``verb name`` (name as SQLAlchemy generated it, ``sa_savepoint_N``) as one
    driver call, telling ``before_cursor_execute`` listeners as an execution would, and
    raising driver errors as SQLAlchemy's."""
    if not name.isidentifier():  # never interpolate anything but SQLAlchemy's own names
        raise ValueError(f"unexpected savepoint name {name!r}")
    sql = f"{verb} {name}"
    _tell_listeners(connection, sql, (), many=False)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    except sqlite3.Error as exc:
        raise _driver_error(sql, (), exc, connection.dialect) from exc
    finally:
        cursor.close()


def _tell_listeners(connection: Connection, sql: str, args: Any, *, many: bool) -> None:
    """Tell ``before_cursor_execute`` listeners of a statement run past SQLAlchemy's
    execution machinery, as an execution would."""
    if connection._has_events or connection.engine._has_events:
        connection.dispatch.before_cursor_execute(connection, None, sql, args, None, many)


def _driver_error(sql: str, args: Any, exc: sqlite3.Error, dialect: Dialect) -> StatementError:
    """``exc`` as SQLAlchemy raises it, with the parameters hidden as the engine hides
    them (a message's text must not reach a log through an error)."""
    return DBAPIError.instance(sql, args, exc, sqlite3.Error, hide_parameters=True, dialect=dialect)


_Processor = Callable[[Any], Any] | None


class Prepared:
    """A Core statement compiled once: its SQL, its positional parameters with their
    bind processors, and its result columns' processors.

    A named bind parameter must be given at execution (a missing one is a KeyError, not
    a silent NULL); one that carries its own value (the 1 of ``stream_pos + 1``) is
    bound to it."""

    __slots__ = ("_binds", "_results", "sql")

    def __init__(self, statement: ClauseElement, dialect: OneHopDialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql: str = compiled.string
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                binds.append((name, process, False, None))
            else:
                value = bind.effective_value
                binds.append((name, None, True, value if process is None else process(value)))
        self._binds: tuple[tuple[str, _Processor, bool, Any], ...] = tuple(binds)
        columns = getattr(statement, "exported_columns", ())
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        self._results: tuple[_Processor, ...] | None = results if any(results) else None

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            fixed if own else params[name] if process is None else process(params[name])
            for name, process, own, fixed in self._binds
        )

    def convert(self, rows: list[Any]) -> list[tuple[Any, ...]]:
        results = self._results
        if results is None:
            return rows
        return [
            tuple(value if f is None else f(value) for f, value in zip(results, row, strict=True))
            for row in rows
        ]


class Direct:
    """Statements on one pooled connection, in the transaction SQLAlchemy holds open on
    it, run without SQLAlchemy's per-execution machinery (see the module's notes).

    SQLAlchemy's ``before_cursor_execute`` listeners still hear of every statement (the
    statement counts of tests and benchmarks rely on them)."""

    __slots__ = ("_adapted", "_dialect", "_sync")

    def __init__(self, sync: Connection, adapted: OneHopConnection) -> None:
        self._sync = sync
        self._adapted = adapted
        dialect = sync.dialect
        assert isinstance(dialect, OneHopDialect)
        self._dialect = dialect

    @classmethod
    async def of(cls, session: AsyncSession) -> Direct | None:
        """The session's connection, if it is a :class:`OneHopDialect` one (a SQLite
        file or memory database); None for anything else."""
        connection = await session.connection()
        if not isinstance(connection.dialect, OneHopDialect):
            return None
        raw = await connection.get_raw_connection()
        adapted = raw.dbapi_connection
        assert isinstance(adapted, OneHopConnection)
        return cls(connection.sync_connection, adapted)

    async def rows(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """Run ``statement`` once; its rows (none for a statement without any)."""
        prepared = self._dialect.prepared(statement)
        args = prepared.arguments(params)
        return prepared.convert(await self._run(prepared.sql, args, many=False))

    async def run_many(
        self, statement: ClauseElement, param_sets: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run ``statement`` once per parameter set, in one call to the thread."""
        prepared = self._dialect.prepared(statement)
        await self._run(prepared.sql, [prepared.arguments(p) for p in param_sets], many=True)

    async def _run(self, sql: str, args: Any, *, many: bool) -> list[Any]:
        _tell_listeners(self._sync, sql, args, many=many)
        connection = self._adapted._connection
        mutex: asyncio.Lock = self._adapted._execute_mutex
        async with mutex:
            try:
                result = await connection._execute(_execute, connection._conn, sql, args, many=many)
            except sqlite3.Error as exc:
                raise _driver_error(sql, args, exc, self._dialect) from exc
        rows: list[Any] = result[1]
        return rows


registry.register(DRIVERNAME.replace("+", "."), __name__, "OneHopDialect")


def engine_url(url: str) -> URL | str:
    """The URL to build the engine from: ``sqlite+aiosqlite`` goes through
    :class:`OneHopDialect`; anything else is returned as it was given."""
    if not url.startswith("sqlite+aiosqlite:"):
        return url
    return make_url(url).set(drivername=DRIVERNAME)
