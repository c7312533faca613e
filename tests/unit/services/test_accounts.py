"""Account rules that the HTTP API cannot reach directly: rehashing, suspension,
session touch-ups and the admin's verified flag."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from ringfence.clock import FakeClock
from ringfence.services.accounts import Accounts, hash_token
from ringfence.services.errors import Forbidden, NotFound, Unauthorized
from ringfence.services.passwords import Passwords
from ringfence.storage.database import Database

PASSWORD = "correct horse battery"


@dataclass
class World:
    db: Database
    clock: FakeClock
    accounts: Accounts


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    db = Database(database_url)
    await db.start()
    clock = FakeClock()
    yield World(db, clock, Accounts(db, Passwords(), clock))
    await db.close()


async def stored_hash(db: Database, username: str) -> str:
    async with db.read() as store:
        user = await store.users.by_username(username)
        assert user is not None
        return user.password_hash


async def test_login_upgrades_a_weaker_stored_hash(world: World) -> None:
    await world.accounts.register("alice", PASSWORD, None)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    async with world.db.write() as store:
        user = await store.users.by_username("alice")
        assert user is not None
        await store.users.set_password_hash(user.id, weak.hash(PASSWORD))
    await world.accounts.login("alice", PASSWORD)
    params = extract_parameters(await stored_hash(world.db, "alice"))
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 19 * 1024, 1)
    # And the upgraded hash still logs in.
    await world.accounts.login("alice", PASSWORD)


async def test_suspended_account_cannot_log_in_or_use_its_tokens(world: World) -> None:
    _, token = await world.accounts.register("alice", PASSWORD, None)
    async with world.db.write() as store:
        user = await store.users.by_username("alice")
        assert user is not None
        await store.users.set_suspended(user.id, True)
    with pytest.raises(Forbidden):
        await world.accounts.login("alice", PASSWORD)
    with pytest.raises(Unauthorized):
        await world.accounts.authenticate(token)


async def test_last_seen_is_written_at_most_every_few_minutes(world: World) -> None:
    _, token = await world.accounts.register("alice", PASSWORD, None)

    async def last_seen() -> object:
        async with world.db.read() as store:
            found = await store.sessions.user_for_token(hash_token(token))
            assert found is not None
            return found[0].last_seen_at

    registered = await last_seen()
    world.clock.advance(60)
    await world.accounts.authenticate(token)
    assert await last_seen() == registered
    world.clock.advance(10 * 60)
    await world.accounts.authenticate(token)
    assert await last_seen() == world.clock.now()


@pytest.mark.parametrize(
    "token", [None, "", "rf_", "not-a-ringfence-token", "rf_" + "a" * 200, "rf_\x00"]
)
async def test_malformed_tokens_are_unauthorized(world: World, token: str | None) -> None:
    with pytest.raises(Unauthorized):
        await world.accounts.authenticate(token)


async def test_set_verified(world: World) -> None:
    await world.accounts.register("alice", PASSWORD, None)
    assert (await world.accounts.set_verified("alice", True)).verified
    assert (await world.accounts.profile("alice")).verified
    assert not (await world.accounts.set_verified("alice", False)).verified
    assert not (await world.accounts.profile("alice")).verified
    with pytest.raises(NotFound):
        await world.accounts.set_verified("nobody", True)
    with pytest.raises(NotFound):
        await world.accounts.set_verified("Not A Name\x00", True)
