"""Background tasks that really stop when they are told to.

Ringfence runs a few loops for its whole life (the call-deadline sweeper, the Redis
subscriber, presence heartbeats, the coturn watchdog, session checks). Each catches
the errors of what it watches and keeps going, because a loop that dies leaves a
node quietly broken. That makes them fragile on shutdown: a cancellation that arrives
inside a library call can come out as an ordinary error (seen with redis-py: a command
cancelled as its own timeout fired came out as TimeoutError), the loop logs it and
carries on, and the ``await task`` in ``close()`` waits for ever. A test run caught the
call sweeper doing exactly that, holding up the server's shutdown.

So every such loop calls :func:`raise_if_cancelled` after handling an error, and every
``close()`` stops its tasks with :func:`stop`, which cancels again until the task ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop, even when something below
    turned that request into an ordinary error (the task still counts it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(task: asyncio.Task[Any] | None, *, every_s: float = 1.0) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again every
    ``every_s`` while it goes on. A cancellation of the caller itself propagates."""
    if task is None:
        return
    task.cancel()
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=every_s)
        if not done:
            log.warning("task %s ignored a cancellation; cancelling it again", task.get_name())
            task.cancel()
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("task %s ended with %s while stopping", task.get_name(), type(error).__name__)
