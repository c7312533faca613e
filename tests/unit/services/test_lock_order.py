"""Writers that share people lock those people's rows in one order, so that none of
them ever meets a deadlock: a send, a read receipt, a delivery receipt and a rename
between the same two people, all at once, all land. (On PostgreSQL a deadlock is
answered 503, and the browser's read of a conversation was lost to one while the other
person renamed themselves; SQLite writers take turns, and the same test holds there.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ringfence.services.accounts import AuthContext
from ringfence.services.container import Services
from tests.conftest import Api, DbPeek, in_process, make_settings

ROUNDS = 25


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Api, Services]]:
    # Limits high enough that the rounds below meet no rate limit: only lock waits.
    settings = make_settings(
        tmp_path,
        database_url,
        messages_per_minute=10_000,
        display_name_changes_per_day=10_000,
    )
    async with in_process(settings) as app:
        yield app


async def _pair(api: Api, svc: Services) -> tuple[AuthContext, AuthContext]:
    """alice and bob, in an accepted conversation, both sharing read receipts."""
    alice, bob = [await svc.accounts.authenticate(await api.register(n)) for n in ("alice", "bob")]
    await svc.messaging.send(alice.user, "bob", "hello bob", None)
    await svc.messaging.send(bob.user, "alice", "hello alice", None)
    return alice, bob


async def _all_land(*ops: Any) -> None:
    results = await asyncio.gather(*ops, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures


async def test_sends_reads_deliveries_and_renames_between_two_people_never_deadlock(
    services: tuple[Api, Services], db_peek: DbPeek
) -> None:
    api, svc = services
    alice, bob = await _pair(api, svc)
    messaging, accounts = svc.messaging, svc.accounts
    for i in range(ROUNDS):
        to_bob = await messaging.send(alice.user, "bob", f"to bob {i}", None)
        to_alice = await messaging.send(bob.user, "alice", f"to alice {i}", None)
        await _all_land(
            # Each renames themselves (their row, and both streams)...
            accounts.rename(alice, f"Alice {i}"),
            accounts.rename(bob, f"Bob {i}"),
            # ... while each reads the other's latest, and one receives it (the member
            # row, and one or both streams)...
            messaging.mark_read(bob, "alice", to_bob.id),
            messaging.mark_read(alice, "bob", to_alice.id),
            messaging.mark_delivered(alice.user, "bob", to_alice.id),
            # ... and each sends again (the message's foreign keys, the conversation,
            # and both streams).
            messaging.send(alice.user, "bob", f"again to bob {i}", None),
            messaging.send(bob.user, "alice", f"again to alice {i}", None),
        )
    names = await db_peek.rows("SELECT username, display_name FROM users ORDER BY username")
    assert names == [("alice", f"Alice {ROUNDS - 1}"), ("bob", f"Bob {ROUNDS - 1}")]
    # Every event is on its stream at a position of its own, with no gap: nothing that
    # reserved a position was rolled back.
    for user in ("alice", "bob"):
        rows = await db_peek.rows(
            "SELECT e.pos FROM events e JOIN users u ON u.id = e.user_id "
            "WHERE u.username = :u ORDER BY e.pos",
            u=user,
        )
        positions = [pos for (pos,) in rows]
        assert positions == list(range(1, len(positions) + 1))
        [(stream_pos,)] = await db_peek.rows(
            "SELECT stream_pos FROM users WHERE username = :u", u=user
        )
        assert stream_pos == len(positions)
