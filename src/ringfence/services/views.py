"""Building the public shapes (``wire/models.py``) from database rows.

Every user, message and setting a client sees goes through one of these, so what
is hidden (a deleted account's name, invisible characters in old display names,
another person's transaction ids) is hidden everywhere alike.
"""

from __future__ import annotations

import json

from ringfence.storage.repositories import Message, ShownUser, StoredMessage, User, UserSettings
from ringfence.wire.models import CallRecord, MessageView, SettingsView, UserView
from ringfence.wire.text import without_hidden


def user_view(user: User | ShownUser) -> UserView:
    if user.deleted_at is not None:
        return UserView.gone(user.id, user.username)
    return UserView(
        id=user.id,
        username=user.username,
        # Names registered before invisible and direction-changing characters were
        # refused lose them here, wherever a user is shown (the API, events, the
        # ringing screen): a name that was nothing else shows as the username.
        display_name=without_hidden(user.display_name) or user.username,
        verified=user.verified,
    )


def message_view(
    msg: Message | StoredMessage, names: dict[int, str], *, viewer_id: int
) -> MessageView:
    return MessageView(
        id=msg.id,
        sender=names[msg.sender_id],
        recipient=names[msg.recipient_id],
        kind=msg.kind,
        text=msg.text,
        created_at=msg.created_at,
        call=CallRecord.model_validate_json(msg.call) if msg.call else None,
        txn_id=msg.txn_id if viewer_id == msg.sender_id else None,
    )


def settings_view(row: UserSettings) -> SettingsView:
    return SettingsView(
        calls_enabled=row.calls_enabled,
        call_audience=json.loads(row.call_audience),
        direct_connections=row.direct_connections,
        silence_unknown_callers=row.silence_unknown_callers,
        read_receipts=row.read_receipts,
        typing_indicators=row.typing_indicators,
        message_notifications=row.message_notifications,
    )


# What a user who never changed a setting has.
DEFAULT_SETTINGS = SettingsView(
    calls_enabled=True,
    call_audience=["following"],
    direct_connections="nobody",
    silence_unknown_callers=False,
    read_receipts=True,
    typing_indicators=True,
    message_notifications="name_only",
)
