"""read state: how far each member has read, and the read-receipt and typing settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

``conversation_members.read_up_to`` gives unread counts and read receipts. Both new
settings default to on, as in Signal, and are reciprocal: with either person's off,
neither sees the other's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("read_up_to", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("read_receipts", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("typing_indicators", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.drop_column("typing_indicators")
        batch_op.drop_column("read_receipts")
    with op.batch_alter_table("conversation_members", schema=None) as batch_op:
        batch_op.drop_column("read_up_to")
