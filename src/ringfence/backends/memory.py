"""The single-node backend: rate limits, live calls and presence in this process."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

from ringfence.backends import Backend
from ringfence.calls.live import LiveCall
from ringfence.clock import Clock
from ringfence.realtime.bus import InMemoryBus
from ringfence.realtime.hub import PresenceRegistry
from ringfence.services.calls.store import CallStore, Deadline
from ringfence.services.ratelimit import RateLimiter


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


def in_memory_backend(clock: Clock) -> Backend:
    """Everything in this process: a single node."""
    return Backend(
        bus=InMemoryBus(),
        call_store=InMemoryCallStore(),
        limiter=InMemoryRateLimiter(clock.monotonic),
        presence=InMemoryPresence(),
    )
