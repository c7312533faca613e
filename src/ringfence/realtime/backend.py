"""The four pieces of state nodes share, bundled so that app.py can pick a backend.

:func:`in_memory_backend` serves one node; ``redis_backend.open_redis_backend`` serves
any number sharing one Redis. Everything above takes a :class:`Backend`'s parts through
their interfaces and cannot tell which one it got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ringfence.clock import Clock
from ringfence.realtime.bus import Bus, InMemoryBus
from ringfence.realtime.ephemeral import (
    CallStore,
    InMemoryCallStore,
    InMemoryPresence,
    InMemoryRateLimiter,
    PresenceRegistry,
    RateLimiter,
)


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


def in_memory_backend(clock: Clock) -> Backend:
    """Everything in this process: a single node."""
    return Backend(
        bus=InMemoryBus(),
        call_store=InMemoryCallStore(),
        limiter=InMemoryRateLimiter(clock.monotonic),
        presence=InMemoryPresence(),
    )
