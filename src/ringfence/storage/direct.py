"""The send path's statements without SQLAlchemy's per-execution machinery.

A DM send runs the same few statements on every message (see ``repositories``; on
PostgreSQL a reply is two, see ``Messages.add_with_events``).
Through a session each one costs SQLAlchemy's per-execution work (the greenlet
bridge, the compiled-cache lookup, the execution context, the result object), which
measured more CPU than the statement itself. :class:`Direct` runs a statement compiled
once (:class:`Prepared`) on the session's own pooled connection, in the transaction
SQLAlchemy holds open on it, with one call to the driver:

- SQLite (``sqlite_driver.SqliteDirect``): one call on aiosqlite's thread;
- PostgreSQL (``asyncpg_driver.AsyncpgDirect``): asyncpg's prepared statement, from
  the same per-connection cache SQLAlchemy's adapter uses.

What stays SQLAlchemy's: parameters and rows go through its type processors, so what
is written and read is exactly what an ordinary execution writes and reads; driver
errors are raised as its exceptions, with parameters hidden as the engine hides them
(a message's text must not reach a log through an error); its
``before_cursor_execute`` listeners hear every statement (the statement counts of
tests and benchmarks rely on them); and the transaction is the session's, committed
or rolled back by it.
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


class Prepared:
    """A Core statement compiled once for a dialect: its SQL, its positional
    parameters with their bind processors, and its result columns' processors.

    A named bind parameter must be given at execution (a missing one is a KeyError, not
    a silent NULL); one that carries its own value (the 1 of ``stream_pos + 1``) is
    bound to it. Expanding parameters (``IN`` lists) are not supported: give such a
    statement its list as one parameter (a JSON array, an array)."""

    __slots__ = ("_binds", "_results", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        for bind in compiled.binds.values():
            if bind.expanding:
                raise ValueError(f"{bind.key!r} is an expanding parameter")
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

    def convert(self, rows: Sequence[Any]) -> Sequence[Any]:
        results = self._results
        if results is None:
            return rows
        return [
            tuple(value if f is None else f(value) for f, value in zip(results, row, strict=True))
            for row in rows
        ]


_compiled: weakref.WeakKeyDictionary[Dialect, dict[ClauseElement, Prepared]] = (
    weakref.WeakKeyDictionary()
)


def prepared(dialect: Dialect, statement: ClauseElement) -> Prepared:
    """``statement`` compiled for ``dialect`` (once per statement object and dialect)."""
    cache = _compiled.get(dialect)
    if cache is None:
        cache = _compiled[dialect] = {}
    found = cache.get(statement)
    if found is None:
        found = cache[statement] = Prepared(statement, dialect)
    return found


def tell_listeners(connection: Connection, sql: str, args: Any, *, many: bool) -> None:
    """Tell ``before_cursor_execute`` listeners of a statement run past SQLAlchemy's
    execution machinery, as an execution would."""
    if connection._has_events or connection.engine._has_events:
        connection.dispatch.before_cursor_execute(connection, None, sql, args, None, many)


def driver_error(
    sql: str,
    args: Any,
    exc: Exception,
    dbapi_error: type[Exception],
    connection: Connection,
    driver_connection: Any = None,
) -> StatementError:
    """``exc`` (the driver's, or its DBAPI adapter's) as SQLAlchemy raises it, with the
    parameters hidden as the engine hides them. A lost connection (as the dialect
    tells) is marked as one (``Database`` answers that with 503, not 500) and handled
    as SQLAlchemy handles one: ``connection`` is invalidated, so the pool replaces it
    rather than hand it out again, and so is every pooled connection older than now
    (a server that dropped one has likely dropped them all)."""
    dialect = connection.dialect
    lost = driver_connection is not None and dialect.is_disconnect(
        exc,  # type: ignore[arg-type]
        driver_connection,
        None,
    )
    error = DBAPIError.instance(
        sql,
        args,
        exc,
        dbapi_error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )
    if lost and not connection.invalidated:
        connection.engine.pool._invalidate(connection.connection, error)
        connection.invalidate(error)
    return error


class Direct(abc.ABC):
    """Statements run directly on a session's connection (see the module's notes)."""

    __slots__ = ("_adapted", "_autocommit", "_dialect", "_sync")

    # What a subclass serves: connections of this dialect, whose DBAPI connection is
    # (SQLAlchemy's adapter of the driver's) of this class.
    DIALECT: ClassVar[type[Dialect]]
    ADAPTED: ClassVar[type]

    def __init__(self, sync: Connection, driver_connection: Any, *, autocommit: bool) -> None:
        assert isinstance(driver_connection, self.ADAPTED)
        self._sync = sync
        self._dialect = sync.dialect
        self._adapted: Any = driver_connection
        self._autocommit = autocommit

    @staticmethod
    async def of(session: AsyncSession) -> Direct | None:
        """The session's connection as a :class:`Direct`, if its driver has one
        (aiosqlite through ``sqlite_driver``, asyncpg); None for anything else.
        Its statements run in the session's transaction."""
        return await Direct.of_connection(await session.connection(), autocommit=False)

    @staticmethod
    async def of_connection(connection: AsyncConnection, *, autocommit: bool) -> Direct | None:
        """:meth:`of` for a connection. ``autocommit``: its statements begin no
        transaction (a statement that is a unit of work by itself: one round trip, and
        nothing to roll back); otherwise each runs in the connection's transaction,
        begun by the first if need be."""
        from ringfence.storage.asyncpg_driver import AsyncpgDirect
        from ringfence.storage.sqlite_driver import SqliteDirect

        for kind in (SqliteDirect, AsyncpgDirect):
            if kind.serves(connection.dialect):
                raw = await connection.get_raw_connection()
                sync = connection.sync_connection
                assert sync is not None
                return kind(sync, raw.dbapi_connection, autocommit=autocommit)
        return None

    async def rows(
        self, statement: ClauseElement, params: Mapping[str, Any], *, alone: bool = False
    ) -> Sequence[Any]:
        """Run ``statement`` once; its rows (none for a statement without any).

        ``alone``: where the connection has no transaction under way yet, the statement
        may be a unit of work of its own, committed as it returns, rather than begin
        the transaction (PostgreSQL: no BEGIN round trip, and no COMMIT if nothing else
        runs). Only for a statement that is atomic by itself and would see nothing more
        inside the transaction: under PostgreSQL's READ COMMITTED, each statement of a
        transaction takes its own snapshot anyway. SQLite's writers run it in their
        transaction as ever (it is grouped with others' and committed once)."""
        found = prepared(self._dialect, statement)
        args = found.arguments(params)
        tell_listeners(self._sync, found.sql, args, many=False)
        return found.convert(await self._run(found.sql, args, alone=alone))

    async def rows_each(
        self, steps: Sequence[tuple[ClauseElement, Mapping[str, Any]]]
    ) -> list[Sequence[Any]]:
        """Run several statements in order, each once; the rows of each. Statements
        whose parameters do not depend on one another's rows, run in one call to the
        driver where it can (SQLite: at most one hand-off to aiosqlite's thread, instead of
        one each) and one after another otherwise. A failing statement raises as
        :meth:`rows` would, and the ones after it do not run."""
        return [await self.rows(statement, params) for statement, params in steps]

    async def run_many(
        self, statement: ClauseElement, param_sets: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run ``statement`` once per parameter set, in one call to the driver."""
        found = prepared(self._dialect, statement)
        args = [found.arguments(p) for p in param_sets]
        tell_listeners(self._sync, found.sql, args, many=True)
        await self._run_many(found.sql, args)

    @classmethod
    def serves(cls, dialect: Dialect) -> bool:
        """Whether connections of ``dialect`` can run statements this way."""
        return isinstance(dialect, cls.DIALECT)

    def _error(
        self, sql: str, args: Any, exc: Exception, dbapi_error: type[Exception]
    ) -> StatementError:
        """:func:`driver_error` for a statement run on this connection."""
        return driver_error(sql, args, exc, dbapi_error, self._sync, self._adapted)

    @abc.abstractmethod
    async def _run(self, sql: str, args: tuple[Any, ...], *, alone: bool) -> Sequence[Any]:
        """One statement, in one call to the driver; its rows (``alone``: see :meth:`rows`)."""

    @abc.abstractmethod
    async def _run_many(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        """One statement per parameter set, in one call to the driver."""
