"""argon2id hashing: OWASP parameters, off the event loop, bounded in concurrency."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from ringfence.services.passwords import MEMORY_KIB, PARALLELISM, TIME_COST, Passwords


class RecordingHasher(PasswordHasher):
    """The real hasher, noting which thread hashes and how many hash at once.

    With ``rendezvous`` set, each hash waits (in its worker thread) until that many
    hashes are running together, which proves they may overlap.
    """

    def __init__(self, rendezvous: int | None = None) -> None:
        super().__init__(
            time_cost=TIME_COST,
            memory_cost=MEMORY_KIB,
            parallelism=PARALLELISM,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self.threads: set[int] = set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(rendezvous) if rendezvous else None

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.threads.add(threading.get_ident())
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self._barrier is not None:
                self._barrier.wait(timeout=10)
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.active -= 1


def recording(passwords: Passwords, rendezvous: int | None = None) -> RecordingHasher:
    hasher = RecordingHasher(rendezvous)
    passwords._hasher = hasher
    return hasher


async def test_hash_is_argon2id_with_at_least_owasp_parameters() -> None:
    stored = await Passwords().hash("correct horse battery")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism == 1


async def test_verify_accepts_the_password_and_nothing_else() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery")
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "correct horse batter")
    assert not await passwords.verify(stored, "")
    assert not await passwords.verify("not-a-hash", "correct horse battery")


async def test_unknown_user_costs_a_real_verification_and_never_matches() -> None:
    passwords = Passwords()
    hasher = recording(passwords)
    assert not await passwords.verify(None, "ringfence-timing-equaliser")
    assert not await passwords.verify(None, "")
    # The equaliser hash is computed once and reused.
    assert len(hasher.threads) == 1


async def test_hashing_runs_off_the_event_loop() -> None:
    passwords = Passwords()
    hasher = recording(passwords)
    await passwords.hash("correct horse battery")
    assert hasher.threads
    assert threading.get_ident() not in hasher.threads


async def test_concurrency_is_bounded() -> None:
    passwords = Passwords(concurrency=1)
    hasher = recording(passwords)
    await asyncio.gather(*(passwords.hash(f"password number {i}") for i in range(4)))
    assert hasher.max_active == 1


async def test_concurrency_allows_the_configured_number_at_once() -> None:
    passwords = Passwords(concurrency=2)
    hasher = recording(passwords, rendezvous=2)  # deadlocks (and fails) if only one runs
    await asyncio.gather(*(passwords.hash(f"password number {i}") for i in range(2)))
    assert hasher.max_active == 2


@pytest.mark.parametrize(
    "weaker",
    [
        {"time_cost": 1, "memory_cost": MEMORY_KIB, "parallelism": 1},
        {"time_cost": 2, "memory_cost": 8 * 1024, "parallelism": 1},
    ],
)
def test_weaker_hashes_need_rehash(weaker: dict[str, Any]) -> None:
    old = PasswordHasher(type=Type.ID, **weaker).hash("correct horse battery")
    assert Passwords().needs_rehash(old)


async def test_current_hashes_do_not_need_rehash() -> None:
    passwords = Passwords()
    assert not passwords.needs_rehash(await passwords.hash("correct horse battery"))
