"""The send path's statements run directly on the write connection
(ringfence.storage.direct; aiosqlite on SQLite, asyncpg on PostgreSQL), on the backend
under test: they read and write exactly what the same statements run through
SQLAlchemy do, inside the writer's transaction, errors arrive as SQLAlchemy's without
row values, and statement listeners still hear every one. The driver internals they
lean on are checked first, so a driver upgrade that moves them fails loudly here."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, column, event, func, insert, select, table, text, update
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    PGDialect_asyncpg,
)
from sqlalchemy.exc import IntegrityError

from ringfence.services.views import user_view
from ringfence.storage.asyncpg_driver import AsyncpgDirect
from ringfence.storage.database import Database, DatabaseBusy
from ringfence.storage.direct import Direct, Prepared
from ringfence.storage.models import Conversation, Event, Id, User
from ringfence.storage.repositories import NEVER, LiveSession, Store, StoredMessage
from ringfence.storage.sqlite_driver import SqliteDirect
from ringfence.wire.models import UserView
from tests.unit.storage.helpers import add_message, add_users

NOW = datetime(2026, 12, 7, 10, 11, 12, 345678, tzinfo=UTC)


def test_the_asyncpg_adapter_internals_it_uses_are_still_there() -> None:
    init = "".join(
        inspect.getsource(cls.__init__)
        for cls in AsyncAdapt_asyncpg_connection.__mro__
        if "__init__" in vars(cls) and cls.__module__.startswith("sqlalchemy.")
    )
    for name in ("_execute_mutex", "_transaction"):
        assert name in init, (
            f"SQLAlchemy's asyncpg adapter no longer sets {name}: "
            "ringfence.storage.asyncpg_driver relies on it"
        )
    for name in ("_start_transaction", "_prepare", "_handle_exception"):
        assert callable(getattr(AsyncAdapt_asyncpg_connection, name, None)), (
            f"SQLAlchemy's asyncpg adapter has no {name}: ringfence.storage.asyncpg_driver calls it"
        )
    assert hasattr(PGDialect_asyncpg, "_invalidate_schema_cache_asof")


def test_an_expanding_parameter_is_refused_rather_than_run_wrongly() -> None:
    t = table("users", column("id"))
    statement = select(t.c.id).where(t.c.id.in_(bindparam("ids", expanding=True, type_=Id)))
    with pytest.raises(ValueError, match="expanding"):
        Prepared(statement, PGDialect_asyncpg())


async def test_every_write_runs_the_send_path_directly(db: Database) -> None:
    async with db.write() as store:
        direct = store.messages._direct
        assert isinstance(direct, Direct)
        expected = AsyncpgDirect if db.engine.dialect.name == "postgresql" else SqliteDirect
        assert isinstance(direct, expected)
        assert store.users._direct is direct
        assert store.events._direct is direct


async def test_a_send_context_reads_whether_the_senders_session_is_live(db: Database) -> None:
    # A socket's send reads its session in the same SELECT (services/sockets.py).
    alice, _bob = await add_users(db, "alice", "bob", now=NOW)
    async with db.write() as store:
        session_id = (await store.sessions.add(user_id=alice, token_hash="h" * 64, now=NOW)).id
    before, after = NOW - timedelta(seconds=1), NOW + timedelta(seconds=1)
    cases = {
        LiveSession(session_id, NEVER, NEVER): True,  # no lifetime (admin tools): any age
        LiveSession(session_id, before, before): True,
        LiveSession(session_id, after, before): False,  # unused for too long
        LiveSession(session_id, before, after): False,  # too old
        LiveSession(session_id + 1, NEVER, NEVER): False,  # no such session
        None: False,  # none asked about
    }
    async with db.write() as store:
        direct = await Direct.of(store.session)
        for live, expected in cases.items():
            for each in (Store(store.session), Store(store.session, direct)):
                ctx = await each.conversations.send_context(alice, username="bob", session=live)
                assert ctx is not None
                assert ctx.session_live is expected, (live, each)
            if live is not None:
                assert await store.sessions.is_active(live) is expected


async def test_a_one_statement_read_begins_no_transaction(db: Database) -> None:
    # Database.read_one: the statement is its own unit of work (one round trip on
    # PostgreSQL, one call on aiosqlite's thread), with nothing to roll back after.
    (alice,) = await add_users(db, "alice", now=NOW)
    async with db.write() as store:
        session_id = (await store.sessions.add(user_id=alice, token_hash="h" * 64, now=NOW)).id
    async with db.read_one() as store:
        assert await store.sessions.is_active(LiveSession(session_id, NEVER, NEVER))
        assert not await store.sessions.is_active(LiveSession(session_id, NOW, NEVER))
        direct = store.sessions._direct
        assert direct is not None
        adapted: Any = direct._adapted
        if db.engine.dialect.name == "postgresql":
            assert adapted._transaction is None
            assert not adapted._connection.is_in_transaction()
        else:
            assert not adapted._connection._conn.in_transaction


async def test_a_user_is_shown_the_same_from_one_statement_as_from_the_orm(
    db: Database,
) -> None:
    # A ring reads its caller this way (services/calls/signaling.py): the screen must
    # show what user_view shows anywhere else, a deleted account and old names too.
    alice, bob, carol = await add_users(db, "alice", "bob", "carol", now=NOW)
    async with db.write() as store:
        await store.session.execute(
            text("UPDATE users SET display_name = :name, verified = true WHERE id = :id"),
            {"name": "Bob\u200b", "id": bob},
        )
        await store.session.execute(
            text("UPDATE users SET deleted_at = :at WHERE id = :id"), {"at": NOW, "id": carol}
        )
    views = {}
    for user_id in (alice, bob, carol):
        async with db.read() as store:
            user = await store.users.by_id(user_id)
            assert user is not None
            expected = user_view(user)
        async with db.read_one() as store:
            shown = await store.users.shown(user_id)
        assert shown is not None
        views[user_id] = user_view(shown)
        assert views[user_id] == expected
    assert (views[bob].display_name, views[bob].verified) == ("Bob", True)
    assert views[carol] == UserView.gone(carol, "carol")
    async with db.read_one() as store:
        assert await store.users.shown(carol + 1) is None


async def test_a_direct_statement_first_in_a_write_belongs_to_its_transaction(
    db: Database,
) -> None:
    # SQLAlchemy's asyncpg adapter begins its transaction at the first execution; a
    # direct statement that comes first must begin it too, not run in autocommit.
    (alice,) = await add_users(db, "alice", now=NOW)

    async def fail_after_the_first_statement() -> None:
        async with db.write() as store:
            assert await store.users.next_stream_positions([alice]) == {alice: 1}
            raise RuntimeError("the writer fails after its first, direct, statement")

    with pytest.raises(RuntimeError):
        await fail_after_the_first_statement()
    async with db.write() as store:
        assert await store.users.stream_pos(alice) == 0
        assert await store.users.next_stream_positions([alice]) == {alice: 1}
    async with db.read() as store:
        assert await store.users.stream_pos(alice) == 1


async def test_a_send_context_reads_the_same_either_way(db: Database) -> None:
    alice, bob = await add_users(db, "alice", "bob", now=NOW)
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)
        await add_message(store, conv_id, alice, bob, text="hi", txn_id="t1", now=NOW)
    async with db.write() as store:
        direct = await Direct.of(store.session)
        through = Store(store.session)
        for kwargs in ({"username": "bob"}, {"user_id": bob}, {"username": "nobody"}):
            for txn_id in ("t1", "t2", None):
                expected = await through.conversations.send_context(alice, txn_id=txn_id, **kwargs)
                got = await Store(store.session, direct).conversations.send_context(
                    alice, txn_id=txn_id, **kwargs
                )
                if got is not None and expected is not None and not db.is_sqlite:
                    # Each read reserves the next message id from the sequence.
                    assert got.new_message_id == expected.new_message_id + 1  # type: ignore[operator]
                    got = dataclasses.replace(got, new_message_id=expected.new_message_id)
                assert got == expected
        got = await Store(store.session, direct).conversations.send_context(
            alice, username="bob", txn_id="t1"
        )
        assert got is not None
        assert got.earlier is not None
        assert got.earlier.created_at == NOW
        assert got.earlier.created_at.tzinfo is UTC
        assert got.recipient.suspended is False


async def test_what_it_writes_is_stored_exactly_as_sqlalchemy_stores_it(db: Database) -> None:
    alice, bob = await add_users(db, "alice", "bob", now=NOW)
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)
        direct = Store(store.session, await Direct.of(store.session))
        through = Store(store.session)
        ids = []
        for i, repo in enumerate((direct, through)):
            msg = await add_message(
                repo, conv_id, alice, bob, text=f"héllo {i}", txn_id=f"x{i}", now=NOW
            )
            assert msg is not None
            ids.append(msg.id)
            positions = await repo.conversations.touch_and_reserve(
                conv_id, msg.id, NOW, [bob, alice, bob]
            )
            await repo.events.append_many(
                [(u, p, "message.new", f'{{"n":{i}}}') for u, p in positions.items()], NOW
            )
        # A repeated txn_id inserts nothing, either way.
        for repo in (direct, through):
            again = await add_message(repo, conv_id, alice, bob, text="again", txn_id="x0", now=NOW)
            assert again is None
        stored = (
            await store.session.execute(
                text("SELECT id, created_at, withheld, text FROM messages ORDER BY id")
            )
        ).all()
        assert [row[0] for row in stored] == ids
        assert stored[0][1:3] == stored[1][1:3]  # the same datetime text, the same flag
        assert [row[3] for row in stored] == ["héllo 0", "héllo 1"]
        events = (
            await store.session.execute(
                text("SELECT user_id, pos, created_at FROM events ORDER BY user_id, pos")
            )
        ).all()
        assert [(u, p) for u, p, _ in events] == [(alice, 1), (alice, 2), (bob, 1), (bob, 2)]
        assert len({at for _, _, at in events}) == 1
        last = await store.session.execute(
            text("SELECT last_message_id, last_activity_at FROM conversations")
        )
        assert last.one() == (ids[1], stored[0][1])


async def test_stream_positions_of_one_or_several_users_and_a_missing_one(db: Database) -> None:
    alice, bob, carol = await add_users(db, "alice", "bob", "carol", now=NOW)
    async with db.write() as store:
        users = Store(store.session, await Direct.of(store.session)).users
        assert await users.next_stream_positions([alice]) == {alice: 1}
        assert await users.next_stream_positions([carol, alice, bob, alice]) == {
            alice: 2,
            bob: 1,
            carol: 1,
        }
        with pytest.raises(LookupError):
            await users.next_stream_positions([alice, 999_999])


async def test_a_sends_touch_and_reservation_and_a_missing_user(db: Database) -> None:
    alice, bob = await add_users(db, "alice", "bob", now=NOW)
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)
        msg = await add_message(store, conv_id, alice, bob, text="hi", txn_id="t", now=NOW)
        assert msg is not None
        for repo in (Store(store.session, await Direct.of(store.session)), Store(store.session)):
            got = await repo.conversations.touch_and_reserve(conv_id, msg.id, NOW, [bob, alice])
            assert got == ({alice: 1, bob: 1} if repo.users._direct else {alice: 2, bob: 2})
            with pytest.raises(LookupError):
                await repo.conversations.touch_and_reserve(conv_id, msg.id, NOW, [999_999])
        last = await store.session.execute(
            text("SELECT last_message_id FROM conversations WHERE id = :id"), {"id": conv_id}
        )
        assert last.scalar_one() == msg.id


async def test_several_statements_in_one_go_run_in_order_and_stop_at_a_failure(
    db: Database,
) -> None:
    (alice,) = await add_users(db, "alice", now=NOW)
    secret = "a private message text"
    events, users = Event.__table__, User.__table__
    insert_event = insert(events).values(
        {name: bindparam(name) for name in ("user_id", "pos", "type", "payload", "created_at")}
    )
    event_row = {"user_id": alice, "pos": 1, "type": "message.new", "payload": secret,
                 "created_at": NOW}  # fmt: skip
    count = select(func.count()).select_from(events)
    bump = (
        update(users).where(users.c.id == bindparam("id")).values(stream_pos=users.c.stream_pos + 1)
    )
    pos = select(users.c.stream_pos).where(users.c.id == bindparam("id"))
    async with db.write() as store:
        direct = await Direct.of(store.session)
        assert direct is not None
        got = await direct.rows_each(
            [(insert_event, event_row), (count, {}), (bump, {"id": alice}), (pos, {"id": alice})]
        )
        assert [list(rows) for rows in got] == [[], [(1,)], [], [(1,)]]
    positions_after: list[int] = []

    async def fail_midway() -> None:
        async with db.write() as store:
            direct = await Direct.of(store.session)
            assert direct is not None
            try:
                await direct.rows_each([(insert_event, event_row), (bump, {"id": alice})])
            finally:
                if db.engine.dialect.name != "postgresql":  # PostgreSQL's has aborted
                    positions_after.append(
                        (await store.session.execute(pos, {"id": alice})).one()[0]
                    )

    with pytest.raises(IntegrityError) as caught:
        await fail_midway()
    if db.engine.dialect.name != "postgresql":
        assert positions_after == [1]  # the statement after the failed one never ran
    assert "unique" in str(caught.value.orig).lower()
    assert secret not in str(caught.value)


async def test_errors_are_sqlalchemys_and_carry_no_row_values(db: Database) -> None:
    (alice,) = await add_users(db, "alice", now=NOW)
    secret = "a private message text"

    async def twice() -> None:
        async with db.write() as store:
            events = Store(store.session, await Direct.of(store.session)).events
            await events.append_many([(alice, 1, "message.new", secret)] * 2, NOW)

    with pytest.raises(IntegrityError) as caught:
        await twice()
    assert "unique" in str(caught.value.orig).lower()
    assert secret not in str(caught.value)
    # The failed writer's work was undone; the database is usable.
    async with db.read() as store:
        assert await store.events.range(alice, after=0, upto=None, limit=10) == []


async def test_statement_listeners_hear_every_direct_statement(db: Database) -> None:
    (alice,) = await add_users(db, "alice", now=NOW)
    heard: list[tuple[str, Any, bool]] = []

    def listen(*args: Any) -> None:
        heard.append((args[2], args[3], args[5]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        async with db.write() as store:
            users = Store(store.session, await Direct.of(store.session)).users
            await users.next_stream_positions([alice])
            heard_one = len(heard)
            conversations = Store(store.session, await Direct.of(store.session)).conversations
            conv_id, _ = await conversations.open(alice, alice, NOW)
            heard.clear()
            await conversations.touch_and_reserve(conv_id, 1, NOW, [alice])
            heard_two = list(heard)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)
    assert heard_one >= 1
    assert all(many is False for _, _, many in heard_two)
    if db.engine.dialect.name == "postgresql":
        # One statement: the function migration 0009 creates touches, then reserves.
        [(sql, args, _)] = heard_two
        assert "ringfence_touch_and_reserve(" in sql
        assert f"[{alice}]" in str(args)
    else:
        # Several statements in one call to the driver are each heard, in order.
        assert len(heard_two) == 2
        assert heard_two[0][0].startswith("UPDATE conversations")
        assert heard_two[1][0].startswith("UPDATE users")
        assert f"[{alice}]" in str(heard_two[1][1])


async def test_a_connection_lost_under_a_direct_statement_is_unavailable_not_a_bug(
    db: Database,
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a database server that drops the connection (the PostgreSQL run)")
    (alice,) = await add_users(db, "alice", now=NOW)

    async def send_on_a_dropped_connection() -> None:
        async with db.write() as store:
            pid = await store.session.scalar(text("SELECT pg_backend_pid()"))
            async with db.read() as other:
                await other.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await store.users.next_stream_positions([alice])

    with pytest.raises(DatabaseBusy) as caught:
        await send_on_a_dropped_connection()
    assert caught.value.code == "database_unavailable"  # a 503, as through the session
    async with db.write() as store:  # the pool replaced the dead connection
        assert await store.users.next_stream_positions([alice]) == {alice: 1}


async def _reserved_message(db: Database, alice: int, bob: int, text_: str) -> StoredMessage:
    """A message for ``alice`` to send ``bob``, with the id a send's read reserves."""
    async with db.write() as store:
        conv_id, _ = await store.conversations.open(alice, bob, NOW)
    async with db.write() as store:
        ctx = await store.conversations.send_context(alice, user_id=bob)
    assert ctx is not None
    assert ctx.new_message_id is not None
    return StoredMessage(ctx.new_message_id, conv_id, alice, bob, "text", text_, None, "t", NOW)


async def test_a_message_stored_whole_writes_what_the_steps_would(db: Database) -> None:
    """PostgreSQL stores a reply and its events in one statement (migration 0010):
    the message with its reserved id, the conversation's last message, the next
    stream positions, and each event's frame with its position spliced in."""
    if db.is_sqlite:
        async with db.write() as store:
            with pytest.raises(NotImplementedError):
                await store.messages.add_with_events(None, [], NOW)  # type: ignore[arg-type]
        return
    alice, bob = await add_users(db, "alice", "bob", now=NOW)
    msg = await _reserved_message(db, alice, bob, "hi ☃")
    async with db.write() as store:
        await store.users.next_stream_positions([bob])  # bob's stream is one ahead
    frames = {alice: ('{"type":"message.new","pos":', ',"a":1}'), bob: ('{"x":', "}")}
    async with db.write() as store:
        stored = await store.messages.add_with_events(
            msg, [(uid, "message.new", *frames[uid]) for uid in (bob, alice)], NOW
        )
        # It ran alone: nothing is left for the block to commit.
        assert (
            store.session.sync_session.connection().connection.dbapi_connection._transaction is None
        )
    assert stored == {alice: 1, bob: 2}
    async with db.read() as store:
        events = await store.events.range(alice, after=0, upto=None, limit=10)
        assert [(e.pos, e.type, e.payload) for e in events] == [
            (1, "message.new", '{"type":"message.new","pos":1,"a":1}')
        ]
        [theirs] = await store.events.range(bob, after=0, upto=None, limit=10)
        assert (theirs.pos, theirs.payload) == (2, '{"x":2}')
        kept = await store.messages.by_id(msg.id)
        assert kept is not None
        assert (kept.text, kept.txn_id, kept.withheld) == ("hi ☃", "t", False)
        conv = await store.session.get(Conversation, msg.conversation_id)
        assert conv is not None
        assert conv.last_message_id == msg.id
    # The same txn_id again (a retry that lost the race): nothing written, None.
    again = dataclasses.replace(msg, id=msg.id + 1000)
    async with db.write() as store:
        assert await store.messages.add_with_events(again, [(alice, "t", "", "")], NOW) is None
    async with db.read() as store:
        assert await store.users.stream_pos(alice) == 1
        assert await store.messages.by_id(again.id) is None


async def test_a_message_stored_whole_is_all_or_nothing(db: Database) -> None:
    """A failure in the middle of the one statement (here: an event already at the
    position it reserves) leaves nothing of it: no message, no touch, no position."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's one-statement send (SQLite writes in its transaction)")
    alice, bob = await add_users(db, "alice", "bob", now=NOW)
    msg = await _reserved_message(db, alice, bob, "hi")
    async with db.write() as store:
        await store.events.append_many([(bob, 1, "x", "{}")], NOW)  # where bob's next goes
    with pytest.raises(IntegrityError):
        async with db.write() as store:
            await store.messages.add_with_events(
                msg, [(uid, "message.new", "{", "}") for uid in (alice, bob)], NOW
            )
    async with db.read() as store:
        assert await store.messages.by_id(msg.id) is None
        assert [await store.users.stream_pos(u) for u in (alice, bob)] == [0, 0]
        assert await store.events.range(alice, after=0, upto=None, limit=10) == []
        conv = await store.session.get(Conversation, msg.conversation_id)
        assert conv is not None
        assert conv.last_message_id is None
