"""Short-lived shared state: rate-limit counters, live calls, and who is online.

None of this is durable: it lives in memory on a single node, and in Redis (with TTLs)
when several nodes share it. The interfaces are what services see; both backends sit
behind them, so the code above is identical.

Live-call state (:class:`~ringfence.calls.live.LiveCall`) holds the caller's offer SDP
while the call rings; it lives only here, in memory or in Redis with a TTL, and never in
the database or a log (privacy invariant 2).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ringfence.calls.live import LiveCall


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    async def hit(self, key: str, *, limit: int, window_s: float) -> float | None:
        """Count one attempt for ``key``. Returns None when allowed, or the seconds to
        wait when ``limit`` attempts were already made within the last ``window_s``.
        Refused attempts are not counted, so waiting always helps."""


class InMemoryRateLimiter(RateLimiter):
    """Sliding-window log per key, pruned as it is used."""

    def __init__(self, now: Callable[[], float], max_keys: int = 100_000) -> None:
        self._now = now
        self._hits: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, *, limit: int, window_s: float) -> float | None:
        now = self._now()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now, window_s)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.001, hits[0] + window_s - now)
        hits.append(now)
        return None

    def _prune(self, now: float, window_s: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - window_s]:
            del self._hits[key]


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


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
        re-decides (``Calls._update``)."""

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


class InMemoryCallStore(CallStore):
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._by_user: dict[int, set[str]] = {}
        self._deadlines: dict[tuple[str, str], float] = {}

    async def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    async def put(self, live: LiveCall) -> None:
        call = live.call
        self._calls[call.call_id] = dataclasses.replace(live, revision=1)
        for user_id in (call.caller_id, call.callee_id):
            self._by_user.setdefault(user_id, set()).add(call.call_id)

    async def replace(self, expected: LiveCall, live: LiveCall) -> bool:
        call_id = live.call.call_id
        current = self._calls.get(call_id)
        if current is None or call_id != expected.call.call_id:
            return False
        if current.revision != expected.revision:
            return False
        self._calls[call_id] = dataclasses.replace(live, revision=current.revision + 1)
        return True

    async def remove(self, call_id: str) -> None:
        for key in [key for key in self._deadlines if key[0] == call_id]:
            del self._deadlines[key]
        live = self._calls.pop(call_id, None)
        if live is None:
            return
        for user_id in (live.call.caller_id, live.call.callee_id):
            ids = self._by_user.get(user_id)
            if ids is not None:
                ids.discard(call_id)
                if not ids:
                    del self._by_user[user_id]

    async def calls_of(self, user_id: int) -> list[LiveCall]:
        return [self._calls[cid] for cid in self._by_user.get(user_id, ()) if cid in self._calls]

    async def set_deadline(
        self, call_id: str, kind: str, due: float, *, replace: bool = True
    ) -> None:
        if call_id in self._calls and (replace or (call_id, kind) not in self._deadlines):
            self._deadlines[(call_id, kind)] = due

    async def cancel_deadline(self, call_id: str, kind: str) -> None:
        self._deadlines.pop((call_id, kind), None)

    async def claim_due(self, now: float, *, lease_s: float, limit: int) -> list[Deadline]:
        due = sorted((at, key) for key, at in self._deadlines.items() if at <= now)[:limit]
        lease = now + lease_s
        for _, key in due:
            self._deadlines[key] = lease
        return [Deadline(call_id, kind, lease) for _, (call_id, kind) in due]

    async def release(self, deadline: Deadline) -> None:
        key = (deadline.call_id, deadline.kind)
        if self._deadlines.get(key) == deadline.lease:
            del self._deadlines[key]


class Presence(abc.ABC):
    """Which devices of a user are connected, on any node."""

    @abc.abstractmethod
    async def devices(self, user_id: int) -> list[str]: ...

    @abc.abstractmethod
    async def is_connected(self, user_id: int, device_id: str) -> bool: ...


class PresenceRegistry(Presence):
    """Where a node records the devices connected to it (the Hub does, as they come
    and go), and where every node reads who is connected anywhere."""

    async def start(self) -> None:
        """Begin announcing this node, if the backend needs it."""

    async def close(self) -> None:
        """Withdraw this node and its devices, if the backend needs it."""

    @abc.abstractmethod
    async def add(self, user_id: int, device_id: str) -> None:
        """This node now holds a connection of the device."""

    @abc.abstractmethod
    async def remove(self, user_id: int, device_id: str) -> None:
        """This node no longer holds a connection of the device."""


class InMemoryPresence(PresenceRegistry):
    """The single-node registry: the connected devices of each user."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[str]] = {}

    async def add(self, user_id: int, device_id: str) -> None:
        self._by_user.setdefault(user_id, set()).add(device_id)

    async def remove(self, user_id: int, device_id: str) -> None:
        devices = self._by_user.get(user_id)
        if devices is not None:
            devices.discard(device_id)
            if not devices:
                del self._by_user[user_id]

    async def devices(self, user_id: int) -> list[str]:
        return list(self._by_user.get(user_id, ()))

    async def is_connected(self, user_id: int, device_id: str) -> bool:
        return device_id in self._by_user.get(user_id, ())
