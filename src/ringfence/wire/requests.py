"""The HTTP API's request bodies (and so their part of the OpenAPI schema), and the
text types they are made of.

Pure (no FastAPI): the routes in ``ringfence.api`` parse bodies with these. The text
rules they apply live in :mod:`ringfence.wire.text`, which the services apply too, so
a body accepted here is never refused by a service for its text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ringfence.wire.models import Audience, DirectConnections, MessageNotifications
from ringfence.wire.text import (
    DISPLAY_NAME_PATTERN,
    PLAIN_TEXT_PATTERN,
    VISIBLE_TEXT_PATTERN,
    hidden_character,
    is_plain_text,
    is_visible_line,
    is_visible_text,
    normalise_newlines,
)

TXN_ID_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"
USERNAME_PATTERN = r"^[a-z0-9_]{3,32}$"
# The longest push endpoint URL a subscription may have (services/push/endpoints.py
# checks it again before sending).
ENDPOINT_MAX = 2048


def _storable(value: str) -> str:
    """Refuse what no database can store, so it is a 422 and never a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _newlines(value: object) -> object:
    return normalise_newlines(value) if isinstance(value, str) else value


def _refuse(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message`` (a ValueError's would
    start with "Value error, "): clients show it to people as it is."""
    return PydanticCustomError(kind, message)


def _visible_text(value: str) -> str:
    if not is_visible_text(value):
        raise _refuse(
            "text", "needs a visible character, and no control characters but tab and newline"
        )
    return value


def _plain_text(value: str) -> str:
    if not is_plain_text(value):
        raise _refuse("text", "must not contain control characters but tab and newline")
    return value


def _display_name(value: str) -> str:
    problem = hidden_character(value)
    if problem is not None:
        raise _refuse("display_name", f"{problem}, so it cannot be part of a display name")
    if not is_visible_line(value):
        raise _refuse(
            "display_name", "must be one line with a visible character and no control characters"
        )
    return value


def _documented(pattern: str) -> Any:
    """The rule, for the OpenAPI schema only: the validators enforce it, with errors
    that say what is wrong (a pattern mismatch would only quote the pattern)."""
    return Field(json_schema_extra={"pattern": pattern})


# Every string a person writes for others to read goes through one of these: text
# rules live in ringfence.wire.text. _storable also catches lone surrogates.
Text = Annotated[str, Field(pattern=r"^[^\x00]*$"), AfterValidator(_storable)]
VisibleText = Annotated[
    str,
    BeforeValidator(_newlines),
    _documented(VISIBLE_TEXT_PATTERN),
    AfterValidator(_storable),
    AfterValidator(_visible_text),
]
PlainText = Annotated[
    str,
    BeforeValidator(_newlines),
    _documented(PLAIN_TEXT_PATTERN),
    AfterValidator(_storable),
    AfterValidator(_plain_text),
]
DisplayName = Annotated[
    str,
    _documented(DISPLAY_NAME_PATTERN),
    AfterValidator(_storable),
    AfterValidator(_display_name),
]
Username = Annotated[str, Field(pattern=USERNAME_PATTERN, examples=["alice"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(Strict):
    username: Username = Field(description="3-32 lowercase letters, digits or _.")
    password: Text = Field(min_length=10, max_length=1024)
    display_name: DisplayName | None = Field(
        None,
        max_length=64,
        description=(
            "One line, shown beside the @username. No control characters, and nothing "
            "invisible or that changes the text's direction (U+202E and the like)."
        ),
    )


class LoginRequest(Strict):
    # Any string: a name that cannot exist gets the same 401 as a wrong password.
    username: str = Field(max_length=64)
    password: Text = Field(max_length=1024)


class SendMessageRequest(Strict):
    text: VisibleText = Field(min_length=1, max_length=10_000)
    txn_id: str | None = Field(
        None,
        pattern=TXN_ID_PATTERN,
        description="Client-chosen id; a retried send with the same txn_id never duplicates.",
    )


class RenameRequest(Strict):
    display_name: DisplayName = Field(
        max_length=64,
        description=(
            "One line, shown beside your @username; everyone you talk with sees it "
            "change. The same rules as at sign-up."
        ),
    )


class ChangePasswordRequest(Strict):
    current_password: Text = Field(max_length=1024)
    new_password: Text = Field(min_length=10, max_length=1024)


class MarkDeliveredRequest(Strict):
    up_to: StrictInt = Field(
        ge=1,
        le=2**62,
        description=(
            "A message id: the other person's messages up to it reached this device. "
            "Positions only move forward."
        ),
    )


class MarkReadRequest(Strict):
    up_to: StrictInt = Field(
        ge=1,
        le=2**62,
        description=(
            "A message id: the other person's messages up to it are read, on every "
            "device of yours. Positions only move forward."
        ),
    )


class SettingsPatch(Strict):
    """A partial update: only the fields present change."""

    calls_enabled: StrictBool | None = None
    call_audience: list[Audience] | None = Field(None, max_length=3)
    direct_connections: DirectConnections | None = None
    silence_unknown_callers: StrictBool | None = Field(
        None,
        description=(
            "Calls from people with an accepted conversation but outside call_audience "
            "do not ring; they are recorded as missed instead."
        ),
    )
    read_receipts: StrictBool | None = Field(
        None,
        description=(
            "Tell people when you have read their messages. Reciprocal: with it off, "
            "you don't see when others read yours either."
        ),
    )
    typing_indicators: StrictBool | None = Field(
        None,
        description=("Show people when you are typing to them. Reciprocal, like read_receipts."),
    )
    message_notifications: MessageNotifications | None = Field(
        None,
        description=(
            "What a notification of a new message shows while Ringfence is in the "
            "background or closed: nothing (off), the sender's name (name_only), or the "
            "name and the text (name_and_text)."
        ),
    )

    @field_validator(
        "calls_enabled",
        "call_audience",
        "direct_connections",
        "silence_unknown_callers",
        "read_receipts",
        "typing_indicators",
        "message_notifications",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # None only means "absent"; an explicit null is an error that names its field.
        if value is None:
            raise ValueError("must not be null")
        return value


class DeleteAccountRequest(Strict):
    password: Text = Field(max_length=1024, description="Your password, to confirm.")


class StartCallRequest(Strict):
    to: Text = Field(max_length=64, description="Username of the callee.")
    media: Literal["audio", "video"]


class SubscriptionKeys(Strict):
    p256dh: StrictStr = Field(min_length=1, max_length=128)
    auth: StrictStr = Field(min_length=1, max_length=64)


class SubscribeRequest(Strict):
    """A browser's ``PushSubscription.toJSON()``."""

    endpoint: StrictStr = Field(min_length=1, max_length=ENDPOINT_MAX)
    expirationTime: StrictInt | None = Field(None, ge=0, le=2**62)
    keys: SubscriptionKeys


class ReportRequest(Strict):
    username: Text = Field(max_length=64, description="The user being reported.")
    reason: PlainText = Field("", max_length=1000, description="What happened, for the admins.")
