"""Repositories on the backend under test (SQLite, or PostgreSQL in the second run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError, StatementError

from ringfence.storage.database import Database
from ringfence.storage.repositories import Store, User
from tests.unit.storage.helpers import add_message

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def add_user(store: Store, name: str) -> User:
    return await store.users.add(username=name, display_name=name, password_hash="x", now=NOW)


async def users(db: Database, *names: str) -> list[int]:
    async with db.write() as store:
        return [(await add_user(store, name)).id for name in names]


async def test_username_is_unique(db: Database) -> None:
    await users(db, "alice")
    with pytest.raises(IntegrityError):
        await users(db, "alice")
    async with db.read() as store:
        found = await store.users.by_username("alice")
        assert found is not None
        assert found.verified is False
        assert found.created_at == NOW


async def test_stream_positions_are_per_user_and_gap_free(db: Database) -> None:
    alice, bob = await users(db, "alice", "bob")
    async with db.write() as store:
        assert [await store.users.next_stream_pos(alice) for _ in range(3)] == [1, 2, 3]
        assert await store.users.next_stream_pos(bob) == 1
    async with db.read() as store:
        assert await store.users.stream_pos(alice) == 3
        assert await store.users.stream_pos(bob) == 1
    with pytest.raises(LookupError):
        async with db.write() as store:
            await store.users.next_stream_pos(9999)


async def test_a_rolled_back_position_is_handed_out_again(db: Database) -> None:
    (alice,) = await users(db, "alice")

    async def reserve_then_fail() -> None:
        async with db.write() as store:
            assert await store.users.next_stream_pos(alice) == 1
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await reserve_then_fail()
    async with db.write() as store:
        assert await store.users.next_stream_pos(alice) == 1


async def test_conversation_pair_is_unordered_and_unique(db: Database) -> None:
    alice, bob = await users(db, "alice", "bob")
    async with db.write() as store:
        conv = await store.conversations.create(bob, alice, NOW)
        found = await store.conversations.between(alice, bob)
        assert found is not None
        assert found.id == conv.id
        with pytest.raises(IntegrityError):
            await store.conversations.create(alice, bob, NOW)
        # The failed insert was confined to a savepoint: the transaction goes on.
        assert (await store.conversations.between(bob, alice)) is not None


async def test_duplicate_txn_id_is_refused_and_the_transaction_survives(db: Database) -> None:
    alice, bob = await users(db, "alice", "bob")
    async with db.write() as store:
        conv = await store.conversations.create(alice, bob, NOW)
        first = await add_message(store, conv.id, alice, bob, text="one", txn_id="t1", now=NOW)
        duplicate = await add_message(store, conv.id, alice, bob, text="two", txn_id="t1", now=NOW)
        assert duplicate is None  # refused: nothing written
        again = await store.messages.by_txn(alice, "t1")
        assert again is not None
        assert first is not None
        assert again.id == first.id
        # The same txn_id from another sender is a different transaction.
        await add_message(store, conv.id, bob, alice, text="three", txn_id="t1", now=NOW)
    async with db.read() as store:
        assert await store.messages.count() == 2


async def test_message_pages_are_oldest_first_before_a_cursor(db: Database) -> None:
    alice, bob = await users(db, "alice", "bob")
    async with db.write() as store:
        conv = await store.conversations.create(alice, bob, NOW)
        ids = []
        for i in range(5):
            msg = await add_message(
                store,
                conv.id,
                alice,
                bob,
                text=f"m{i}",
                txn_id=None,
                now=NOW + timedelta(seconds=i),
            )
            assert msg is not None
            ids.append(msg.id)
    async with db.read() as store:
        newest = await store.messages.page(conv.id, viewer_id=bob, before=None, limit=2)
        assert [m.text for m in newest] == ["m3", "m4"]
        older = await store.messages.page(conv.id, viewer_id=bob, before=newest[0].id, limit=2)
        assert [m.text for m in older] == ["m1", "m2"]
        oldest = await store.messages.page(conv.id, viewer_id=bob, before=older[0].id, limit=2)
        assert [m.text for m in oldest] == ["m0"]
        assert await store.messages.page(conv.id, viewer_id=bob, before=ids[0], limit=2) == []


async def test_event_ranges(db: Database) -> None:
    (alice,) = await users(db, "alice")
    async with db.write() as store:
        for pos in range(1, 6):
            await store.events.append(
                user_id=alice, pos=pos, type="t", payload=f'{{"pos":{pos}}}', now=NOW
            )
    async with db.read() as store:
        assert [e.pos for e in await store.events.range(alice, after=0, upto=None, limit=10)] == [
            1,
            2,
            3,
            4,
            5,
        ]
        assert [e.pos for e in await store.events.range(alice, after=1, upto=3, limit=10)] == [2, 3]
        assert [e.pos for e in await store.events.range(alice, after=0, upto=None, limit=2)] == [
            1,
            2,
        ]
        assert await store.events.range(alice, after=5, upto=None, limit=10) == []


async def test_blocks_are_seen_from_both_sides(db: Database) -> None:
    alice, bob, carol = await users(db, "alice", "bob", "carol")
    async with db.write() as store:
        await store.social.block(alice, bob, NOW)
        await store.social.block(alice, bob, NOW)  # idempotent
        assert await store.social.blocked_either_way(alice, bob)
        assert await store.social.blocked_either_way(bob, alice)
        assert not await store.social.blocked_either_way(alice, carol)
        await store.social.unblock(alice, bob)
        assert not await store.social.blocked_either_way(bob, alice)


async def test_datetimes_are_utc_aware_and_naive_ones_are_refused(db: Database) -> None:
    (alice,) = await users(db, "alice")
    async with db.read() as store:
        user = await store.users.by_id(alice)
        assert user is not None
        assert user.created_at.tzinfo is not None
        assert user.created_at.utcoffset() == timedelta(0)
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.write() as store:
            await store.users.add(
                username="naive",
                display_name="naive",
                password_hash="x",
                now=datetime(2026, 1, 1),  # naive: the point of the test
            )


async def test_a_read_is_one_snapshot_even_when_a_write_commits_during_it(
    db: Database,
) -> None:
    # A conversation list reads its last messages and its unread counts in separate
    # statements; a send committing between them must not be half seen (on PostgreSQL
    # a READ COMMITTED read would count it as unread without listing it).
    alice, bob = await users(db, "alice", "bob")
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)

    async def send(txn_id: str) -> None:
        async with db.write() as store:
            await add_message(store, conv_id, alice, bob, text=txn_id, txn_id=txn_id, now=NOW)

    await send("one")
    async with db.read() as store:
        before = await store.messages.count()
        await send("two")
        assert await store.messages.count() == before
    async with db.read() as store:
        assert await store.messages.count() == before + 1
