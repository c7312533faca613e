"""account deletion: users.deleted_at, and the usernames held after a deletion

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

A deleted account keeps its row, renamed ``deleted_...`` and suspended, so that the
messages it sent stay with the people who received them; ``deleted_at`` says when.
Its old username goes to ``username_holds`` for ``deleted_username_hold_days``, so
that nobody can take it over while the people who knew it might still write to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ringfence.storage.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "username_holds",
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("held_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_username_holds")),
    )
    with op.batch_alter_table("username_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_username_holds_held_at"), ["held_at"], unique=False)


def downgrade() -> None:
    op.drop_table("username_holds")
    # Not through a batch table copy: on SQLite that drops and re-creates "users",
    # which every other table references with ON DELETE CASCADE. Both backends can
    # drop a column in place (SQLite since 3.35).
    op.execute("ALTER TABLE users DROP COLUMN deleted_at")
