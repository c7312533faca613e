"""sessions: a short description of the device that signed in

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

For the account page's list of sessions ("Firefox on Android"). Only the description
is stored, never the User-Agent header or an address. Sessions from before this
migration show as an unknown device.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("device", sa.String(length=64), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("device")
