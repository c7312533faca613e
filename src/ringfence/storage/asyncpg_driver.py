"""PostgreSQL's send-path statements in one asyncpg call each (``storage.direct``).

:class:`AsyncpgDirect` runs on the raw asyncpg connection under SQLAlchemy's asyncpg
adapter, and does what the adapter's cursor does for an execution, minus
SQLAlchemy's per-execution machinery around it:

- under the adapter's execute mutex;
- in the adapter's transaction, which it starts the way the adapter does when this
  is the transaction's first statement (the adapter begins lazily, at its first
  execution; a statement run before that would otherwise run in autocommit), unless
  it was made for autocommit (a one-statement read: no BEGIN and no ROLLBACK) or
  the statement may run alone (``Direct.rows``);
- with the adapter's own prepared-statement cache (``_prepare``), so a statement is
  prepared once per connection whichever path runs it;
- with errors translated by the adapter (``_handle_exception``) and then raised as
  SQLAlchemy's, parameters hidden.

It leans on five adapter internals (``_execute_mutex``, ``_transaction``,
``_start_transaction``, ``_prepare``, ``_handle_exception``);
``tests/unit/storage/test_direct.py`` fails loudly if any changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    PGDialect_asyncpg,
)

from ringfence.storage.direct import Direct


class AsyncpgDirect(Direct):
    __slots__ = ()
    DIALECT = PGDialect_asyncpg
    ADAPTED = AsyncAdapt_asyncpg_connection
    _adapted: AsyncAdapt_asyncpg_connection

    async def _run(self, sql: str, args: tuple[Any, ...], *, alone: bool) -> Sequence[Any]:
        adapted = self._adapted
        async with adapted._execute_mutex:
            try:
                if not alone:
                    await self._begun()
                # As the adapter's cursor is given it by SQLAlchemy's execution context.
                asof = self._dialect._invalidate_schema_cache_asof  # type: ignore[attr-defined]
                statement, _ = await adapted._prepare(sql, asof)  # type: ignore[no-untyped-call]
                rows: Sequence[Any] = await statement.fetch(*args)
            except Exception as exc:
                raise self._translated(sql, args, exc) from exc
        return rows

    async def _run_many(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        adapted = self._adapted
        async with adapted._execute_mutex:
            try:
                await self._begun()
                await adapted._connection.executemany(sql, args)
            except Exception as exc:
                raise self._translated(sql, args, exc) from exc

    async def _begun(self) -> None:
        if self._adapted._transaction is None and not self._autocommit:
            await self._adapted._start_transaction()  # type: ignore[no-untyped-call]

    def _translated(self, sql: str, args: Any, exc: Exception) -> Exception:
        """``exc`` as SQLAlchemy's exception: translated by the adapter into its DBAPI
        error, then wrapped as an execution would wrap it."""
        error_class = self._adapted.dbapi.Error
        if not isinstance(exc, error_class):
            try:
                self._adapted._handle_exception(exc)  # always raises
            except error_class as translated:
                exc = translated
            except Exception as other:  # not a database error (cancelled, a bug)
                return other
        return self._error(sql, args, exc, error_class)
