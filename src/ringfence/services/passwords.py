"""argon2id password hashing, run off the event loop and bounded in concurrency.

One hash costs ~19 MiB and tens of milliseconds of CPU. Running it in a thread keeps
the event loop (and every WebSocket) responsive; the semaphore stops a burst of
logins from allocating unbounded memory.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1


class Passwords:
    def __init__(self, concurrency: int = 2) -> None:
        self._hasher = PasswordHasher(
            time_cost=TIME_COST,
            memory_cost=MEMORY_KIB,
            parallelism=PARALLELISM,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Check a password. With no stored hash (unknown user) the same work is done,
        so response time does not reveal whether an account exists."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("ringfence-timing-equaliser")
            stored_hash = self._dummy
            password = password + "\x00never-matches"
        async with self._slots:
            return await asyncio.to_thread(self._verify_sync, stored_hash, password)

    def _verify_sync(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
