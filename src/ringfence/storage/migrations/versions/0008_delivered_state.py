"""delivered state: how far each member's devices have received the other's messages

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``conversation_members.delivered_up_to`` is the last of the other member's messages
that reached one of this member's devices. It gives "Delivered" under a sender's
message and follows the same reciprocal ``read_receipts`` setting as "Read". Existing
rows start where they have read to: whatever was read was delivered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivered_up_to", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute("UPDATE conversation_members SET delivered_up_to = read_up_to")


def downgrade() -> None:
    with op.batch_alter_table("conversation_members", schema=None) as batch_op:
        batch_op.drop_column("delivered_up_to")
