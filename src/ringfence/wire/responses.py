"""The HTTP API's response envelopes (and so their part of the OpenAPI schema).

Pure (no FastAPI): the routes in ``ringfence.api`` answer with these, and some of the
web client's JSDoc types (web/apitypes.js) are generated from them. The shapes inside
the envelopes (users, messages, conversations...) are in :mod:`ringfence.wire.models`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ringfence.wire.models import (
    CallRecord,
    ConversationView,
    MessageView,
    SessionView,
    SettingsView,
    UserView,
)


class ErrorResponse(BaseModel):
    error: str
    detail: str


class SessionResponse(BaseModel):
    user: UserView
    token: str


class SessionsResponse(BaseModel):
    sessions: list[SessionView]


class UserResponse(BaseModel):
    user: UserView


class UsersResponse(BaseModel):
    users: list[UserView]


class MeResponse(BaseModel):
    user: UserView
    settings: SettingsView


class SettingsResponse(BaseModel):
    settings: SettingsView


class MessageResponse(BaseModel):
    message: MessageView


class MessagesResponse(BaseModel):
    messages: list[MessageView]


class ConversationResponse(BaseModel):
    conversation: ConversationView


class ConversationsResponse(BaseModel):
    conversations: list[ConversationView]


class IceServerView(BaseModel):
    urls: list[str]
    username: str
    credential: str


class StartCallResponse(BaseModel):
    call_id: str
    ice_servers: list[IceServerView]
    ice_transport_policy: Literal["relay", "all"]
    ring_timeout_s: int


class CallHistoryItem(BaseModel):
    message_id: int
    call: CallRecord
    peer: UserView
    direction: Literal["outgoing", "incoming"]
    created_at: datetime


class CallHistoryResponse(BaseModel):
    calls: list[CallHistoryItem]


class PushConfigResponse(BaseModel):
    vapid_public_key: str = Field(
        description="The applicationServerKey to subscribe with: an uncompressed P-256 "
        "point, base64url without padding."
    )


class SubscribeResponse(BaseModel):
    id: int


class PushSubscriptionView(BaseModel):
    id: int
    created_at: datetime
    # The push service's host ("fcm.googleapis.com"): enough to tell browsers apart,
    # and no capability, unlike the endpoint URL itself.
    push_service: str
    # Made by the session asking.
    current: bool


class SubscriptionsResponse(BaseModel):
    subscriptions: list[PushSubscriptionView]


class RingingCallResponse(BaseModel):
    caller: UserView


class ReportReceipt(BaseModel):
    id: int
    created_at: datetime


class ReportResponse(BaseModel):
    report: ReportReceipt
