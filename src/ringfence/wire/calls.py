"""Wire codec for call signaling over the WebSocket.

Frames are turned into typed, validated objects as soon as they arrive and
turned back into JSON-ready dicts in exactly one place (:func:`encode`), so the
rest of the server never handles loose dicts. Shapes are checked here; what is
*inside* an SDP or candidate is the sanitizer's job, because that depends on
the ICE policy of the sender, which only the service knows.

Field names are snake_case on the wire except where WebRTC's own JSON is
mirrored (``sdpMid``, ``sdpMLineIndex``) and ``from``, which is a Python
keyword; those are aliases here.

Requires pydantic >= 2.11 (``validate_by_name`` / ``serialize_by_alias``).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from ringfence.calls.sanitizer import MAX_CANDIDATE_BYTES, MAX_SDP_BYTES

__all__ = [
    "CALL_CLIENT_TYPES",
    "CALL_SERVER_TYPES",
    "AnswerFrame",
    "CallAnswerFrame",
    "CallCandidateFrame",
    "CallEndedFrame",
    "CallIncomingFrame",
    "CallMediaFrame",
    "CallReanswerFrame",
    "CallReofferFrame",
    "CallTransportFrame",
    "CandidateFrame",
    "ClientCallFrame",
    "CodecError",
    "ConnectedFrame",
    "EndedReason",
    "HangupFrame",
    "IceCandidate",
    "IceServer",
    "MediaFrame",
    "OfferFrame",
    "ReanswerFrame",
    "RejectFrame",
    "ReofferFrame",
    "ServerCallFrame",
    "Transport",
    "TransportFrame",
    "UserRef",
    "encode",
    "parse_client_frame",
    "parse_server_frame",
]

# A field the encoder leaves out rather than writing null (see the serializers below):
# its JSON Schema says so, for the browser's generated types (ringfence.jsdoc).
OMITTED_WHEN_NONE: Final[dict[str, JsonValue]] = {"x-omitted-when-none": True}

CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_BYTES)]
EndedReason = Literal[
    "hangup", "rejected", "timeout", "answered_elsewhere", "busy", "failed", "cancelled"
]
# What a participant asks for mid-call: everything through the relay, or direct where
# both users' settings allow it.
Transport = Literal["relay", "direct"]
_IceUrl = Annotated[
    str, StringConstraints(pattern=r"^(stun|stuns|turn|turns):\S+$", max_length=512)
]


class CodecError(ValueError):
    """A frame did not have the expected shape; ``detail`` names the field."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class IceCandidate(_Model):
    """RTCIceCandidateInit as the browser's ``RTCIceCandidate`` reports it.

    ``candidate == ""`` is the end-of-candidates signal. Any other candidate
    needs ``sdp_mid`` or ``sdp_mline_index``, or the receiving browser's
    ``addIceCandidate`` would throw.
    """

    candidate: Annotated[str, StringConstraints(max_length=MAX_CANDIDATE_BYTES)]
    sdp_mid: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, alias="sdpMid"
    )
    sdp_mline_index: Annotated[int, Field(ge=0, le=63)] | None = Field(
        default=None, alias="sdpMLineIndex"
    )
    # Browsers' RTCIceCandidate.toJSON() includes the ICE ufrag; it is also in the SDP.
    username_fragment: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{1,256}$")] | None
    ) = Field(default=None, alias="usernameFragment", json_schema_extra=OMITTED_WHEN_NONE)

    @model_serializer(mode="wrap")
    def _omit_absent_ufrag(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        if data.get("usernameFragment", "") is None:
            del data["usernameFragment"]
        return data

    @model_validator(mode="after")
    def _locatable(self) -> IceCandidate:
        if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
            raise ValueError("a candidate needs sdpMid or sdpMLineIndex")
        return self


# --- client -> server ---------------------------------------------------------


class OfferFrame(_Model):
    type: Literal["call.offer"] = "call.offer"
    call_id: CallId
    sdp: Sdp


class AnswerFrame(_Model):
    type: Literal["call.answer"] = "call.answer"
    call_id: CallId
    sdp: Sdp


class CandidateFrame(_Model):
    type: Literal["call.candidate"] = "call.candidate"
    call_id: CallId
    candidate: IceCandidate


class RejectFrame(_Model):
    type: Literal["call.reject"] = "call.reject"
    call_id: CallId


class HangupFrame(_Model):
    type: Literal["call.hangup"] = "call.hangup"
    call_id: CallId


class TransportFrame(_Model):
    """Ask to switch an answered call to the relay (or back to direct): see
    :class:`CallTransportFrame` for what follows."""

    type: Literal["call.transport"] = "call.transport"
    call_id: CallId
    transport: Transport


class ReofferFrame(_Model):
    """The ICE-restart offer of the device that asked for a transport switch."""

    type: Literal["call.reoffer"] = "call.reoffer"
    call_id: CallId
    sdp: Sdp


class ReanswerFrame(_Model):
    """The other device's answer to a :class:`ReofferFrame`."""

    type: Literal["call.reanswer"] = "call.reanswer"
    call_id: CallId
    sdp: Sdp


class ConnectedFrame(_Model):
    """Media of the call connected on this device (its peer connection reached
    "connected" for the first time). Only the two in-call devices of an answered call
    may say so; the server uses it for nothing but the call's own record, which then
    counts as a conversation, timed from now."""

    type: Literal["call.connected"] = "call.connected"
    call_id: CallId


class MediaFrame(_Model):
    """What this in-call device sends now: its microphone (``audio``) and camera
    (``video``) on or off. Handed to the other in-call device only, so it can show
    "Muted" or "Camera off" instead of silence or a black picture; nothing else."""

    type: Literal["call.media"] = "call.media"
    call_id: CallId
    audio: bool
    video: bool


ClientCallFrame: TypeAlias = (
    OfferFrame
    | AnswerFrame
    | CandidateFrame
    | RejectFrame
    | HangupFrame
    | TransportFrame
    | ReofferFrame
    | ReanswerFrame
    | ConnectedFrame
    | MediaFrame
)
CALL_CLIENT_TYPES: Final = frozenset(
    {
        "call.offer",
        "call.answer",
        "call.candidate",
        "call.reject",
        "call.hangup",
        "call.transport",
        "call.reoffer",
        "call.reanswer",
        "call.connected",
        "call.media",
    }
)


# --- server -> client ---------------------------------------------------------


class UserRef(_Model):
    """Who is calling: just enough for the callee's ringing screen."""

    id: Annotated[int, Field(ge=1)]
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    display_name: Annotated[str, StringConstraints(max_length=128)]
    verified: bool


class IceServer(_Model):
    """RTCIceServer. ``username``/``credential`` are left out when absent (STUN)."""

    urls: Annotated[list[_IceUrl], Field(min_length=1, max_length=8)]
    username: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, json_schema_extra=OMITTED_WHEN_NONE
    )
    credential: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, json_schema_extra=OMITTED_WHEN_NONE
    )

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # The browser would turn a JSON null username into the string "null".
        data: dict[str, object] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class CallIncomingFrame(_Model):
    type: Literal["call.incoming"] = "call.incoming"
    call_id: CallId
    caller: UserRef = Field(alias="from")
    media: Literal["audio", "video"]
    sdp: Sdp
    ice_servers: Annotated[list[IceServer], Field(max_length=8)]
    ice_transport_policy: Literal["relay", "all"]
    # Whether both users' settings would allow switching this call to direct.
    direct_allowed: bool = False


class CallAnswerFrame(_Model):
    type: Literal["call.answer"] = "call.answer"
    call_id: CallId
    sdp: Sdp
    direct_allowed: bool = False


class CallCandidateFrame(_Model):
    type: Literal["call.candidate"] = "call.candidate"
    call_id: CallId
    candidate: IceCandidate


class CallEndedFrame(_Model):
    type: Literal["call.ended"] = "call.ended"
    call_id: CallId
    reason: EndedReason


class CallTransportFrame(_Model):
    """The call's transport changed: to both devices in the call, each with its own
    policy and fresh TURN credentials. The device that asked (``restart``) now sends
    an ICE-restart offer (``call.reoffer``); the other one applies its new policy and
    waits for that offer."""

    type: Literal["call.transport"] = "call.transport"
    call_id: CallId
    transport: Transport
    ice_servers: Annotated[list[IceServer], Field(max_length=8)]
    ice_transport_policy: Literal["relay", "all"]
    restart: bool
    direct_allowed: bool


class CallReofferFrame(_Model):
    type: Literal["call.reoffer"] = "call.reoffer"
    call_id: CallId
    sdp: Sdp


class CallReanswerFrame(_Model):
    type: Literal["call.reanswer"] = "call.reanswer"
    call_id: CallId
    sdp: Sdp


class CallMediaFrame(_Model):
    """The other person's microphone and camera are on or off (see MediaFrame)."""

    type: Literal["call.media"] = "call.media"
    call_id: CallId
    audio: bool
    video: bool


ServerCallFrame: TypeAlias = (
    CallIncomingFrame
    | CallAnswerFrame
    | CallCandidateFrame
    | CallEndedFrame
    | CallTransportFrame
    | CallReofferFrame
    | CallReanswerFrame
    | CallMediaFrame
)
CALL_SERVER_TYPES: Final = frozenset(
    {
        "call.incoming",
        "call.answer",
        "call.candidate",
        "call.ended",
        "call.transport",
        "call.reoffer",
        "call.reanswer",
        "call.media",
    }
)

# Discriminating on "type" gives one precise error instead of one per union member.
_CLIENT: Final[TypeAdapter[ClientCallFrame]] = TypeAdapter(
    Annotated[ClientCallFrame, Field(discriminator="type")]
)
_SERVER: Final[TypeAdapter[ServerCallFrame]] = TypeAdapter(
    Annotated[ServerCallFrame, Field(discriminator="type")]
)
_MAX_DETAIL = 160


def _codec_error(error: ValidationError) -> CodecError:
    """Reduce pydantic's report to one short line naming the first bad field.

    The first element of the location is the union tag ("call.offer") and is
    left out; the message is cut short because it may echo client input.
    """
    first = error.errors(include_url=False, include_input=False)[0]
    location = [str(part) for part in first["loc"][1:]] or ["type"]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        location = ["type"]
    message = first["msg"]
    if len(message) > _MAX_DETAIL:
        message = message[:_MAX_DETAIL] + "..."
    return CodecError(f"{'.'.join(location)}: {message}")


def parse_client_frame(data: dict[str, object]) -> ClientCallFrame:
    """Validate one decoded JSON frame from a client; raises :class:`CodecError`."""
    if not isinstance(data, dict):
        raise CodecError("frame: expected a JSON object")
    try:
        return _CLIENT.validate_python(data)
    except ValidationError as error:
        raise _codec_error(error) from None


def parse_server_frame(data: dict[str, object]) -> ServerCallFrame:
    """Validate one decoded JSON frame from the server (for Ringfence's own client)."""
    if not isinstance(data, dict):
        raise CodecError("frame: expected a JSON object")
    try:
        return _SERVER.validate_python(data)
    except ValidationError as error:
        raise _codec_error(error) from None


def encode(frame: ClientCallFrame | ServerCallFrame) -> dict[str, object]:
    """The exact wire JSON for a frame (aliases applied), ready for ``json.dumps``."""
    data: dict[str, object] = frame.model_dump(mode="json", by_alias=True)
    return data
