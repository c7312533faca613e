"""Adding a text message through a Store, as the storage tests do many times."""

from __future__ import annotations

from datetime import datetime

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
