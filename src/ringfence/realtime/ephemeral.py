"""Short-lived shared state: rate-limit counters, live calls, and who is online.

None of this is durable: it lives in memory on a single node, and in Redis (with TTLs)
when several nodes share it. The interfaces are what services see; both backends sit
behind them, so the code above is identical.

Live-call state holds the caller's offer SDP while the call rings, because a callee
device that connects mid-ring must still be able to ring. SDP lives only here, in
memory or in Redis with a TTL, and never in the database or a log (privacy invariant 2).
"""

from __future__ import annotations

import abc
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ringfence.calls.state import Call


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


TransportPolicy = Literal["relay", "all"]


@dataclass(frozen=True)
class LiveCall:
    """A call in progress and the signaling it still needs to hand on."""

    call: Call
    offer_sdp: str | None = None
    # Caller candidates that arrive while the call rings wait here for the device that
    # answers: devices that merely ring learn nothing about the caller's network.
    pending_candidates: tuple[dict[str, object], ...] = field(default=())
    caller_policy: TransportPolicy = "relay"
    callee_policy: TransportPolicy = "relay"


class CallStore(abc.ABC):
    """Live calls, indexed by id and by participant."""

    @abc.abstractmethod
    async def get(self, call_id: str) -> LiveCall | None: ...

    @abc.abstractmethod
    async def put(self, live: LiveCall) -> None: ...

    @abc.abstractmethod
    async def replace(self, expected_state: str, live: LiveCall) -> bool:
        """Store ``live`` only if the stored call is still in ``expected_state``.

        This is the compare-and-set that makes "the first device to answer wins" hold
        even when two answers race on different nodes."""

    @abc.abstractmethod
    async def remove(self, call_id: str) -> None: ...

    @abc.abstractmethod
    async def calls_of(self, user_id: int) -> list[LiveCall]:
        """The live calls a user takes part in, as caller or callee."""


class InMemoryCallStore(CallStore):
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._by_user: dict[int, set[str]] = {}

    async def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    async def put(self, live: LiveCall) -> None:
        call = live.call
        self._calls[call.call_id] = live
        for user_id in (call.caller_id, call.callee_id):
            self._by_user.setdefault(user_id, set()).add(call.call_id)

    async def replace(self, expected_state: str, live: LiveCall) -> bool:
        current = self._calls.get(live.call.call_id)
        if current is None or current.call.state.value != expected_state:
            return False
        self._calls[live.call.call_id] = live
        return True

    async def remove(self, call_id: str) -> None:
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


class Presence(abc.ABC):
    """Which devices of a user are connected, on any node."""

    @abc.abstractmethod
    async def devices(self, user_id: int) -> list[str]: ...

    @abc.abstractmethod
    async def is_connected(self, user_id: int, device_id: str) -> bool: ...
