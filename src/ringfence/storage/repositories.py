"""Repositories: intention-revealing queries over one unit of work.

Every SQL statement in Ringfence lives in this module. Services receive a
:class:`Store` from :class:`ringfence.storage.database.Database` and never build
queries themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    column,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ringfence.storage.direct import Direct
from ringfence.storage.models import (
    Block,
    Conversation,
    ConversationMember,
    Event,
    Follow,
    Message,
    PushSubscription,
    Report,
    Session,
    User,
    UsernameHold,
    UserSettings,
)
from ringfence.storage.models import Id as _Id
from ringfence.storage.models import UTCDateTime as _UTCDateTime

__all__ = [
    "NEVER",
    "Block",
    "Conversation",
    "ConversationMember",
    "Event",
    "Follow",
    "IntegrityError",
    "LiveSession",
    "Message",
    "Report",
    "SendContext",
    "Session",
    "ShownUser",
    "Store",
    "User",
    "UserSettings",
    "UsernameHold",
]


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _rows(
    session: AsyncSession,
    direct: Direct | None,
    statement: Any,
    params: Mapping[str, Any],
    *,
    alone: bool = False,
) -> Sequence[Any]:
    """Run one of the hot statements (the send path's, a call frame's session check):
    directly on the unit of work's connection (:class:`~ringfence.storage.direct.Direct`:
    a write's, or a one-statement read's), through the session otherwise (other reads,
    and drivers without a Direct). ``alone``: see :meth:`Direct.rows`."""
    if direct is not None:
        return await direct.rows(statement, params, alone=alone)
    result = await session.execute(statement, params)
    if isinstance(result, CursorResult) and not result.returns_rows:
        return ()  # an UPDATE without RETURNING
    return result.all()


def _insert(session: AsyncSession, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ``ON CONFLICT`` clauses (PostgreSQL and SQLite share the
    syntax, but SQLAlchemy builds it per dialect)."""
    return postgresql.insert(model) if _is_postgresql(session) else sqlite.insert(model)


# --- The DM send path's statements, built once --------------------------------------
# A send runs these on every message, so they are Core statements over the tables,
# built at import with bind parameters: building and ORM-processing them per call costs
# more CPU than executing them. Keyed by "is PostgreSQL" where the dialects differ.


@dataclass(frozen=True, slots=True)
class Recipient:
    """The recipient of a send: what the rules look at, without an ORM ``User`` (its
    instrumented construction costs more than reading the row)."""

    id: int
    username: str
    suspended: bool
    deleted_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as written or read on the send path: the columns of ``Message``
    (``withheld`` aside), without the ORM object."""

    id: int
    conversation_id: int
    sender_id: int
    recipient_id: int
    kind: str
    text: str
    call: str | None
    txn_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShownUser:
    """What showing a user takes (``services.views.user_view``), without the ORM
    object: read in one statement where it is on a hot path (a ring)."""

    id: int
    username: str
    display_name: str
    verified: bool
    deleted_at: datetime | None


_users: Table = User.__table__  # type: ignore[assignment]
_conversations: Table = Conversation.__table__  # type: ignore[assignment]
_members: Table = ConversationMember.__table__  # type: ignore[assignment]
_messages: Table = Message.__table__  # type: ignore[assignment]
_events: Table = Event.__table__  # type: ignore[assignment]
_RECIPIENT_COLUMNS = tuple(f.name for f in fields(Recipient))
_MESSAGE_COLUMNS = tuple(f.name for f in fields(StoredMessage))
_MESSAGE_INSERTED = (*_MESSAGE_COLUMNS[1:], "withheld")  # all but the id
_EVENT_COLUMNS = ("user_id", "pos", "type", "payload", "created_at")


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session as a statement checks it: it exists (not logged out or revoked), was
    last used after ``seen_after`` and created after ``created_after``. Bounds that do
    not apply are :data:`NEVER` rather than None, so that one compiled statement
    serves every case."""

    id: int
    seen_after: datetime
    created_after: datetime


NEVER = datetime.min.replace(tzinfo=UTC)
_NO_SESSION = LiveSession(0, NEVER, NEVER)  # ids start at 1: matches nothing


def _session_is_live(session_id: Any, seen_after: Any, created_after: Any) -> Any:
    """The conditions on ``sessions`` for :class:`LiveSession` (values or binds)."""
    return and_(
        Session.id == session_id,
        Session.last_seen_at > seen_after,
        Session.created_at > created_after,
    )


def _live_session_binds() -> Any:
    return _session_is_live(
        bindparam("session_id", type_=_Id),
        bindparam("seen_after", type_=_UTCDateTime()),
        bindparam("created_after", type_=_UTCDateTime()),
    )


# Sessions.is_active: compiled once, whichever way it runs.
_SESSION_IS_ACTIVE = (
    select(Session.id)
    .join(User, User.id == Session.user_id)
    .where(_live_session_binds(), User.suspended.is_(False))
)


# Users.shown: compiled once, whichever way it runs.
_SHOWN_USER = select(*(_users.c[f.name] for f in fields(ShownUser))).where(
    _users.c.id == bindparam("user_id", type_=_Id)
)


def _blocked_either_way(a: Any, b: Any) -> Any:
    """EXISTS: ``a`` blocked ``b`` or ``b`` blocked ``a`` (user ids or id columns)."""
    return exists().where(
        or_(
            and_(Block.blocker_id == a, Block.blocked_id == b),
            and_(Block.blocker_id == b, Block.blocked_id == a),
        )
    )


_NEXT_MESSAGE_ID = func.nextval(literal_column("'messages_id_seq'::regclass"), type_=_Id)


def _build_send_context(by_username: bool, pg: bool) -> Any:
    """The one SELECT of a send; see :meth:`Conversations.send_context`."""
    sender = bindparam("sender_id", type_=_Id)
    mine = _members.alias("mine")
    theirs = _members.alias("theirs")
    earlier = _messages.alias("earlier")
    recipient_id = _users.c.id
    # The pair is stored ordered (low, high); the recipient may be either side.
    low = case((recipient_id < sender, recipient_id), else_=sender)
    high = case((recipient_id < sender, sender), else_=recipient_id)
    sender_row = _users.alias("sender")
    # Blocks by direction: the recipient's block withholds the message (the sender
    # must not be able to tell); the sender's own block is theirs to be told about.
    sender_blocked = exists().where(Block.blocker_id == sender, Block.blocked_id == recipient_id)
    recipient_blocked = exists().where(Block.blocker_id == recipient_id, Block.blocked_id == sender)
    follows = exists().where(Follow.follower_id == recipient_id, Follow.followee_id == sender)
    # Whether a push could reach the recipient at all: most people have no subscription,
    # and asking here spares each of their messages a read of its own.
    recipient_push = exists().where(PushSubscription.user_id == recipient_id)
    # The sender as stored now, not as an authentication cache remembers them.
    sender_suspended = (
        select(sender_row.c.suspended).where(sender_row.c.id == sender).scalar_subquery()
    )
    # The session the send comes through, where the caller names one (a socket, which
    # authenticated once): read here rather than in a transaction of its own.
    session_live = exists().where(_live_session_binds())
    return (
        select(
            *(_users.c[name] for name in _RECIPIENT_COLUMNS),
            _conversations.c.id,
            mine.c.state,
            theirs.c.state,
            sender_blocked,
            recipient_blocked,
            follows,
            sender_suspended,
            session_live,
            recipient_push,
            # PostgreSQL: the id a message this send stores will have, reserved now so
            # that its events can be written with it (Messages.add_with_events). A send
            # that stores none leaves a gap, as a rolled-back insert always has.
            _NEXT_MESSAGE_ID if pg else null(),
            *(earlier.c[name] for name in _MESSAGE_COLUMNS),
        )
        .select_from(_users)
        .outerjoin(
            _conversations,
            and_(_conversations.c.user_low_id == low, _conversations.c.user_high_id == high),
        )
        .outerjoin(
            mine, and_(mine.c.conversation_id == _conversations.c.id, mine.c.user_id == sender)
        )
        .outerjoin(
            theirs,
            and_(
                theirs.c.conversation_id == _conversations.c.id,
                theirs.c.user_id == recipient_id,
            ),
        )
        # "txn_id = NULL" matches nothing: a send without a txn_id has no earlier copy.
        .outerjoin(
            earlier,
            and_(
                earlier.c.sender_id == sender,
                earlier.c.txn_id == bindparam("txn_id", type_=_messages.c.txn_id.type),
            ),
        )
        .where(
            _users.c.username == bindparam("username", type_=_users.c.username.type)
            if by_username
            else _users.c.id == bindparam("user_id", type_=_Id)
        )
    )


_SEND_CONTEXT_BY_USERNAME = {pg: _build_send_context(True, pg) for pg in (True, False)}
_SEND_CONTEXT_BY_ID = {pg: _build_send_context(False, pg) for pg in (True, False)}
_INSERT_MESSAGE = {
    (pg, with_id): (postgresql.insert if pg else sqlite.insert)(_messages)
    .values(
        {
            name: bindparam(name, type_=_messages.c[name].type)
            for name in (("id",) if with_id else ()) + _MESSAGE_INSERTED
        }
    )
    .on_conflict_do_nothing(index_elements=["sender_id", "txn_id"])
    .returning(_messages.c.id)
    for pg in (True, False)
    for with_id in (True, False)
}
_TOUCH_CONVERSATION = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("conversation_id", type_=_Id))
    .values(
        last_message_id=bindparam("message_id", type_=_Id),
        last_activity_at=bindparam("at", type_=_UTCDateTime()),
    )
)


def _build_next_positions(pg: bool) -> Any:
    """Bump several users' stream positions, returning ``(id, stream_pos)`` rows."""
    if pg:
        # One row at a time in id order, each UPDATE with a fresh snapshot, in one round
        # trip: the function migration 0009 creates says why one statement can't. The
        # ids as one array: one statement for any number of them, prepared once.
        reserved = func.ringfence_next_stream_positions(
            bindparam("ids", type_=postgresql.ARRAY(_Id))
        ).table_valued(column("user_id", _Id), column("pos", _Id))
        return select(reserved.c.user_id, reserved.c.pos)
    # SQLite: one writer at a time, nothing to order. The ids as one JSON array: one
    # statement for any number of them, compiled once (an expanding IN is compiled per
    # execution).
    listed: Any = select(literal_column("value")).select_from(
        func.json_each(bindparam("ids", type_=String()))
    )
    return (
        update(_users)
        .where(_users.c.id.in_(listed))
        .values(stream_pos=_users.c.stream_pos + 1)
        .returning(_users.c.id, _users.c.stream_pos)
    )


_NEXT_POSITIONS = {pg: _build_next_positions(pg) for pg in (True, False)}
_SEND_RESERVED = func.ringfence_touch_and_reserve(
    bindparam("conversation_id", type_=_Id),
    bindparam("message_id", type_=_Id),
    bindparam("at", type_=_UTCDateTime()),
    bindparam("ids", type_=postgresql.ARRAY(_Id)),
).table_valued(column("user_id", _Id), column("pos", _Id))
_TOUCH_AND_RESERVE_PG = select(_SEND_RESERVED.c.user_id, _SEND_RESERVED.c.pos)
_TEXTS = postgresql.ARRAY(String())
_SENT = func.ringfence_send_message(
    *(bindparam(name, type_=_messages.c[name].type) for name in _MESSAGE_COLUMNS),
    bindparam("ids", type_=postgresql.ARRAY(_Id)),
    bindparam("types", type_=_TEXTS),
    bindparam("heads", type_=_TEXTS),
    bindparam("tails", type_=_TEXTS),
    bindparam("stamped", type_=_UTCDateTime()),
).table_valued(column("user_id", _Id), column("pos", _Id))
_SEND_MESSAGE_PG = select(_SENT.c.user_id, _SENT.c.pos)


def _next_positions(session: AsyncSession, ids: list[int]) -> tuple[Any, dict[str, Any]]:
    """The statement and parameters that reserve the next position of each of ``ids``'
    streams (sorted, no repeats; see :meth:`Users.next_stream_positions`)."""
    pg = _is_postgresql(session)
    return _NEXT_POSITIONS[pg], {"ids": ids if pg else json.dumps(ids)}


def _positions(rows: Sequence[Any], ids: list[int]) -> dict[int, int]:
    """The reserved positions by user id, from :func:`_next_positions`' rows."""
    positions = {int(user_id): int(pos) for user_id, pos in rows}
    if len(positions) != len(ids):
        raise LookupError(f"users {sorted(set(ids) - set(positions))} do not exist")
    return positions


_INSERT_EVENTS = insert(_events).values(
    {name: bindparam(name, type_=_events.c[name].type) for name in _EVENT_COLUMNS}
)


class Users:
    def __init__(self, session: AsyncSession, direct: Direct | None = None) -> None:
        self._s = session
        self._direct = direct

    async def add(
        self, *, username: str, display_name: str, password_hash: str, now: datetime
    ) -> User:
        """Insert a user; raises IntegrityError when the username is taken."""
        user = User(
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            verified=False,
            suspended=False,
            stream_pos=0,
            created_at=now,
            deleted_at=None,
        )
        self._s.add(user)
        await self._s.flush()
        return user

    async def by_id(self, user_id: int) -> User | None:
        return await self._s.get(User, user_id)

    async def shown(self, user_id: int) -> ShownUser | None:
        """The user as :func:`~ringfence.services.views.user_view` shows them, in one
        statement (:meth:`Database.read_one` runs it as one call to the driver)."""
        rows = await _rows(self._s, self._direct, _SHOWN_USER, {"user_id": user_id})
        return ShownUser(*rows[0]) if rows else None

    async def by_ids(self, user_ids: Sequence[int]) -> dict[int, User]:
        if not user_ids:
            return {}
        rows = await self._s.scalars(select(User).where(User.id.in_(set(user_ids))))
        return {user.id: user for user in rows}

    async def active_among(self, user_ids: Sequence[int]) -> set[int]:
        """Which of ``user_ids`` exist and are not suspended: ids only, no ORM objects
        (the socket check asks this of every connected user, every minute)."""
        if not user_ids:
            return set()
        rows = await self._s.execute(
            select(_users.c.id).where(_users.c.id.in_(set(user_ids)), _users.c.suspended.is_(False))
        )
        return {int(user_id) for (user_id,) in rows}

    async def by_username(self, username: str) -> User | None:
        return await self._s.scalar(select(User).where(User.username == username))

    async def set_verified(self, user_id: int, verified: bool) -> None:
        await self._s.execute(update(User).where(User.id == user_id).values(verified=verified))

    async def set_suspended(self, user_id: int, suspended: bool) -> None:
        # A deleted account stays suspended: lifting it would let it be messaged again.
        await self._s.execute(
            update(User)
            .where(User.id == user_id, User.deleted_at.is_(None))
            .values(suspended=suspended)
        )

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._s.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )

    async def set_display_name(self, user_id: int, display_name: str) -> None:
        await self._s.execute(
            update(User).where(User.id == user_id).values(display_name=display_name)
        )

    # --- deleted accounts -------------------------------------------------------------

    async def mark_deleted(
        self, user_id: int, *, username: str, display_name: str, now: datetime
    ) -> None:
        """Turn the account into what is left of a deleted one: renamed (``username``,
        which must be free), no password (an empty hash verifies nothing), not
        verified, and suspended, so that every rule that refuses a suspended account
        refuses it too."""
        await self._s.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                username=username,
                display_name=display_name,
                password_hash="",
                verified=False,
                suspended=True,
                deleted_at=now,
            )
        )

    async def forget(self, user_id: int) -> None:
        """Delete what a deleted account leaves behind but the messages it sent (they
        stay with their recipients) and the messages it received (their senders'
        own): its sessions, settings, follows and blocks both ways, event stream, its
        side of each conversation (state, read position), and its messages that were
        never delivered (withheld: only it ever saw them). A conversation nobody is
        left in goes too."""
        s = self._s
        await s.execute(delete(Session).where(Session.user_id == user_id))
        await s.execute(delete(UserSettings).where(UserSettings.user_id == user_id))
        await s.execute(
            delete(Follow).where(or_(Follow.follower_id == user_id, Follow.followee_id == user_id))
        )
        await s.execute(
            delete(Block).where(or_(Block.blocker_id == user_id, Block.blocked_id == user_id))
        )
        await s.execute(delete(Event).where(Event.user_id == user_id))
        await s.execute(
            delete(Message).where(Message.sender_id == user_id, Message.withheld.is_(True))
        )
        conversation_ids = list(
            await s.scalars(
                select(ConversationMember.conversation_id).where(
                    ConversationMember.user_id == user_id
                )
            )
        )
        await s.execute(delete(ConversationMember).where(ConversationMember.user_id == user_id))
        if conversation_ids:
            has_members = exists().where(ConversationMember.conversation_id == Conversation.id)
            empty = list(
                await s.scalars(
                    select(Conversation.id).where(
                        Conversation.id.in_(conversation_ids), ~has_members
                    )
                )
            )
            if empty:
                await s.execute(delete(Message).where(Message.conversation_id.in_(empty)))
                await s.execute(delete(Conversation).where(Conversation.id.in_(empty)))

    async def hold_username(self, username: str, now: datetime) -> None:
        """Keep ``username`` from being registered again, from ``now`` on."""
        insert = _insert(self._s, UsernameHold).values(username=username, held_at=now)
        await self._s.execute(
            insert.on_conflict_do_update(index_elements=["username"], set_={"held_at": now})
        )

    async def username_held_since(self, username: str) -> datetime | None:
        return await self._s.scalar(
            select(UsernameHold.held_at).where(UsernameHold.username == username)
        )

    async def release_holds(self, *, held_before: datetime) -> None:
        """Forget the usernames whose hold began before ``held_before`` (is over)."""
        await self._s.execute(delete(UsernameHold).where(UsernameHold.held_at < held_before))

    async def next_stream_pos(self, user_id: int) -> int:
        """Reserve the next stream position; the row lock orders concurrent writers."""
        return (await self.next_stream_positions([user_id]))[user_id]

    async def next_stream_positions(self, user_ids: Sequence[int]) -> dict[int, int]:
        """Reserve the next position of several users' streams in one statement. The
        rows are locked in user-id order, so two sends that share a user cannot
        deadlock (see :func:`_build_next_positions`)."""
        ids = sorted(set(user_ids))
        statement, params = _next_positions(self._s, ids)
        return _positions(await _rows(self._s, self._direct, statement, params), ids)

    async def stream_pos(self, user_id: int) -> int:
        pos = await self._s.scalar(select(User.stream_pos).where(User.id == user_id))
        return int(pos or 0)


class Sessions:
    def __init__(self, session: AsyncSession, direct: Direct | None = None) -> None:
        self._s = session
        self._direct = direct

    async def add(
        self, *, user_id: int, token_hash: str, now: datetime, device: str = ""
    ) -> Session:
        row = Session(
            user_id=user_id,
            token_hash=token_hash,
            created_at=now,
            last_seen_at=now,
            device=device,
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def user_for_token(self, token_hash: str) -> tuple[Session, User] | None:
        row = (
            await self._s.execute(
                select(Session, User)
                .join(User, User.id == Session.user_id)
                .where(Session.token_hash == token_hash)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def touch(self, session_id: int, now: datetime) -> None:
        await self._s.execute(
            update(Session).where(Session.id == session_id).values(last_seen_at=now)
        )

    async def is_active(self, session: LiveSession) -> bool:
        """The session is live (see :class:`LiveSession`) and its user is not
        suspended. One statement: :meth:`Database.read_one` runs it as one call to the
        driver."""
        rows = await _rows(
            self._s,
            self._direct,
            _SESSION_IS_ACTIVE,
            {"session_id": session.id, "seen_after": session.seen_after,
             "created_after": session.created_after},
        )  # fmt: skip
        return bool(rows)

    async def touch_many(
        self, session_ids: Sequence[int], now: datetime, *, before: datetime
    ) -> None:
        """Mark sessions as used now (those last marked before ``before``)."""
        if session_ids:
            await self._s.execute(
                update(Session)
                .where(Session.id.in_(session_ids), Session.last_seen_at < before)
                .values(last_seen_at=now)
            )

    async def delete_expired(
        self, *, seen_before: datetime, created_before: datetime, limit: int
    ) -> list[tuple[int, int]]:
        """Delete up to ``limit`` sessions last used before ``seen_before`` or created
        before ``created_before``; returns their (session id, user id)."""
        rows = (
            await self._s.execute(
                select(Session.id, Session.user_id)
                .where((Session.last_seen_at < seen_before) | (Session.created_at < created_before))
                .order_by(Session.id)
                .limit(limit)
            )
        ).all()
        found = [(row[0], row[1]) for row in rows]
        if found:
            await self._s.execute(delete(Session).where(Session.id.in_([sid for sid, _ in found])))
        return found

    async def revoke(self, session_id: int) -> None:
        await self._s.execute(delete(Session).where(Session.id == session_id))

    async def revoke_all(self, user_id: int) -> None:
        await self._s.execute(delete(Session).where(Session.user_id == user_id))

    async def revoke_others(self, user_id: int, keep: int) -> list[int]:
        """End every session of ``user_id`` but ``keep``; returns the ended ids."""
        ended = list(
            await self._s.scalars(
                select(Session.id).where(Session.user_id == user_id, Session.id != keep)
            )
        )
        if ended:
            await self._s.execute(delete(Session).where(Session.id.in_(ended)))
        return [int(session_id) for session_id in ended]

    async def revoke_of(self, user_id: int, session_id: int) -> bool:
        """End this session if it is ``user_id``'s; whether it was."""
        result = await self._s.execute(
            delete(Session).where(Session.id == session_id, Session.user_id == user_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def for_user(self, user_id: int) -> list[Session]:
        rows = await self._s.scalars(
            select(Session).where(Session.user_id == user_id).order_by(Session.id)
        )
        return list(rows)


class Social:
    """Follows and blocks."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def follow(self, follower_id: int, followee_id: int, now: datetime) -> None:
        if not await self.follows(follower_id, followee_id):
            self._s.add(Follow(follower_id=follower_id, followee_id=followee_id, created_at=now))
            await self._s.flush()

    async def unfollow(self, follower_id: int, followee_id: int) -> None:
        await self._s.execute(
            delete(Follow).where(
                Follow.follower_id == follower_id, Follow.followee_id == followee_id
            )
        )

    async def follows(self, follower_id: int, followee_id: int) -> bool:
        row = await self._s.scalar(
            select(Follow.follower_id).where(
                Follow.follower_id == follower_id, Follow.followee_id == followee_id
            )
        )
        return row is not None

    async def following(self, user_id: int) -> list[User]:
        rows = await self._s.scalars(
            select(User)
            .join(Follow, Follow.followee_id == User.id)
            .where(Follow.follower_id == user_id)
            .order_by(User.username)
        )
        return list(rows)

    async def followers(self, user_id: int) -> list[User]:
        """Who follows ``user_id``, but for people ``user_id`` has blocked: a blocked
        person may follow (they must not be able to tell a block from its absence),
        and the one who blocked them does not hear of it."""
        blocked_by_me = exists().where(Block.blocker_id == user_id, Block.blocked_id == User.id)
        rows = await self._s.scalars(
            select(User)
            .join(Follow, Follow.follower_id == User.id)
            .where(Follow.followee_id == user_id, ~blocked_by_me)
            .order_by(User.username)
        )
        return list(rows)

    async def block(self, blocker_id: int, blocked_id: int, now: datetime) -> None:
        if not await self._blocks(blocker_id, blocked_id):
            self._s.add(Block(blocker_id=blocker_id, blocked_id=blocked_id, created_at=now))
            await self._s.flush()

    async def unblock(self, blocker_id: int, blocked_id: int) -> None:
        await self._s.execute(
            delete(Block).where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id)
        )

    async def _blocks(self, blocker_id: int, blocked_id: int) -> bool:
        row = await self._s.scalar(
            select(Block.blocker_id).where(
                Block.blocker_id == blocker_id, Block.blocked_id == blocked_id
            )
        )
        return row is not None

    async def blocks(self, blocker_id: int, blocked_id: int) -> bool:
        """Whether ``blocker_id`` has blocked ``blocked_id`` (this direction only)."""
        return await self._blocks(blocker_id, blocked_id)

    async def blocked_either_way(self, a: int, b: int) -> bool:
        return bool(await self._s.scalar(select(_blocked_either_way(a, b))))

    async def between(self, a: int, b: int) -> tuple[bool, bool, bool]:
        """``(a follows b, b follows a, a block either way)`` in one query: what the
        call rules need to know about a pair."""

        def follows(x: int, y: int) -> Any:
            return exists().where(Follow.follower_id == x, Follow.followee_id == y)

        blocked = _blocked_either_way(a, b)
        row = (await self._s.execute(select(follows(a, b), follows(b, a), blocked))).one()
        return bool(row[0]), bool(row[1]), bool(row[2])

    async def blocked_among(self, user_id: int, others: list[int]) -> set[int]:
        """Those of ``others`` with a block either way with ``user_id``."""
        if not others:
            return set()
        rows = await self._s.execute(
            select(Block.blocker_id, Block.blocked_id).where(
                or_(
                    and_(Block.blocker_id == user_id, Block.blocked_id.in_(others)),
                    and_(Block.blocked_id == user_id, Block.blocker_id.in_(others)),
                )
            )
        )
        return {int(b if a == user_id else a) for a, b in rows}

    async def blocked_by(self, blocker_id: int) -> list[User]:
        rows = await self._s.scalars(
            select(User)
            .join(Block, Block.blocked_id == User.id)
            .where(Block.blocker_id == blocker_id)
            .order_by(User.username)
        )
        return list(rows)


class SettingsRepo:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, user_id: int) -> UserSettings | None:
        return await self._s.get(UserSettings, user_id)

    async def get_many(self, user_ids: list[int]) -> dict[int, UserSettings]:
        """The stored settings of these users, by id (users on defaults are absent)."""
        rows = await self._s.scalars(select(UserSettings).where(UserSettings.user_id.in_(user_ids)))
        return {row.user_id: row for row in rows}

    async def create(self, user_id: int, now: datetime) -> UserSettings:
        row = UserSettings(
            user_id=user_id,
            calls_enabled=True,
            call_audience='["following"]',
            direct_connections="nobody",
            silence_unknown_callers=False,
            read_receipts=True,
            typing_indicators=True,
            message_notifications="name_only",
            updated_at=now,
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def update(self, user_id: int, values: dict[str, object], now: datetime) -> None:
        await self._s.execute(
            update(UserSettings)
            .where(UserSettings.user_id == user_id)
            .values(**values, updated_at=now)
        )


@dataclass(frozen=True, slots=True)
class PeerPosition:
    """The other member of a conversation, as its member row has them."""

    state: str
    read_up_to: int
    delivered_up_to: int


@dataclass(frozen=True, slots=True)
class SendContext:
    """Everything a send decides on, read in one statement (see
    :meth:`Conversations.send_context`)."""

    recipient: Recipient
    conversation_id: int | None  # None: the two never talked
    sender_state: str | None  # the sender's member state, None without a row
    recipient_state: str | None
    sender_blocked_recipient: bool
    recipient_blocked_sender: bool
    recipient_follows_sender: bool
    sender_suspended: bool  # as stored now (None, a deleted sender, counts as suspended)
    session_live: bool  # the session asked about is live (False when none was asked about)
    recipient_has_push: bool  # the recipient has at least one Web Push subscription
    # The id a message this send stores is to have (PostgreSQL: reserved by the read;
    # None on SQLite, whose INSERT picks it). See Messages.add_with_events.
    new_message_id: int | None
    earlier: StoredMessage | None  # the sender's message with this txn_id, if any

    @property
    def blocked(self) -> bool:
        """A block in either direction."""
        return self.sender_blocked_recipient or self.recipient_blocked_sender


class Conversations:
    def __init__(self, session: AsyncSession, direct: Direct | None = None) -> None:
        self._s = session
        self._direct = direct

    @staticmethod
    def _pair(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    async def between(self, a: int, b: int) -> Conversation | None:
        low, high = self._pair(a, b)
        return await self._s.scalar(
            select(Conversation).where(
                Conversation.user_low_id == low, Conversation.user_high_id == high
            )
        )

    async def create(self, a: int, b: int, now: datetime) -> Conversation:
        """Insert the conversation row; raises IntegrityError if another writer won."""
        low, high = self._pair(a, b)
        conv = Conversation(
            user_low_id=low, user_high_id=high, created_at=now, last_activity_at=now
        )
        async with self._s.begin_nested():
            self._s.add(conv)
            await self._s.flush()
        return conv

    async def send_context(
        self,
        sender_id: int,
        *,
        username: str | None = None,
        user_id: int | None = None,
        txn_id: str | None = None,
        session: LiveSession | None = None,
    ) -> SendContext | None:
        """The recipient (by ``username`` or ``user_id``), the pair's conversation, both
        member states, blocks each way, whether the recipient follows the sender,
        whether the sender is suspended, whether ``session`` is live, whether the
        recipient has a push subscription and the sender's earlier message with
        ``txn_id``: one SELECT instead of nine. None when there is no such recipient.
        The objects it returns are detached."""
        live = session or _NO_SESSION
        params: dict[str, Any] = {
            "sender_id": sender_id,
            "txn_id": txn_id,
            "session_id": live.id,
            "seen_after": live.seen_after,
            "created_after": live.created_after,
        }
        pg = _is_postgresql(self._s)
        if username is not None:
            query, params["username"] = _SEND_CONTEXT_BY_USERNAME[pg], username
        else:
            query, params["user_id"] = _SEND_CONTEXT_BY_ID[pg], user_id
        # Alone: the statement that decides a send need not begin its transaction (see
        # Direct.rows); what it reads is what it would read inside one.
        rows = await _rows(self._s, self._direct, query, params, alone=True)
        if not rows:
            return None
        row = rows[0]
        n = len(_RECIPIENT_COLUMNS)
        recipient = Recipient(*row[:n])
        (conv_id, my_state, their_state, i_blocked, they_blocked, follows, suspended, live_now) = (
            row[n : n + 8]
        )
        push, new_message_id = row[n + 8], row[n + 9]
        earlier_values = row[n + 10 :]
        earlier = None
        if earlier_values[0] is not None:
            earlier = StoredMessage(*earlier_values)
        return SendContext(
            recipient=recipient,
            conversation_id=conv_id,
            sender_state=my_state,
            recipient_state=their_state,
            sender_blocked_recipient=bool(i_blocked),
            recipient_blocked_sender=bool(they_blocked),
            recipient_follows_sender=bool(follows),
            sender_suspended=suspended is None or bool(suspended),
            session_live=session is not None and bool(live_now),
            recipient_has_push=bool(push),
            new_message_id=None if new_message_id is None else int(new_message_id),
            earlier=earlier,
        )

    async def open(self, a: int, b: int, now: datetime) -> tuple[int, bool]:
        """The pair's conversation id, inserting the row when there is none, and whether
        this call inserted it (False: a concurrent writer did, just before)."""
        low, high = self._pair(a, b)
        inserted = await self._s.scalar(
            _insert(self._s, Conversation)
            .values(user_low_id=low, user_high_id=high, created_at=now, last_activity_at=now)
            .on_conflict_do_nothing(index_elements=["user_low_id", "user_high_id"])
            .returning(Conversation.id)
        )
        if inserted is not None:
            return int(inserted), True
        existing = await self._s.scalar(
            select(Conversation.id).where(
                Conversation.user_low_id == low, Conversation.user_high_id == high
            )
        )
        if existing is None:  # cannot happen: the conflicting row is committed
            raise LookupError("conversation vanished after a conflicting insert")
        return int(existing), False

    async def member_states(self, conversation_id: int) -> dict[int, str]:
        """Every member's state in a conversation, by user id."""
        rows = await self._s.execute(
            select(ConversationMember.user_id, ConversationMember.state).where(
                ConversationMember.conversation_id == conversation_id
            )
        )
        return {int(user_id): str(state) for user_id, state in rows}

    async def set_member_states(self, conversation_id: int, states: dict[int, str]) -> None:
        """Insert or update members' states in one statement. Rows go in user-id order,
        which is the order PostgreSQL locks them in: two sends cannot deadlock here."""
        if not states:
            return
        insert = _insert(self._s, ConversationMember).values(
            [
                {"conversation_id": conversation_id, "user_id": user_id, "state": state}
                for user_id, state in sorted(states.items())
            ]
        )
        await self._s.execute(
            insert.on_conflict_do_update(
                index_elements=["conversation_id", "user_id"],
                set_={"state": insert.excluded.state},
            )
        )

    async def member_state_between(self, a: int, b: int, user_id: int) -> str | None:
        """``user_id``'s state in the conversation of ``a`` and ``b``, if there is one."""
        low, high = self._pair(a, b)
        return await self._s.scalar(
            select(ConversationMember.state)
            .join(Conversation, Conversation.id == ConversationMember.conversation_id)
            .where(
                Conversation.user_low_id == low,
                Conversation.user_high_id == high,
                ConversationMember.user_id == user_id,
            )
        )

    async def member_state(self, conversation_id: int, user_id: int) -> str | None:
        return await self._s.scalar(
            select(ConversationMember.state).where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.user_id == user_id,
            )
        )

    async def set_member_state(self, conversation_id: int, user_id: int, state: str) -> None:
        existing = await self._s.get(ConversationMember, (conversation_id, user_id))
        if existing is None:
            self._s.add(
                ConversationMember(conversation_id=conversation_id, user_id=user_id, state=state)
            )
            await self._s.flush()
        elif existing.state != state:
            existing.state = state
            await self._s.flush()

    async def memberships(self, user_id: int) -> list[tuple[int, int, str]]:
        """Every conversation ``user_id`` is in, declined ones too, oldest first:
        ``(conversation id, the other member's id, my state)``."""
        rows = await self._s.execute(
            select(
                Conversation.id,
                Conversation.user_low_id,
                Conversation.user_high_id,
                ConversationMember.state,
            )
            .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
            .where(ConversationMember.user_id == user_id)
            .order_by(Conversation.id)
        )
        return [
            (int(conv_id), int(high if low == user_id else low), str(state))
            for conv_id, low, high, state in rows
        ]

    async def partners(self, user_id: int) -> list[int]:
        """Everyone ``user_id`` has a conversation with (whatever its state)."""
        mine = select(ConversationMember.conversation_id).where(
            ConversationMember.user_id == user_id
        )
        rows = await self._s.scalars(
            select(ConversationMember.user_id).where(
                ConversationMember.conversation_id.in_(mine),
                ConversationMember.user_id != user_id,
            )
        )
        return sorted({int(other) for other in rows})

    async def mark_read(self, conversation_id: int, user_id: int, up_to: int) -> int | None:
        """Move ``user_id``'s read position to the last message they can see at or
        before ``up_to`` (never one withheld from them, never a later one), and their
        delivered position with it: what was read was delivered. Returns the new read
        position, or None if it did not move: positions only grow."""
        return await self._advance(conversation_id, user_id, up_to, read=True)

    async def mark_delivered(self, conversation_id: int, user_id: int, up_to: int) -> int | None:
        """Move ``user_id``'s delivered position as :meth:`mark_read` moves the read
        one. Returns the new position, or None if it did not move."""
        return await self._advance(conversation_id, user_id, up_to, read=False)

    async def _advance(
        self, conversation_id: int, user_id: int, up_to: int, *, read: bool
    ) -> int | None:
        last = await self._s.scalar(
            select(func.max(Message.id)).where(
                Message.conversation_id == conversation_id,
                Message.id <= up_to,
                or_(Message.withheld.is_(False), Message.sender_id == user_id),
            )
        )
        if last is None:
            return None
        column = ConversationMember.read_up_to if read else ConversationMember.delivered_up_to
        values: dict[str, Any] = {"read_up_to": last} if read else {"delivered_up_to": last}
        if read:
            values["delivered_up_to"] = case(
                (ConversationMember.delivered_up_to < last, last),
                else_=ConversationMember.delivered_up_to,
            )
        moved = await self._s.execute(
            update(ConversationMember)
            .where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.user_id == user_id,
                column < last,
            )
            .values(**values)
        )
        return int(last) if getattr(moved, "rowcount", 0) else None

    async def peers(self, user_id: int, conversation_ids: list[int]) -> dict[int, PeerPosition]:
        """The other member of each conversation: their side's state, and how far
        they have read and received ``user_id``'s messages, by conversation id."""
        if not conversation_ids:
            return {}
        rows = await self._s.execute(
            select(
                ConversationMember.conversation_id,
                ConversationMember.state,
                ConversationMember.read_up_to,
                ConversationMember.delivered_up_to,
            ).where(
                ConversationMember.conversation_id.in_(conversation_ids),
                ConversationMember.user_id != user_id,
            )
        )
        return {
            int(conv_id): PeerPosition(str(state), int(read), max(int(read), int(delivered)))
            for conv_id, state, read, delivered in rows
        }

    async def unread_counts(self, user_id: int, conversation_ids: list[int]) -> dict[int, int]:
        """Text messages to ``user_id`` past their read position, by conversation
        (conversations without any are absent). Withheld messages never count."""
        if not conversation_ids:
            return {}
        rows = await self._s.execute(
            select(Message.conversation_id, func.count())
            .join(
                ConversationMember,
                and_(
                    ConversationMember.conversation_id == Message.conversation_id,
                    ConversationMember.user_id == user_id,
                ),
            )
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.recipient_id == user_id,
                Message.kind == "text",
                Message.withheld.is_(False),
                Message.id > ConversationMember.read_up_to,
            )
            .group_by(Message.conversation_id)
        )
        return {int(conv_id): int(count) for conv_id, count in rows}

    async def touch_and_reserve(
        self, conversation_id: int, message_id: int, now: datetime, user_ids: Sequence[int]
    ) -> dict[int, int]:
        """Make ``message_id`` the conversation's last message, at ``now``, and reserve
        the next position of ``user_ids``' streams as
        :meth:`Users.next_stream_positions` does (returned by user id). A send does
        both in one go: one statement on PostgreSQL (a function: one round trip), one
        call to the driver on SQLite (:meth:`Direct.rows_each`)."""
        touch = {"conversation_id": conversation_id, "message_id": message_id, "at": now}
        ids = sorted(set(user_ids))
        if _is_postgresql(self._s):  # one statement: the function migration 0009 creates
            rows = await _rows(self._s, self._direct, _TOUCH_AND_RESERVE_PG, {**touch, "ids": ids})
            return _positions(rows, ids)
        statement, params = _next_positions(self._s, ids)
        if self._direct is not None:
            _, rows = await self._direct.rows_each(
                [(_TOUCH_CONVERSATION, touch), (statement, params)]
            )
        else:
            await _rows(self._s, None, _TOUCH_CONVERSATION, touch)
            rows = await _rows(self._s, None, statement, params)
        return _positions(rows, ids)

    async def touch_withheld(
        self, conversation_id: int, user_id: int, message_id: int, now: datetime
    ) -> None:
        """``user_id`` sent a withheld message: it moves the conversation in their view
        only (the shared last message and activity are the other member's too)."""
        await self._s.execute(
            update(ConversationMember)
            .where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.user_id == user_id,
            )
            .values(withheld_message_id=message_id, withheld_at=now)
        )

    async def for_user(
        self, user_id: int, *, limit: int
    ) -> list[tuple[Conversation, str, Message | None]]:
        """Visible conversations of a user, most recent first, with their last message,
        as this user sees them (see :meth:`view_of`)."""
        rows = await self._s.execute(
            _member_view(user_id)
            .where(ConversationMember.state != "declined")
            .order_by(_viewed_activity().desc(), Conversation.id.desc())
            .limit(limit)
        )
        return [_viewed(row) for row in rows]

    async def view_of(
        self, conversation_id: int, user_id: int
    ) -> tuple[Conversation, str, Message | None] | None:
        """One conversation as ``user_id`` sees it: their state, and the last message
        and activity time they see. Those are the conversation's, unless this user
        sent a withheld message since, which only they see."""
        row = (
            await self._s.execute(_member_view(user_id).where(Conversation.id == conversation_id))
        ).first()
        return None if row is None else _viewed(row)


def _withheld_is_newer() -> Any:
    # Message ids grow with time, and unlike timestamps they never tie: a withheld
    # first message and the conversation it creates share one.
    return ConversationMember.withheld_message_id > func.coalesce(Conversation.last_message_id, 0)


def _viewed_activity() -> Any:
    return case(
        (_withheld_is_newer(), ConversationMember.withheld_at),
        else_=Conversation.last_activity_at,
    )


def _member_view(user_id: int) -> Any:
    """Conversations of ``user_id`` with their state, the last message they see, and
    whether that is a withheld one of theirs; see :meth:`Conversations.view_of`."""
    newer = _withheld_is_newer()
    last_id = case(
        (newer, ConversationMember.withheld_message_id), else_=Conversation.last_message_id
    )
    return (
        select(Conversation, ConversationMember.state, Message, case((newer, True), else_=False))
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .outerjoin(Message, Message.id == last_id)
        .where(ConversationMember.user_id == user_id)
    )


def _viewed(row: Any) -> tuple[Conversation, str, Message | None]:
    conv, state, last, withheld_is_newer = row
    if withheld_is_newer and last is not None:
        # This member's own view; detached, so that showing it never writes it back.
        conv = Conversation(
            id=conv.id,
            user_low_id=conv.user_low_id,
            user_high_id=conv.user_high_id,
            created_at=conv.created_at,
            last_message_id=last.id,
            last_activity_at=last.created_at,
        )
    return conv, state, last


class Messages:
    def __init__(self, session: AsyncSession, direct: Direct | None = None) -> None:
        self._s = session
        self._direct = direct

    async def add(
        self,
        *,
        conversation_id: int,
        sender_id: int,
        recipient_id: int,
        kind: str,
        text: str,
        call: str | None,
        txn_id: str | None,
        now: datetime,
        withheld: bool = False,
        message_id: int | None = None,
    ) -> StoredMessage | None:
        """Insert a message, or return None when the sender already used ``txn_id``
        (a concurrent retry committed first). One statement and no SAVEPOINT:
        ``INSERT ... ON CONFLICT (sender_id, txn_id) DO NOTHING RETURNING id``.
        A ``withheld`` message is its sender's only (see :meth:`page`).
        ``message_id``: the id its send reserved (``SendContext.new_message_id``);
        None to have the database pick one.

        What it returns is what was written, not an object of the session.
        """
        values: dict[str, Any] = {
            "conversation_id": conversation_id,
            "sender_id": sender_id,
            "recipient_id": recipient_id,
            "kind": kind,
            "text": text,
            "call": call,
            "txn_id": txn_id,
            "created_at": now,
            "withheld": withheld,
        }
        if message_id is not None:
            values["id"] = message_id
        statement = _INSERT_MESSAGE[_is_postgresql(self._s), message_id is not None]
        rows = await _rows(self._s, self._direct, statement, values)
        if not rows:
            return None
        message_id = rows[0][0]
        return StoredMessage(
            int(message_id), conversation_id, sender_id, recipient_id, kind, text, call, txn_id, now
        )

    async def add_with_events(
        self, msg: StoredMessage, events: Sequence[tuple[int, str, str, str]], now: datetime
    ) -> dict[int, int] | None:
        """Store ``msg`` with the id its send reserved (``SendContext.new_message_id``),
        make it its conversation's last message (at its ``created_at``), reserve the next
        position of each user in ``events`` and append their events, as
        :meth:`add`, :meth:`Conversations.touch_and_reserve` and
        :meth:`Events.append_many` would one after another; the reserved positions by
        user id. None, and nothing written, when the sender already used its
        ``txn_id`` (a concurrent retry committed first).

        ``events``: ``(user_id, type, head, tail)``; the stored payload is
        ``head + str(pos) + tail``. PostgreSQL only: one statement (the function
        migration 0010 creates), run as a unit of work of its own where none is under
        way (committed when this returns; see :meth:`Direct.rows`)."""
        if not _is_postgresql(self._s):
            raise NotImplementedError("add_with_events is PostgreSQL's (SQLite: add)")
        ids, types, heads, tails = (list(column) for column in zip(*events, strict=True))
        if sorted(set(ids)) != sorted(ids):
            raise ValueError("one event per user")
        params: dict[str, Any] = {name: getattr(msg, name) for name in _MESSAGE_COLUMNS}
        params.update(ids=ids, types=types, heads=heads, tails=tails, stamped=now)
        rows = await _rows(self._s, self._direct, _SEND_MESSAGE_PG, params, alone=True)
        if not rows:
            return None
        return _positions(rows, sorted(ids))

    async def by_id(self, message_id: int) -> Message | None:
        return await self._s.get(Message, message_id)

    async def by_txn(self, sender_id: int, txn_id: str) -> Message | None:
        return await self._s.scalar(
            select(Message).where(Message.sender_id == sender_id, Message.txn_id == txn_id)
        )

    async def page(
        self, conversation_id: int, *, viewer_id: int, before: int | None, limit: int
    ) -> list[Message]:
        """Up to ``limit`` messages older than ``before``, oldest first, as ``viewer_id``
        sees them: without the messages withheld from them."""
        query = select(Message).where(
            Message.conversation_id == conversation_id,
            or_(Message.withheld.is_(False), Message.sender_id == viewer_id),
        )
        if before is not None:
            query = query.where(Message.id < before)
        rows = await self._s.scalars(query.order_by(Message.id.desc()).limit(limit))
        return list(reversed(list(rows)))

    async def after(
        self, conversation_id: int, *, viewer_id: int, after: int, limit: int
    ) -> list[Message]:
        """Up to ``limit`` messages newer than ``after``, oldest first, as ``viewer_id``
        sees them (for reading a whole conversation from its start)."""
        rows = await self._s.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.id > after,
                or_(Message.withheld.is_(False), Message.sender_id == viewer_id),
            )
            .order_by(Message.id)
            .limit(limit)
        )
        return list(rows)

    async def calls_of(self, user_id: int, *, before: int | None, limit: int) -> list[Message]:
        """A user's call records, newest first."""
        query = select(Message).where(
            Message.kind == "call",
            or_(Message.sender_id == user_id, Message.recipient_id == user_id),
        )
        if before is not None:
            query = query.where(Message.id < before)
        rows = await self._s.scalars(query.order_by(Message.id.desc()).limit(limit))
        return list(rows)

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Message)) or 0)


class Events:
    def __init__(self, session: AsyncSession, direct: Direct | None = None) -> None:
        self._s = session
        self._direct = direct

    async def append(
        self, *, user_id: int, pos: int, type: str, payload: str, now: datetime
    ) -> None:
        await self.append_many([(user_id, pos, type, payload)], now)

    async def append_many(self, events: Sequence[tuple[int, int, str, str]], now: datetime) -> None:
        """Insert several ``(user_id, pos, type, payload)`` events in one statement."""
        rows = [dict(zip(_EVENT_COLUMNS, (*event, now), strict=True)) for event in events]
        if self._direct is not None:
            await self._direct.run_many(_INSERT_EVENTS, rows)
        else:
            await self._s.execute(_INSERT_EVENTS, rows)

    async def range(self, user_id: int, *, after: int, upto: int | None, limit: int) -> list[Event]:
        """Events with ``after < pos <= upto`` in order, at most ``limit`` of them."""
        query = select(Event).where(Event.user_id == user_id, Event.pos > after)
        if upto is not None:
            query = query.where(Event.pos <= upto)
        rows = await self._s.scalars(query.order_by(Event.pos).limit(limit))
        return list(rows)


class Reports:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self, *, reporter_id: int, reported_id: int, reason: str, now: datetime
    ) -> Report:
        row = Report(
            reporter_id=reporter_id, reported_id=reported_id, reason=reason, created_at=now
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def listing(self, *, include_resolved: bool, limit: int) -> list[Report]:
        """Reports, oldest open ones first (the queue an admin works through)."""
        query = select(Report)
        if not include_resolved:
            query = query.where(Report.resolved_at.is_(None))
        rows = await self._s.scalars(query.order_by(Report.id).limit(limit))
        return list(rows)

    async def resolve(self, report_id: int, now: datetime) -> bool:
        result = await self._s.execute(
            update(Report)
            .where(Report.id == report_id, Report.resolved_at.is_(None))
            .values(resolved_at=now)
        )
        return bool(getattr(result, "rowcount", 0))


class PushSubscriptions:
    """Browsers' Web Push subscriptions (see models.PushSubscription)."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def by_endpoint(self, endpoint_hash: str) -> PushSubscription | None:
        found = await self._s.scalars(
            select(PushSubscription).where(PushSubscription.endpoint_hash == endpoint_hash)
        )
        return found.first()

    async def count_for_user(self, user_id: int) -> int:
        count = await self._s.scalar(
            select(func.count())
            .select_from(PushSubscription)
            .where(PushSubscription.user_id == user_id)
        )
        return int(count or 0)

    async def add(
        self,
        *,
        user_id: int,
        session_id: int,
        endpoint: str,
        endpoint_hash: str,
        p256dh: str,
        auth: str,
        now: datetime,
    ) -> PushSubscription:
        row = PushSubscription(
            user_id=user_id,
            session_id=session_id,
            endpoint=endpoint,
            endpoint_hash=endpoint_hash,
            p256dh=p256dh,
            auth=auth,
            created_at=now,
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def replace(
        self,
        sub_id: int,
        *,
        user_id: int,
        session_id: int,
        p256dh: str,
        auth: str,
        now: datetime,
    ) -> None:
        """The same browser posting its endpoint again: now this session's, with these
        keys (a browser re-subscribing may have new ones)."""
        await self._s.execute(
            update(PushSubscription)
            .where(PushSubscription.id == sub_id)
            .values(
                user_id=user_id, session_id=session_id, p256dh=p256dh, auth=auth, created_at=now
            )
        )

    async def for_user(self, user_id: int) -> list[PushSubscription]:
        rows = await self._s.scalars(
            select(PushSubscription)
            .where(PushSubscription.user_id == user_id)
            .order_by(PushSubscription.id)
        )
        return list(rows)

    async def delete_of(self, user_id: int, sub_id: int) -> bool:
        """Delete this subscription if it is ``user_id``'s; whether it was."""
        result = await self._s.execute(
            delete(PushSubscription).where(
                PushSubscription.id == sub_id, PushSubscription.user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete(self, sub_id: int, endpoint_hash: str) -> None:
        """Delete a subscription the push service said is gone, unless it was
        re-registered with another endpoint since."""
        await self._s.execute(
            delete(PushSubscription).where(
                PushSubscription.id == sub_id, PushSubscription.endpoint_hash == endpoint_hash
            )
        )


class Store:
    """The repositories of one unit of work, sharing its session and transaction."""

    def __init__(self, session: AsyncSession, direct: Direct | None = None) -> None:
        """``direct``: the session's connection, for the hot statements (see
        :class:`~ringfence.storage.direct.Direct`): a write's, or a one-statement
        read's (:meth:`Database.read_one`)."""
        self.session = session
        self.users = Users(session, direct)
        self.sessions = Sessions(session, direct)
        self.social = Social(session)
        self.settings = SettingsRepo(session)
        self.conversations = Conversations(session, direct)
        self.messages = Messages(session, direct)
        self.events = Events(session, direct)
        self.reports = Reports(session)
        self.push = PushSubscriptions(session)
