"""Rows the storage tests add many times: users, and text messages."""

from __future__ import annotations

from datetime import datetime

from ringfence.storage.database import Database
from ringfence.storage.repositories import Store, StoredMessage


async def add_message(
    store: Store,
    conversation_id: int,
    sender: int,
    recipient: int,
    *,
    text: str,
    txn_id: str | None,
    now: datetime,
) -> StoredMessage | None:
    """The message as stored, or None when ``txn_id`` was already used by ``sender``."""
    return await store.messages.add(
        conversation_id=conversation_id,
        sender_id=sender,
        recipient_id=recipient,
        kind="text",
        text=text,
        call=None,
        txn_id=txn_id,
        now=now,
    )


async def add_users(db: Database, *names: str, now: datetime) -> list[int]:
    """Users named ``names`` (each its own display name), in one write; their ids."""
    async with db.write() as store:
        users = [
            await store.users.add(username=n, display_name=n, password_hash="x", now=now)
            for n in names
        ]
        await store.session.flush()
        return [u.id for u in users]
