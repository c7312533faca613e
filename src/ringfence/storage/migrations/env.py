"""Alembic environment: migrations run on a connection handed over by Database.start()."""

from __future__ import annotations

from alembic import context

from ringfence.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Ringfence applies its migrations itself at start-up (ringfence serve, "
        "or ringfence admin migrate); run them through it rather than the alembic CLI."
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite can only ALTER through table copies
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
