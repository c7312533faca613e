"""Request bodies and response envelopes of the HTTP API (and so its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from ringfence.services.views import (
    Audience,
    ConversationView,
    DirectConnections,
    MessageView,
    SettingsView,
    UserView,
)

TXN_ID_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(Strict):
    username: str = Field(max_length=64, examples=["alice"])
    password: str = Field(max_length=1024)
    display_name: str | None = Field(None, max_length=200)


class LoginRequest(Strict):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class SendMessageRequest(Strict):
    text: str = Field(min_length=1, max_length=10_000)
    txn_id: str | None = Field(
        None,
        pattern=TXN_ID_PATTERN,
        description="Client-chosen id; a retried send with the same txn_id never duplicates.",
    )


class SettingsPatch(Strict):
    """A partial update: only the fields present change."""

    calls_enabled: StrictBool | None = None
    call_audience: list[Audience] | None = Field(None, max_length=3)
    direct_connections: DirectConnections | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"{key} must not be null")
        return data


class SessionResponse(BaseModel):
    user: UserView
    token: str


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


class ErrorResponse(BaseModel):
    error: str
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 422, 429)
}
