"""Repositories: intention-revealing queries over one unit of work.

Every SQL statement in Ringfence lives in this module. Services receive a
:class:`Store` from :class:`ringfence.storage.database.Database` and never build
queries themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ringfence.storage.models import (
    Block,
    Conversation,
    ConversationMember,
    Event,
    Follow,
    Message,
    Report,
    Session,
    User,
    UserSettings,
)

__all__ = [
    "Block",
    "Conversation",
    "ConversationMember",
    "Event",
    "Follow",
    "IntegrityError",
    "Message",
    "Report",
    "Session",
    "Store",
    "User",
    "UserSettings",
]


class Users:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

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
        )
        self._s.add(user)
        await self._s.flush()
        return user

    async def by_id(self, user_id: int) -> User | None:
        return await self._s.get(User, user_id)

    async def by_ids(self, user_ids: Sequence[int]) -> dict[int, User]:
        if not user_ids:
            return {}
        rows = await self._s.scalars(select(User).where(User.id.in_(set(user_ids))))
        return {user.id: user for user in rows}

    async def by_username(self, username: str) -> User | None:
        return await self._s.scalar(select(User).where(User.username == username))

    async def set_verified(self, user_id: int, verified: bool) -> None:
        await self._s.execute(update(User).where(User.id == user_id).values(verified=verified))

    async def set_suspended(self, user_id: int, suspended: bool) -> None:
        await self._s.execute(update(User).where(User.id == user_id).values(suspended=suspended))

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._s.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )

    async def next_stream_pos(self, user_id: int) -> int:
        """Reserve the next stream position; the row lock orders concurrent writers."""
        pos = await self._s.scalar(
            update(User)
            .where(User.id == user_id)
            .values(stream_pos=User.stream_pos + 1)
            .returning(User.stream_pos)
        )
        if pos is None:
            raise LookupError(f"user {user_id} does not exist")
        return int(pos)

    async def stream_pos(self, user_id: int) -> int:
        pos = await self._s.scalar(select(User.stream_pos).where(User.id == user_id))
        return int(pos or 0)


class Sessions:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, *, user_id: int, token_hash: str, now: datetime) -> Session:
        row = Session(user_id=user_id, token_hash=token_hash, created_at=now, last_seen_at=now)
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

    async def is_active(self, session_id: int) -> bool:
        """The session exists (not logged out or revoked) and its user is not suspended."""
        row = await self._s.scalar(
            select(Session.id)
            .join(User, User.id == Session.user_id)
            .where(Session.id == session_id, User.suspended.is_(False))
        )
        return row is not None

    async def revoke(self, session_id: int) -> None:
        await self._s.execute(delete(Session).where(Session.id == session_id))

    async def revoke_all(self, user_id: int) -> None:
        await self._s.execute(delete(Session).where(Session.user_id == user_id))

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
        rows = await self._s.scalars(
            select(User)
            .join(Follow, Follow.follower_id == User.id)
            .where(Follow.followee_id == user_id)
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

    async def blocked_either_way(self, a: int, b: int) -> bool:
        row = await self._s.scalar(
            select(Block.blocker_id)
            .where(
                or_(
                    and_(Block.blocker_id == a, Block.blocked_id == b),
                    and_(Block.blocker_id == b, Block.blocked_id == a),
                )
            )
            .limit(1)
        )
        return row is not None

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

    async def create(self, user_id: int, now: datetime) -> UserSettings:
        row = UserSettings(
            user_id=user_id,
            calls_enabled=True,
            call_audience='["following"]',
            direct_connections="nobody",
            silence_unknown_callers=False,
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


class Conversations:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

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

    async def touch(self, conversation_id: int, message_id: int, now: datetime) -> None:
        await self._s.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(last_message_id=message_id, last_activity_at=now)
        )

    async def for_user(
        self, user_id: int, *, limit: int
    ) -> list[tuple[Conversation, str, Message | None]]:
        """Visible conversations of a user, most recent first, with their last message."""
        rows = await self._s.execute(
            select(Conversation, ConversationMember.state, Message)
            .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
            .outerjoin(Message, Message.id == Conversation.last_message_id)
            .where(ConversationMember.user_id == user_id, ConversationMember.state != "declined")
            .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
        return [(row[0], row[1], row[2]) for row in rows]


class Messages:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def append(
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
    ) -> Message:
        """Insert a message; raises IntegrityError on a duplicate (sender, txn_id)."""
        msg = Message(
            conversation_id=conversation_id,
            sender_id=sender_id,
            recipient_id=recipient_id,
            kind=kind,
            text=text,
            call=call,
            txn_id=txn_id,
            created_at=now,
        )
        async with self._s.begin_nested():
            self._s.add(msg)
            await self._s.flush()
        return msg

    async def by_id(self, message_id: int) -> Message | None:
        return await self._s.get(Message, message_id)

    async def by_txn(self, sender_id: int, txn_id: str) -> Message | None:
        return await self._s.scalar(
            select(Message).where(Message.sender_id == sender_id, Message.txn_id == txn_id)
        )

    async def page(self, conversation_id: int, *, before: int | None, limit: int) -> list[Message]:
        """Up to ``limit`` messages older than ``before``, oldest first."""
        query = select(Message).where(Message.conversation_id == conversation_id)
        if before is not None:
            query = query.where(Message.id < before)
        rows = await self._s.scalars(query.order_by(Message.id.desc()).limit(limit))
        return list(reversed(list(rows)))

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
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def append(
        self, *, user_id: int, pos: int, type: str, payload: str, now: datetime
    ) -> None:
        self._s.add(Event(user_id=user_id, pos=pos, type=type, payload=payload, created_at=now))
        await self._s.flush()

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


class Store:
    """The repositories of one unit of work, sharing its session and transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.users = Users(session)
        self.sessions = Sessions(session)
        self.social = Social(session)
        self.settings = SettingsRepo(session)
        self.conversations = Conversations(session)
        self.messages = Messages(session)
        self.events = Events(session)
        self.reports = Reports(session)
