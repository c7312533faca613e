"""The real-time socket's own frames (outside calls): parsing what clients send, and
the shape of the server's ``ready``, ``pong``, ``message.ack`` and ``error`` events.

Frames are JSON objects with a string ``type``. Anything else is answered with an
error event, never with a crash or a silent drop.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ringfence.wire.calls import OMITTED_WHEN_NONE
from ringfence.wire.models import MessageView, UserView
from ringfence.wire.problems import describe_errors
from ringfence.wire.requests import TXN_ID_PATTERN, VisibleText

_F = TypeVar("_F", bound=BaseModel)


class FrameError(ValueError):
    """A frame the socket cannot act on. ``status`` and ``fields``: what the HTTP
    route doing the same would answer (``message.send``), else None."""

    def __init__(
        self, code: str, detail: str, *, status: int | None = None, fields: list[str] | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.fields = fields


class AuthFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^auth$")
    token: str = Field(max_length=256)
    since: int | None = Field(None, ge=0)
    # The device_id a previous "ready" gave this client: reusing it keeps the device's
    # calls alive across a reconnect within the grace period.
    device_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{8,64}$")


class DeliveredFrame(BaseModel):
    """A client's delivery receipt: ``user``'s messages up to ``up_to`` reached this
    device. The same as ``POST /api/v1/conversations/{user}/delivered``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: str = Field(pattern=r"^message\.delivered$")
    user: str = Field(max_length=64)
    up_to: int = Field(ge=1, le=2**62)


def parse_delivered(data: dict[str, Any]) -> DeliveredFrame:
    return _validate(DeliveredFrame, data)


class MessageSendFrame(BaseModel):
    """A DM sent over the open socket: the same as ``POST
    /api/v1/conversations/{to}/messages`` with this text and txn_id, answered by a
    ``message.ack`` or an ``error`` that carries the txn_id."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=r"^message\.send$")
    # Any string, as in the HTTP route's path: a name that cannot exist is a 404 there.
    to: str
    text: VisibleText = Field(min_length=1, max_length=10_000)
    # Required here: it is how the client matches the answer to its frame.
    txn_id: str = Field(pattern=TXN_ID_PATTERN)


_TXN_ID = re.compile(TXN_ID_PATTERN)


def frame_txn_id(data: dict[str, Any]) -> str | None:
    """The frame's txn_id if it is a valid one, to echo in an answer (else None)."""
    txn_id = data.get("txn_id")
    if isinstance(txn_id, str) and _TXN_ID.fullmatch(txn_id):
        return txn_id
    return None


def parse_message_send(data: dict[str, Any]) -> MessageSendFrame:
    """Raises :class:`FrameError` with the HTTP route's 422 code, words and fields."""
    try:
        return MessageSendFrame.model_validate(data)
    except ValidationError as exc:
        detail, fields = describe_errors(exc.errors())
        raise FrameError("invalid_request", detail, status=422, fields=fields) from exc


def origin_allowed(origin: str | None, host: str | None, public_urls: list[str]) -> bool:
    """May a WebSocket handshake with this Origin proceed?

    Browsers always send Origin, so checking it defeats cross-site WebSocket hijacking: a
    page elsewhere cannot open a socket to this server in a victim's browser. With
    public URLs configured, the Origin must be one of them; otherwise it must be this
    very host (same origin). Non-browser clients send no Origin and are not affected;
    they authenticate with a token like everyone else.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    if public_urls:
        return origin in {url.lower() for url in public_urls}
    if host is None:
        return False
    return origin in (f"http://{host.lower()}", f"https://{host.lower()}")


def parse_frame(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FrameError("malformed", "frame is not valid JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError("malformed", 'frame must be a JSON object with a string "type"')
    return data


def parse_auth(data: dict[str, Any]) -> AuthFrame:
    if data.get("type") != "auth":
        raise FrameError("auth_required", 'the first frame must be {"type":"auth","token":...}')
    return _validate(AuthFrame, data)


def _validate(model: type[_F], data: dict[str, Any]) -> _F:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "frame"
        raise FrameError("malformed", f"{field}: {first['msg']}") from exc


class ErrorEvent(BaseModel):
    """A frame was refused: `error` is a code, `detail` says why in words, and
    `call_id` names the call a refused call frame was about. A refused `message.send`
    carries its `txn_id` and what the HTTP route would have answered: `status`, with
    `retry_after` (seconds) for 429 and 503, and `fields` for 422."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["error"] = "error"
    error: str
    detail: str
    call_id: str | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    txn_id: str | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    status: int | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    retry_after: int | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    fields: list[str] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)


class MessageAckEvent(BaseModel):
    """The answer to `message.send`: the message, stored and committed, with the
    frame's `txn_id` (the original message when that txn_id was sent before)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["message.ack"] = "message.ack"
    txn_id: str
    message: MessageView


class ReadyEvent(BaseModel):
    """The answer to `auth`: who the socket belongs to, its device id, and the stream
    position it starts at. `resync` (only when true): drop everything held and reload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["ready"] = "ready"
    user: UserView
    device_id: str
    pos: int
    resync: Literal[True] | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)


class PongEvent(BaseModel):
    """The answer to `ping`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["pong"] = "pong"


def error_event(
    code: str,
    detail: str,
    *,
    call_id: str | None = None,
    txn_id: str | None = None,
    status: int | None = None,
    retry_after: int | None = None,
    fields: list[str] | None = None,
) -> str:
    return _encode(
        ErrorEvent(
            error=code,
            detail=detail,
            call_id=call_id,
            txn_id=txn_id,
            status=status,
            retry_after=retry_after,
            fields=fields,
        )
    )


def message_ack(txn_id: str, message: MessageView) -> str:
    """The message exactly as the HTTP route and ``message.new`` give it (nulls kept)."""
    return MessageAckEvent(txn_id=txn_id, message=message).model_dump_json()


def ready_event(user: UserView, device_id: str, pos: int, *, resync: bool) -> str:
    """The first event of a socket (see ``api/events.py`` for ``resync``)."""
    return _encode(ReadyEvent(user=user, device_id=device_id, pos=pos, resync=resync or None))


def _encode(event: BaseModel) -> str:
    """As the client reads it: a field that is None is left out."""
    return event.model_dump_json(exclude_none=True)


PONG = _encode(PongEvent())
