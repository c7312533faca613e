"""Where live calls and their deadlines are kept between frames: the interface the call
driver needs. Implementations sit in ``ringfence.backends`` (memory for one node, Redis
for many). A live call holds the caller's offer SDP while it rings; it lives only in the
store, with a TTL, and never in the database or a log (privacy invariant 2)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from ringfence.calls.live import LiveCall


@dataclass(frozen=True, slots=True)
class Deadline:
    """A due deadline that one node has claimed (see :meth:`CallStore.claim_due`).

    ``lease`` is the time the claim runs out: it identifies this claim, so that
    releasing it never removes a deadline that was set again in the meantime."""

    call_id: str
    kind: str
    lease: float


class CallStore(abc.ABC):
    """Live calls, indexed by id and by participant, and their deadlines.

    Deadlines (the ring timeout, a lost device's grace period, the periodic check that
    a call's devices are still connected somewhere) live here rather than in a timer of
    the node that set them, so that they fire even when that node is gone: every node
    sweeps for due deadlines, and :meth:`claim_due` hands each one to a single node.
    """

    @abc.abstractmethod
    async def get(self, call_id: str) -> LiveCall | None: ...

    @abc.abstractmethod
    async def put(self, live: LiveCall) -> None: ...

    @abc.abstractmethod
    async def replace(self, expected: LiveCall, live: LiveCall) -> bool:
        """Store ``live`` only if the stored call is still exactly ``expected`` (as
        read: same revision), and bump its revision.

        This is the compare-and-set that makes "the first device to answer wins" hold
        even when two answers race on different nodes, and that keeps two writers from
        undoing each other: one that read the call before a policy was tightened can
        never write the looser policy back. A writer that loses reads again and
        re-decides (``services.calls.signaling.Signaling._step``)."""

    @abc.abstractmethod
    async def remove(self, call_id: str) -> None:
        """Forget the call and every deadline it has."""

    @abc.abstractmethod
    async def calls_of(self, user_id: int) -> list[LiveCall]:
        """The live calls a user takes part in, as caller or callee."""

    @abc.abstractmethod
    async def set_deadline(
        self, call_id: str, kind: str, due: float, *, replace: bool = True
    ) -> None:
        """Make ``kind`` of this call due at epoch time ``due``. With ``replace=False``
        a deadline of that kind that is already set is left as it is. A call that is
        not (or no longer) stored gets none."""

    @abc.abstractmethod
    async def cancel_deadline(self, call_id: str, kind: str) -> None: ...

    @abc.abstractmethod
    async def claim_due(self, now: float, *, lease_s: float, limit: int) -> list[Deadline]:
        """Claim up to ``limit`` deadlines due at ``now``: each goes to one caller only.

        A claimed deadline is not removed but pushed ``lease_s`` into the future, so if
        the node that claimed it dies before acting, another node claims it again."""

    @abc.abstractmethod
    async def release(self, deadline: Deadline) -> None:
        """Drop a claimed deadline once acted on, unless it was set again since."""
