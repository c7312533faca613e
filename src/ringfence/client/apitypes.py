"""The server's response shapes, as the Python client reads them.

Generated from ringfence/wire (scripts/lib/render_generated.py). Do not edit:
tests/unit/test_generated.py fails while this file and its source differ. Times are
ISO 8601 strings, as the JSON has them.
"""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = [
    "CallHistoryItem",
    "CallRecord",
    "Conversation",
    "Message",
    "ReportReceipt",
    "Session",
    "SessionInfo",
    "User",
    "UserSettings",
]


class User(TypedDict):
    id: int
    username: str
    display_name: str
    verified: bool
    deleted: bool


class Session(TypedDict):
    user: User
    token: str


class UserSettings(TypedDict):
    calls_enabled: bool
    call_audience: list[Literal["following", "verified", "everyone"]]
    direct_connections: Literal["nobody", "following", "everyone"]
    silence_unknown_callers: bool
    read_receipts: bool
    typing_indicators: bool
    message_notifications: Literal["off", "name_only", "name_and_text"]


class SessionInfo(TypedDict):
    """One signed-in device, for the account page. No address is kept or shown."""

    id: int
    created_at: str
    last_seen_at: str
    device: str
    current: bool


class CallRecord(TypedDict):
    """A finished call, as its thread and call history show it."""

    call_id: str
    media: Literal["audio", "video"]
    outcome: Literal["completed", "not_connected", "missed", "rejected", "cancelled", "busy"]
    duration_s: int


class Message(TypedDict):
    id: int
    sender: str
    recipient: str
    kind: Literal["text", "call"]
    text: str
    created_at: str
    call: CallRecord | None
    txn_id: str | None


class Conversation(TypedDict):
    user: User
    last_message: Message | None
    is_request: bool
    state: Literal["accepted", "request", "declined"]
    updated_at: str
    unread: int
    peer_read_up_to: int
    peer_delivered_up_to: int


class ReportReceipt(TypedDict):
    id: int
    created_at: str


class CallHistoryItem(TypedDict):
    message_id: int
    call: CallRecord
    peer: User
    direction: Literal["outgoing", "incoming"]
    created_at: str
