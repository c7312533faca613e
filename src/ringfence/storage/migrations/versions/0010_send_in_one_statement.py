"""a send in one statement: PostgreSQL stores a reply and its events in one function call

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

A reply in a conversation whose member states it does not change wrote in four round
trips after its read (INSERT the message, touch and reserve, INSERT the events, COMMIT)
and began with a fifth (BEGIN). Each round trip costs the server's event loop more
CPU than the statement costs PostgreSQL (docs/benchmarks.md, run 28). This function
does those writes in one statement, which is a transaction of its own:

- the message, with the id the send's read reserved from its sequence
  (``ON CONFLICT (sender_id, txn_id) DO NOTHING``: a concurrent retry that stored
  it first leaves nothing written and no rows returned);
- the conversation's last message and both streams' next positions, in the same
  order as every other writer (``ringfence_touch_and_reserve``, migration 0009);
- each user's event, whose stored frame is ``head || pos || tail``: the frame the
  server serialised, with the position it could not know until now spliced in.

It returns the reserved positions. The rules stay in the service: it calls this only
for a send it has decided in full. SQLite needs nothing: this migration does nothing
there.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SIGNATURE = (
    "ringfence_send_message(bigint, bigint, bigint, bigint, text, text, text, text, "
    "timestamptz, bigint[], text[], text[], text[], timestamptz)"
)
CREATE = """
CREATE OR REPLACE FUNCTION ringfence_send_message(
    msg bigint, conv bigint, sender bigint, recipient bigint, msg_kind text,
    body text, call_record text, txn text, moment timestamptz,
    ids bigint[], kinds text[], heads text[], tails text[], stamped timestamptz
)
RETURNS TABLE (user_id bigint, pos bigint)
LANGUAGE plpgsql VOLATILE AS $body$
BEGIN
    INSERT INTO messages AS m (
        id, conversation_id, sender_id, recipient_id, kind, text, call, txn_id,
        created_at, withheld
    )
    VALUES (msg, conv, sender, recipient, msg_kind, body, call_record, txn, moment, false)
    ON CONFLICT (sender_id, txn_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN;  -- the sender's txn_id is taken: nothing written
    END IF;
    RETURN QUERY
    WITH reserved AS (
        SELECT r.user_id AS uid, r.pos AS at
        FROM ringfence_touch_and_reserve(conv, msg, moment, ids) AS r
    ), stored AS (
        INSERT INTO events AS e (user_id, pos, type, payload, created_at)
        SELECT reserved.uid, reserved.at, given.kind, given.head || reserved.at || given.tail,
               stamped
        FROM unnest(ids, kinds, heads, tails) AS given (uid, kind, head, tail)
        JOIN reserved ON reserved.uid = given.uid
        RETURNING e.user_id, e.pos
    )
    SELECT stored.user_id, stored.pos FROM stored;
END
$body$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
