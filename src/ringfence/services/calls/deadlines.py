"""Call deadlines, swept by every node.

Timeouts are deadlines kept in the call store, not timers of this process: every node
runs a sweeper that claims due deadlines (each goes to one node) and hands them to the
signaling driver, so a call still ends when the node that started it has died. The
periodic liveness check of each live call is one of them: it notices devices that
vanished with a dead node (their presence expired) and gives them the same grace
period as a dropped WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ringfence.clock import Clock
from ringfence.services.calls.store import CallStore, Deadline
from ringfence.tasks import raise_if_cancelled, stop

log = logging.getLogger(__name__)

DEADLINE_LEASE_S = 30.0  # a claimed deadline comes due again if its node dies on it


class DeadlineSweeper:
    def __init__(
        self,
        *,
        store: CallStore,
        fire: Callable[[Deadline], Awaitable[None]],
        clock: Clock,
        interval_s: float,
    ) -> None:
        self.store = store
        self._fire = fire
        self._clock = clock
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin acting on due deadlines (of calls started on any node)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="call-deadline-sweeper"
            )

    async def _sweep_forever(self) -> None:
        delay = self._interval_s
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the store is unreachable: back off, and say so once
                if delay == self._interval_s:
                    log.warning("sweeping call deadlines failed (%s); retrying", type(exc).__name__)
                delay = min(5.0, delay * 2)
            else:
                if delay != self._interval_s:
                    log.info("sweeping call deadlines works again")
                delay = self._interval_s
            raise_if_cancelled()
            await asyncio.sleep(delay)

    async def sweep(self) -> int:
        """Claim the deadlines due now and act on them; returns how many there were."""
        due = await self.store.claim_due(self._clock.time(), lease_s=DEADLINE_LEASE_S, limit=100)
        for deadline in due:
            try:
                await self._fire(deadline)
            except Exception:
                log.exception("call %s: %s deadline failed", deadline.call_id, deadline.kind[:5])
            # If this fails too, the lease runs out and the deadline fires again; every
            # action is idempotent.
            await self.store.release(deadline)
        return len(due)

    async def close(self) -> None:
        """Stop sweeping; the deadlines stay in the store for the other nodes."""
        await stop(self._task)
        self._task = None
