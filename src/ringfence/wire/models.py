"""The public shapes of users, messages, conversations, sessions and settings.

One definition serves the HTTP responses (and so the OpenAPI schema), the WebSocket
events, the generated JSDoc of the web client (web/apitypes.js) and the tests. Pure:
building them from database rows is the services' job (``services/views.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Audience = Literal["following", "verified", "everyone"]
DirectConnections = Literal["nobody", "following", "everyone"]
MessageNotifications = Literal["off", "name_only", "name_and_text"]


# How a deleted account is shown wherever its old messages are (its username then is
# "deleted_account_" and random hex, which nobody can register: services/accounts.py).
DELETED_ACCOUNT_NAME = "Deleted account"


class UserView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    display_name: str
    verified: bool
    # The account was deleted: its messages stay readable, but nothing reaches it.
    # The event that says so still names it by its old username, which a client
    # knows it by; afterwards it has a reserved "deleted_account_..." one.
    deleted: bool = False

    @classmethod
    def gone(cls, user_id: int, username: str) -> UserView:
        """A deleted account, as everyone else sees it."""
        return cls(
            id=user_id,
            username=username,
            display_name=DELETED_ACCOUNT_NAME,
            verified=False,
            deleted=True,
        )


class CallRecord(BaseModel):
    """A finished call, as its thread and call history show it."""

    call_id: str
    media: Literal["audio", "video"]
    outcome: Literal["completed", "not_connected", "missed", "rejected", "cancelled", "busy"] = (
        Field(
            description=(
                "completed: media connected (a conversation took place); not_connected: "
                "answered, but media never connected; missed, rejected, cancelled, busy: "
                "never answered."
            )
        )
    )
    duration_s: int = Field(
        ge=0,
        description="Whole seconds from when media connected to the end; 0 unless completed.",
    )


class MessageView(BaseModel):
    id: int
    sender: str
    recipient: str
    kind: Literal["text", "call"]
    text: str
    created_at: datetime
    call: CallRecord | None = None
    # Only on the sender's own copy, so its client can match a local echo.
    txn_id: str | None = None


class SessionView(BaseModel):
    """One signed-in device, for the account page. No address is kept or shown."""

    id: int
    created_at: datetime
    last_seen_at: datetime
    device: str
    current: bool


class ConversationView(BaseModel):
    user: UserView
    last_message: MessageView | None
    is_request: bool
    # My side of it: "accepted", a pending "request", or "declined" (hidden from my inbox).
    state: Literal["accepted", "request", "declined"]
    updated_at: datetime
    # The other person's text messages I have not read yet (see POST .../read).
    unread: int = 0
    # How far they have read, and received on one of their devices, my messages, as
    # far as I may know: message ids, 0 where we don't both share read receipts (as
    # the message.read and message.delivered events, which move them later, are not
    # sent then). Never null: a block must look exactly like receipts switched off,
    # and change nothing in the blocker's own list either.
    peer_read_up_to: int = 0
    peer_delivered_up_to: int = 0


class SettingsView(BaseModel):
    calls_enabled: bool
    call_audience: list[Audience]
    direct_connections: DirectConnections
    silence_unknown_callers: bool
    read_receipts: bool
    typing_indicators: bool
    # What a pushed new message shows while no page of mine is in front.
    message_notifications: MessageNotifications = "name_only"
