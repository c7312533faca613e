"""SQLAlchemy models. The schema itself is owned by the Alembic migrations.

Only durable, user-visible state lives here. SDP, ICE candidates and call signaling
never touch these tables (privacy invariant 2); a finished call leaves only a
``kind="call"`` message with its media, outcome and duration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    # Last position handed out on this user's event stream. Bumped with an UPDATE in
    # the same transaction as the event row, so positions are gap-free and commit in
    # order even with several nodes writing.
    stream_pos: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the person deleted their account (services/accounts.py): the row stays,
    # under a "deleted_..." username, only so that the messages they sent stay with
    # their recipients. It is suspended too, so that every rule that refuses a
    # suspended account (messages, calls, sign-in) refuses it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UsernameHold(Base):
    """The username of a deleted account, which nobody may register until
    ``deleted_username_hold_days`` after ``held_at``. Nothing else about the account
    is kept here; the row is deleted once the hold is over."""

    __tablename__ = "username_holds"

    username: Mapped[str] = mapped_column(String(32), primary_key=True)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the bearer token: a database leak does not leak usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "Firefox on Android", from the User-Agent at sign-in (services/devices.py); the
    # header itself and the address it came from are never stored.
    device: Mapped[str] = mapped_column(String(64), default="", server_default="")


class Follow(Base):
    __tablename__ = "follows"

    follower_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    followee_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Block(Base):
    __tablename__ = "blocks"

    blocker_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    blocked_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserSettings(Base):
    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    calls_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # JSON list drawn from "following", "verified", "everyone".
    call_audience: Mapped[str] = mapped_column(Text, default='["following"]')
    direct_connections: Mapped[str] = mapped_column(String(16), default="nobody")
    silence_unknown_callers: Mapped[bool] = mapped_column(Boolean, default=False)
    # Reciprocal, as in Signal: with either off, neither person sees the other's.
    read_receipts: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    typing_indicators: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Web Push of new messages: "off", "name_only" or "name_and_text".
    message_notifications: Mapped[str] = mapped_column(
        String(16), default="name_only", server_default="name_only"
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("user_low_id", "user_high_id", name="uq_conversation_pair"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # The pair is stored ordered so that (a, b) and (b, a) are the same row.
    user_low_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_high_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConversationMember(Base):
    """One participant's view of a conversation: accepted, a pending request, or declined."""

    __tablename__ = "conversation_members"
    __table_args__ = (Index("ix_members_user_activity", "user_id", "state"),)

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))  # "accepted" | "request" | "declined"
    # This member's latest message that the other member will never see (they had
    # blocked this one): it stands in for the conversation's last message in this
    # member's view when it is newer. Only delivered messages move the shared ones.
    withheld_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    withheld_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # This member has read the other member's messages up to this message id (0: none).
    # It only grows, and never past the last message this member could see.
    read_up_to: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The other member's messages reached one of this member's devices up to this id
    # (0: none). It only grows, and is never behind read_up_to.
    delivered_up_to: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("sender_id", "txn_id", name="uq_messages_sender_txn"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "text" | "call"
    text: Mapped[str] = mapped_column(Text, default="")
    # For kind="call": JSON {call_id, media, outcome, duration_s}. Never SDP.
    call: Mapped[str | None] = mapped_column(Text, nullable=True)
    txn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Sent to someone who had blocked the sender: shown to the sender only, never
    # delivered (a block is not revealed by a different answer).
    withheld: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Event(Base):
    """A user's durable event stream, replayed to reconnecting clients after ``since``."""

    __tablename__ = "events"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    pos: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # JSON of the event body, without "pos"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Report(Base):
    """A user's report of another user, for an admin to review."""

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_open", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reported_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PushSubscription(Base):
    """A browser's Web Push subscription, owned by the session that made it: ending
    the session (sign-out, revocation, expiry, account deletion) deletes it.

    The endpoint is a capability (whoever knows it can push to that browser), and the
    keys are the browser's: none of them leaves this table except to the owner."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    endpoint: Mapped[str] = mapped_column(Text)
    # SHA-256 of the endpoint, so that posting it again finds the row (an index on the
    # URL itself would be too long for some backends).
    endpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
