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

:func:`engine_url` is how :class:`~ringfence.storage.database.Database` opts in: a
``sqlite+aiosqlite`` URL is served by this dialect; any other URL is left alone.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import URL, make_url
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
    (server-side cursors stay SQLAlchemy's)."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        import aiosqlite

        return OneHopDBAPI(aiosqlite, sqlite3)


registry.register(DRIVERNAME.replace("+", "."), __name__, "OneHopDialect")


def engine_url(url: str) -> URL | str:
    """The URL to build the engine from: ``sqlite+aiosqlite`` goes through
    :class:`OneHopDialect`; anything else is returned as it was given."""
    if not url.startswith("sqlite+aiosqlite:"):
        return url
    return make_url(url).set(drivername=DRIVERNAME)
