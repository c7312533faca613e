"""ordered stream positions: PostgreSQL reserves several users' positions one row at a time

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A send, a read receipt, a rename and an account deletion each reserve the next position
of several users' event streams in one transaction, so they lock those users' rows; to
never deadlock, every one of them must lock them in the same order (by id).

One ``UPDATE ... FROM (SELECT ... ORDER BY id FOR NO KEY UPDATE)`` did not keep that
promise. Its UPDATE works from the statement's starting snapshot while its locks are
taken later, and a row that a concurrent send had key-share locked (its message's
foreign key) and another writer had updated meanwhile led two such statements for the
same two users into a deadlock (reproduced; PostgreSQL 15). This function updates the
rows one statement at a time in id order, each with a fresh snapshot, in one round trip.
A second one is a send's last write: it touches the conversation, then reserves.

SQLite has one writer at a time and needs nothing: this migration does nothing there.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CREATE = """
CREATE OR REPLACE FUNCTION ringfence_next_stream_positions(ids bigint[])
RETURNS TABLE (user_id bigint, pos bigint)
LANGUAGE plpgsql VOLATILE AS $body$
DECLARE
    uid bigint;
BEGIN
    FOREACH uid IN ARRAY coalesce(
        (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(ids) AS x), '{}'
    ) LOOP
        UPDATE users SET stream_pos = users.stream_pos + 1
        WHERE users.id = uid
        RETURNING users.id, users.stream_pos INTO user_id, pos;
        IF FOUND THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$body$
"""
# A send's last write: the conversation's last message and activity, then both
# streams' positions, in one round trip instead of two (the same order as before: the
# conversation row, then the users' rows in id order).
CREATE_SEND = """
CREATE OR REPLACE FUNCTION ringfence_touch_and_reserve(
    conv bigint, msg bigint, moment timestamptz, ids bigint[]
)
RETURNS TABLE (user_id bigint, pos bigint)
LANGUAGE plpgsql VOLATILE AS $body$
BEGIN
    UPDATE conversations SET last_message_id = msg, last_activity_at = moment
    WHERE conversations.id = conv;
    RETURN QUERY SELECT r.user_id, r.pos FROM ringfence_next_stream_positions(ids) AS r;
END
$body$
"""
DROP = (
    "DROP FUNCTION IF EXISTS ringfence_touch_and_reserve(bigint, bigint, timestamptz, bigint[])",
    "DROP FUNCTION IF EXISTS ringfence_next_stream_positions(bigint[])",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CREATE)
    op.execute(CREATE_SEND)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in DROP:
        op.execute(statement)
