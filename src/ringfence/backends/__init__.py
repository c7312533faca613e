"""The four pieces of state nodes share, bundled so that app.py can pick a backend.

:func:`ringfence.backends.memory.in_memory_backend` serves one node;
:func:`ringfence.backends.redis.open_redis_backend` serves any number sharing one Redis.
The interfaces belong to the code that uses them (``services.ratelimit``,
``services.calls.store``, ``realtime.hub``); their two implementations sit side by side
here. Everything above takes a :class:`Backend`'s parts through
their interfaces and cannot tell which one it got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ringfence.realtime.bus import Bus
from ringfence.realtime.hub import PresenceRegistry
from ringfence.services.calls.store import CallStore
from ringfence.services.ratelimit import RateLimiter


@dataclass(frozen=True)
class Backend:
    bus: Bus
    call_store: CallStore
    limiter: RateLimiter
    presence: PresenceRegistry
    # Run after the bus and presence are closed (e.g. closing a connection pool).
    finalizers: tuple[Callable[[], Awaitable[None]], ...] = field(default=())

    async def start(self) -> None:
        await self.bus.start()
        try:
            await self.presence.start()
        except BaseException:
            await self.bus.close()
            raise

    async def close(self) -> None:
        try:
            await self.presence.close()
            await self.bus.close()
        finally:
            for finalize in self.finalizers:
                await finalize()
