"""Create the benchmark's users directly in the database, through Ringfence's storage layer.

Registering 5,000 accounts over HTTP would spend minutes in argon2 (~50 ms a hash).
Instead one password is hashed with the server's own :class:`Passwords`, and every
bench user gets that hash, a settings row and a session whose token we keep, so the
load generators can authenticate at once. Relations are created the same way: a DM
pair gets a conversation both sides have accepted (the steady state of a chat), and a
call pair additionally has the callee following the caller, which the default call
settings require.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert

from ringfence.services.accounts import hash_token
from ringfence.services.passwords import Passwords
from ringfence.storage.database import Database
from ringfence.storage.models import (
    Conversation,
    ConversationMember,
    Follow,
    Session,
    User,
    UserSettings,
)

BATCH = 1000


@dataclass(frozen=True)
class Population:
    """Bench users by index: username, user id and a valid session token."""

    usernames: list[str]
    ids: list[int]
    tokens: list[str]


def username(index: int) -> str:
    return f"bench{index:06d}"


async def seed(
    url: str,
    n_users: int,
    *,
    pairs: Iterable[tuple[int, int]] = (),
    call_pairs: Iterable[tuple[int, int]] = (),
    direct: Iterable[int] = (),
) -> Population:
    """Create ``n_users`` users (migrating the database first) and their relations.

    ``pairs`` and ``call_pairs`` are (sender/caller, recipient/callee) user indexes;
    users in ``direct`` allow direct (non-relayed) call connections with everyone."""
    db = Database(url)
    await db.start()
    try:
        password_hash = await Passwords(concurrency=1).hash(secrets.token_urlsafe(16))
        now = datetime.now(UTC)
        direct_set = set(direct)
        names = [username(i) for i in range(n_users)]
        tokens = ["rf_" + secrets.token_urlsafe(32) for _ in range(n_users)]
        ids: list[int] = []
        for start in range(0, n_users, BATCH):
            chunk = range(start, min(n_users, start + BATCH))
            async with db.write() as store:
                s = store.session
                rows = await s.execute(
                    insert(User).returning(User.id, User.username, sort_by_parameter_order=True),
                    [
                        {
                            "username": names[i],
                            "display_name": f"Bench {i}",
                            "password_hash": password_hash,
                            "verified": False,
                            "suspended": False,
                            "stream_pos": 0,
                            "created_at": now,
                        }
                        for i in chunk
                    ],
                )
                chunk_ids = [row[0] for row in rows]
                ids.extend(chunk_ids)
                await s.execute(
                    insert(UserSettings),
                    [
                        {
                            "user_id": uid,
                            "calls_enabled": True,
                            "call_audience": '["following"]',
                            "direct_connections": "everyone" if i in direct_set else "nobody",
                            "silence_unknown_callers": False,
                            "updated_at": now,
                        }
                        for i, uid in zip(chunk, chunk_ids, strict=True)
                    ],
                )
                await s.execute(
                    insert(Session),
                    [
                        {
                            "user_id": uid,
                            "token_hash": hash_token(tokens[i]),
                            "created_at": now,
                            "last_seen_at": now,
                        }
                        for i, uid in zip(chunk, chunk_ids, strict=True)
                    ],
                )
        call_list = list(call_pairs)
        await _relate(db, ids, [*pairs, *call_list], now)
        if call_list:
            async with db.write() as store:
                await store.session.execute(
                    insert(Follow),
                    [
                        {"follower_id": ids[callee], "followee_id": ids[caller], "created_at": now}
                        for caller, callee in call_list
                    ],
                )
        return Population(usernames=names, ids=ids, tokens=tokens)
    finally:
        await db.close()


async def _relate(
    db: Database, ids: Sequence[int], pairs: Sequence[tuple[int, int]], now: datetime
) -> None:
    """An accepted conversation for each pair (both members ``accepted``)."""
    seen: set[tuple[int, int]] = set()
    unique = []
    for a, b in pairs:
        low, high = sorted((ids[a], ids[b]))
        if (low, high) not in seen:
            seen.add((low, high))
            unique.append((low, high))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        async with db.write() as store:
            s = store.session
            rows = await s.execute(
                insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
                [
                    {
                        "user_low_id": low,
                        "user_high_id": high,
                        "created_at": now,
                        "last_activity_at": now,
                    }
                    for low, high in chunk
                ],
            )
            conv_ids = [row[0] for row in rows]
            await s.execute(
                insert(ConversationMember),
                [
                    {"conversation_id": cid, "user_id": uid, "state": "accepted"}
                    for cid, (low, high) in zip(conv_ids, chunk, strict=True)
                    for uid in (low, high)
                ],
            )
