"""The DM send path: how many SQL statements a send costs (a count, not a timing), and
the races that the few statements must still get right on PostgreSQL (a concurrent
retry with the same txn_id, a concurrent first message the other way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ringfence.config import Settings
from ringfence.services.accounts import AuthContext
from ringfence.services.container import Services
from tests.conftest import PG_URL, Api, DbPeek, in_process

postgresql_only = pytest.mark.skipif(
    not PG_URL, reason="a PostgreSQL race (SQLite writers take turns)"
)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[tuple[Api, Services]]:
    async with in_process(settings) as app:
        yield app


async def login(api: Api, svc: Services, *names: str) -> list[AuthContext]:
    return [await svc.accounts.authenticate(await api.register(name)) for name in names]


class StatementCounter:
    """Counts what the database is sent: every cursor execution, plus each COMMIT that
    is sent (a PostgreSQL unit of work whose statements ran alone sends none)."""

    def __init__(self, svc: Services) -> None:
        self.statements: list[str] = []
        self._engine = svc.db.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._execute)
        event.listen(self._engine, "commit", self._commit)

    def _execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ringfence_next_stream_positions(" in statement:
            # PostgreSQL reserves stream positions with a SELECT of the function that
            # migration 0009 creates: one statement, whose UPDATEs run in the server.
            self.statements.append("UPDATE")
            return
        if "ringfence_send_message(" in statement:
            # A PostgreSQL reply stored whole (migration 0010): the message, the touch,
            # the reservation and both events, in one statement that commits itself.
            self.statements.append("SEND")
            return
        if "ringfence_touch_and_reserve(" in statement:
            # A send's conversation touch and reservation: one statement, two UPDATEs.
            self.statements.append("UPDATE+UPDATE")
            return
        self.statements.append(statement.split(None, 1)[0].upper())

    def _commit(self, conn: Any) -> None:
        adapted = conn.connection.dbapi_connection
        if isinstance(adapted, AsyncAdapt_asyncpg_connection) and adapted._transaction is None:
            return  # asyncpg began no transaction: there is nothing to commit, and none sent
        self.statements.append("COMMIT")

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._execute)
        event.remove(self._engine, "commit", self._commit)


async def count(svc: Services, op: Any) -> tuple[Any, list[str]]:
    # An earlier send's push job reads the recipient's subscriptions in the background;
    # let it finish first, so that only this operation's own statements are counted.
    await svc.push.drained()
    counter = StatementCounter(svc)
    try:
        result = await op
    finally:
        counter.close()
    return result, counter.statements


async def test_a_send_costs_a_handful_of_statements(
    services: tuple[Api, Services], db_peek: DbPeek
) -> None:
    api, svc = services
    alice, bob = await login(api, svc, "alice", "bob")
    send = svc.messaging.send
    first, first_sql = await count(svc, send(alice.user, "bob", "hi", "t-1"))
    again, again_sql = await count(svc, send(alice.user, "bob", "still there?", "t-2"))
    reply, reply_sql = await count(svc, send(bob.user, "alice", "hello", "t-3"))
    steady, steady_sql = await count(svc, send(alice.user, "bob", "good", None))
    retried, retry_sql = await count(svc, send(alice.user, "bob", "hi", "t-1"))

    # One SELECT decides everything; then the message, the conversation's last
    # activity, both stream positions (one UPDATE), both events (one INSERT). The first
    # message also creates the conversation and both member rows (one INSERT each); a
    # reply to a request accepts it (one upsert). A retry is just the SELECT.
    # Before: 24, 17, 18, 16 and 3 statements on PostgreSQL.
    if svc.db.is_sqlite:
        # Its BEGIN IMMEDIATE, and the SAVEPOINT and RELEASE of this send's part of a
        # transaction that writers share (group commit, ringfence.storage.group_commit).
        # The touch and the reservation run in one call to its thread.
        assert len(first_sql) <= 11, first_sql
        assert len(again_sql) <= 9, again_sql
        assert len(reply_sql) <= 10, reply_sql
        assert len(steady_sql) <= 9, steady_sql
        assert len(retry_sql) <= 5, retry_sql
        for statements in (first_sql, again_sql, reply_sql, steady_sql, retry_sql):
            assert statements.count("SELECT") == 1, statements
            assert statements.count("SAVEPOINT") == 1, statements
            assert statements[-1] == "COMMIT"
    else:
        # A send that changes no member state (again, steady): its SELECT and one
        # statement that stores it whole, each a unit of work of its own, so no BEGIN
        # and no COMMIT either: two round trips, where it was six. A retry: the SELECT.
        assert again_sql == steady_sql == ["SELECT", "SEND"], (again_sql, steady_sql)
        assert retry_sql == ["SELECT"], retry_sql
        # The others begin a transaction after their SELECT (BEGIN is not a cursor
        # execution, so not counted here) and write in it: the touch and the
        # reservation in one statement (migration 0009's function).
        assert len(first_sql) <= 7, first_sql
        assert len(reply_sql) <= 6, reply_sql
        for statements in (first_sql, reply_sql):
            assert statements.count("SELECT") == 1, statements
            assert "SAVEPOINT" not in statements, statements
            assert statements[-1] == "COMMIT"

    # And they did everything the rules ask.
    assert retried == first
    assert [again.id, reply.id, steady.id] == [first.id + 1, first.id + 2, first.id + 3]
    assert await db_peek.rows("SELECT count(*) FROM messages") == [(4,)]
    states = await db_peek.rows(
        "SELECT u.username, m.state FROM conversation_members m "
        "JOIN users u ON u.id = m.user_id ORDER BY u.username"
    )
    assert states == [("alice", "accepted"), ("bob", "accepted")]
    events = await db_peek.rows(
        "SELECT u.username, e.pos FROM events e JOIN users u ON u.id = e.user_id "
        "ORDER BY u.username, e.pos"
    )
    assert events == [("alice", p) for p in range(1, 5)] + [("bob", p) for p in range(1, 5)]


async def test_the_first_message_is_a_request_and_the_events_say_so(
    services: tuple[Api, Services], db_peek: DbPeek
) -> None:
    api, svc = services
    alice, _bob = await login(api, svc, "alice", "bob")
    await svc.messaging.send(alice.user, "bob", "hi", None)
    rows = await db_peek.rows(
        "SELECT u.username, e.payload FROM events e JOIN users u ON u.id = e.user_id "
        "ORDER BY u.username"
    )
    assert [(name, '"is_request":true' in payload) for name, payload in rows] == [
        ("alice", False),
        ("bob", True),
    ]
    assert all('"type":"message.new"' in payload and '"pos":1' in payload for _, payload in rows)


async def _wait_until_blocked(peek: DbPeek) -> None:
    """Until some backend waits for a lock (the send behind the other transaction)."""
    for _ in range(500):
        waiting = await peek.rows("SELECT count(*) FROM pg_locks WHERE NOT granted")
        if waiting[0][0] > 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the send never waited for the other transaction")


async def _user_ids(peek: DbPeek) -> dict[str, int]:
    return {name: uid for uid, name in await peek.rows("SELECT id, username FROM users")}


@postgresql_only
async def test_a_concurrent_retry_that_commits_first_is_replayed_without_a_savepoint(
    services: tuple[Api, Services], db_peek: DbPeek
) -> None:
    api, svc = services
    alice, _bob = await login(api, svc, "alice", "bob")
    await svc.messaging.send(alice.user, "bob", "opening", None)
    ids = await _user_ids(db_peek)
    conv = (await db_peek.rows("SELECT id FROM conversations"))[0][0]
    async with db_peek.engine.connect() as other:  # the retry that is one step ahead
        inserted = await _insert_message(other, conv, ids["alice"], ids["bob"], "t-race")
        counter = StatementCounter(svc)
        try:
            send = asyncio.create_task(svc.messaging.send(alice.user, "bob", "racing", "t-race"))
            await _wait_until_blocked(db_peek)
            await other.commit()
            replayed = await send
        finally:
            counter.close()
    assert replayed.id == inserted
    assert replayed.text == "racing"
    assert "SAVEPOINT" not in counter.statements
    assert await db_peek.rows("SELECT count(*) FROM messages") == [(2,)]
    # The replay wrote nothing: no events, no positions.
    assert await db_peek.rows("SELECT count(*) FROM events") == [(2,)]
    assert await db_peek.rows("SELECT max(stream_pos) FROM users") == [(1,)]


@postgresql_only
async def test_a_concurrent_first_message_the_other_way_counts_as_a_reply(
    services: tuple[Api, Services], db_peek: DbPeek
) -> None:
    """bob's first message to alice commits while alice's first message to bob waits
    for the conversation row: alice's then is a reply, and accepts bob's request."""
    api, svc = services
    alice, _bob = await login(api, svc, "alice", "bob")
    ids = await _user_ids(db_peek)
    low, high = sorted((ids["alice"], ids["bob"]))
    now = datetime.now(UTC)
    async with db_peek.engine.connect() as other:  # bob's send, one step ahead
        conv = (
            await other.execute(
                text(
                    "INSERT INTO conversations (user_low_id, user_high_id, created_at, "
                    "last_activity_at) VALUES (:low, :high, :now, :now) RETURNING id"
                ),
                {"low": low, "high": high, "now": now},
            )
        ).scalar_one()
        await other.execute(
            text(
                "INSERT INTO conversation_members (conversation_id, user_id, state) "
                "VALUES (:c, :bob, 'accepted'), (:c, :alice, 'request')"
            ),
            {"c": conv, "bob": ids["bob"], "alice": ids["alice"]},
        )
        await _insert_message(other, conv, ids["bob"], ids["alice"], None)
        send = asyncio.create_task(svc.messaging.send(alice.user, "bob", "hi bob", None))
        await _wait_until_blocked(db_peek)
        await other.commit()
        await send
    states = await db_peek.rows("SELECT user_id, state FROM conversation_members ORDER BY user_id")
    assert dict(states) == {ids["alice"]: "accepted", ids["bob"]: "accepted"}
    [payload] = [
        p
        for (p,) in await db_peek.rows(
            "SELECT payload FROM events WHERE user_id = :u", u=ids["bob"]
        )
    ]
    assert '"is_request":false' in payload
    assert await db_peek.rows("SELECT count(*) FROM conversations") == [(1,)]


async def _insert_message(
    conn: AsyncConnection, conv: int, sender: int, recipient: int, txn_id: str | None
) -> int:
    result = await conn.execute(
        text(
            "INSERT INTO messages (conversation_id, sender_id, recipient_id, kind, text, "
            "call, txn_id, created_at) "
            "VALUES (:c, :s, :r, 'text', 'racing', NULL, :t, :now) RETURNING id"
        ),
        {"c": conv, "s": sender, "r": recipient, "t": txn_id, "now": datetime.now(UTC)},
    )
    return int(result.scalar_one())


async def test_a_recipient_without_push_subscriptions_costs_no_push_work(
    services: tuple[Api, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send's one SELECT says whether the recipient has a push subscription; only
    then is a push queued (whose worker reads the subscriptions again). Before, every
    message queued one, and its worker's read cost about a fifth of a send's CPU."""
    api, svc = services
    alice, bob = await login(api, svc, "alice", "bob")
    queued: list[tuple[int, str, int]] = []

    async def message_new(user_id: int, sender: str, message_id: int, *, request: bool) -> None:
        queued.append((user_id, sender, message_id))

    monkeypatch.setattr(svc.push, "message_new", message_new)

    async def send_and_drain(text: str) -> tuple[Any, list[str]]:
        async def op() -> Any:
            view = await svc.messaging.send(alice.user, "bob", text, None)
            await svc.push.drained()
            return view

        return await count(svc, op())

    _, first_sql = await send_and_drain("hi")
    assert queued == []
    assert first_sql.count("SELECT") == 1, first_sql

    async with svc.db.write() as store:
        await store.push.add(
            user_id=bob.user.id,
            session_id=bob.session_id,
            endpoint="https://push.example/bob",
            endpoint_hash="0" * 64,
            p256dh="k",
            auth="a",
            now=datetime.now(UTC),
        )
    second, _ = await send_and_drain("are you there?")
    assert queued == [(bob.user.id, "alice", second.id)]
