"""Web Push: push_subscriptions, and user_settings.message_notifications

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A browser's push subscription belongs to the session that made it (ON DELETE CASCADE
from sessions), so signing out, a revoked or expired session and a deleted account
take it away with them. ``message_notifications`` says what a push of a new message
lets the browser show: "off", "name_only" (the default) or "name_and_text".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ringfence.storage.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "message_notifications",
                sa.String(length=16),
                server_default="name_only",
                nullable=False,
            )
        )
    op.create_table(
        "push_subscriptions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("session_id", _ID, nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_push_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_push_subscriptions_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscriptions")),
        sa.UniqueConstraint("endpoint_hash", name=op.f("uq_push_subscriptions_endpoint_hash")),
    )
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_subscriptions_user_id"), ["user_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_push_subscriptions_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("push_subscriptions")
    # In place, not through a batch copy of user_settings (see 0006).
    op.execute("ALTER TABLE user_settings DROP COLUMN message_notifications")
