"""Group commit for SQLite: writers that queue up behind one another share one
transaction and one fsync.

SQLite has one writer, and with ``synchronous=FULL`` each commit waits for an fsync
(about 2.3 ms on the project's machine): one commit per write caps a process at a few
hundred writes a second however little each costs, and every queued writer waits for
each fsync before its own. Here the writers still take turns (on the event loop, see
:class:`~ringfence.storage.database.Database`), but the first of a group opens the
transaction and each writer's work runs inside a SAVEPOINT of it:

- a writer whose block raises rolls back to its savepoint, and only its own work is
  undone; the others' stays;
- when a writer's block ends, the group is committed by a task that queues for the
  write turn behind the writers already waiting, so they join the group first, and
  those that arrive later form the next one;
- every writer of the group returns from :meth:`GroupCommit.write` only after the
  COMMIT (and its fsync) succeeded, so an acknowledgement still means "on disk". If
  the commit fails, every writer of the group gets the error, and nothing of any of
  them was stored.

After each writer the session forgets its objects (``expunge_all``), so what one
writer read or returned never changes under it because of another's work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

from ringfence.storage.direct import Direct
from ringfence.storage.repositories import Store

log = logging.getLogger(__name__)


class _Group:
    """Writers sharing one transaction: its session, and the outcome of its commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Nobody may be left waiting for the outcome; mark it seen either way, so a
        # failed group whose writers all failed first is not reported as unretrieved.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.committing: asyncio.Task[None] | None = None
        self.broken: BaseException | None = None
        self.direct: Direct | None = None


class GroupCommit:
    """Grouped write transactions over one SQLite engine.

    ``turn`` is the database's write turn (a context manager that waits for it, with the
    busy timeout); ``lock`` is the lock under it, which the committing task takes
    without a timeout: a group must always end, or SQLite's write lock stays held."""

    def __init__(
        self,
        new_session: Callable[[], AsyncSession],
        turn: Callable[[], AbstractAsyncContextManager[None]],
        lock: asyncio.Lock,
    ) -> None:
        self._new_session = new_session
        self._turn = turn
        self._lock = lock
        self._open: _Group | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Store]:
        """One writer's unit of work: commits with its group when the block exits
        without an exception (and returns only then), rolls back its own part otherwise.
        Driver errors propagate as they are; the caller classifies them."""
        async with self._turn():
            # The open group is joined until its commit takes the turn (which closes it):
            # a second transaction could not begin while the first holds SQLite's lock.
            group = self._open
            if group is None:
                group = self._open = _Group(self._new_session())
            try:
                savepoint = await self._savepoint(group)
                try:
                    yield Store(group.session, group.direct)
                    await savepoint.commit()
                except BaseException:
                    await self._undo(group, savepoint)
                    raise
                finally:
                    group.session.expunge_all()
            finally:
                if group.broken is not None:
                    await self._abandon(group)
                elif group.committing is None:
                    task = asyncio.create_task(self._commit(group), name="sqlite-group-commit")
                    group.committing = task
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
        await asyncio.shield(group.done)

    async def _savepoint(self, group: _Group) -> AsyncSessionTransaction:
        """This writer's SAVEPOINT (the first one also begins the group's transaction).
        A failure here breaks the group: its transaction may never have begun."""
        try:
            if not group.session.in_transaction():
                await group.session.begin()
                group.direct = await Direct.of(group.session)
            savepoint = await group.session.begin_nested()
            # The session emits the SAVEPOINT when it next uses the connection, and the
            # direct statements never go through the session: emit it now, or they
            # would land outside it and survive this writer's rollback.
            await group.session.connection()
            return savepoint
        except BaseException as exc:
            group.broken = exc
            raise

    async def _undo(self, group: _Group, savepoint: AsyncSessionTransaction) -> None:
        try:
            await savepoint.rollback()
        except BaseException as exc:
            # The savepoint could not be undone: the others' work can't be told apart
            # from this writer's, so none of it may be committed.
            group.broken = exc
            log.warning("a write could not be rolled back to its savepoint; its group fails")

    async def _abandon(self, group: _Group) -> None:
        """End a broken group now, while this writer holds the turn: roll it back, so
        that SQLite's write lock is free for the next group, and fail its writers."""
        if self._open is group:
            self._open = None
        assert group.broken is not None
        _fail(group, group.broken)
        try:
            await group.session.rollback()
        except Exception:
            log.warning("a broken write group could not be rolled back")
        finally:
            await group.session.close()

    async def _commit(self, group: _Group) -> None:
        """Commit (or, if broken, roll back) ``group`` once the writers queued before
        this task have joined it."""
        try:
            async with self._lock:
                if self._open is group:
                    self._open = None
                if group.done.done():  # abandoned by a writer since this task was made
                    return
                try:
                    if group.broken is not None:
                        raise group.broken
                    await group.session.commit()
                except BaseException as exc:
                    _fail(group, exc)
                    try:
                        await group.session.rollback()
                    except Exception:
                        log.warning("a failed write group could not be rolled back")
                else:
                    group.done.set_result(None)
                finally:
                    await group.session.close()
        except BaseException as exc:  # cancelled (shutdown): its writers must not hang
            _fail(group, exc)
            raise

    async def drain(self) -> None:
        """Wait for every group that is being committed (shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _fail(group: _Group, exc: BaseException) -> None:
    """Hand ``exc`` to every writer of ``group`` (once)."""
    if group.done.done():
        return
    if not isinstance(exc, Exception):  # a cancellation is not the writers' to re-raise
        exc = RuntimeError("the write group was interrupted before its commit")
    group.done.set_exception(exc)
