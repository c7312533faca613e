"""messages a block withholds: seen by their sender only

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A message from someone the recipient has blocked is stored, shown to its sender like
any other, and never to the recipient (so a block cannot be probed by messaging).
Its sender's view of the conversation keeps their latest such message apart from the
conversation's shared last message, which only delivered messages move.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ringfence.storage.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("withheld", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("conversation_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withheld_message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("withheld_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversation_members", schema=None) as batch_op:
        batch_op.drop_column("withheld_at")
        batch_op.drop_column("withheld_message_id")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("withheld")
