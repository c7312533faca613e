"""The life of one call, as an explicit state machine.

Calls are short-lived and shared between nodes (kept in Redis as JSON later),
so a :class:`Call` is an immutable value: :func:`transition` is the only way to
move it on and returns a new ``Call``. Keeping every move in one function means
there is one place that refuses impossible sequences (answering a call that has
already ended, two devices both answering) and one log line per move, in the
spirit of aiortc's ``RTCDtlsTransport._set_state``.

Nothing here reads a clock: times are passed in as epoch seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeGuard, TypeVar

__all__ = [
    "ANSWERED_ELSEWHERE",
    "IN_CALL",
    "Call",
    "CallOutcome",
    "CallState",
    "EndReason",
    "IllegalTransition",
    "Media",
    "duration_s",
    "is_participant",
    "other_party",
    "outcome",
    "transition",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class CallState(enum.Enum):
    CREATED = "created"  # POST /calls accepted; waiting for the caller's offer
    RINGING = "ringing"  # offer delivered to the callee's devices
    ANSWERED = "answered"  # one callee device answered; media is being set up
    CONNECTED = "connected"  # an in-call device reported that media connected
    ENDED = "ended"  # terminal


# A call someone answered and has not ended: its two devices are in it, whether or not
# media has connected yet.
IN_CALL: Final = frozenset({CallState.ANSWERED, CallState.CONNECTED})


class EndReason(enum.Enum):
    HANGUP = "hangup"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Told to the callee's *other* devices when one device answers. Those devices
# stop ringing, but the call itself goes on, so this is not an EndReason.
ANSWERED_ELSEWHERE: Final = "answered_elsewhere"


class CallOutcome(enum.Enum):
    """How a finished call is shown in history."""

    COMPLETED = "completed"
    NOT_CONNECTED = "not_connected"  # answered, but media never connected
    MISSED = "missed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    BUSY = "busy"


class Media(enum.Enum):
    AUDIO = "audio"
    VIDEO = "video"


class IllegalTransition(ValueError):
    """A move the state machine does not allow, or one missing what it needs."""


_LEGAL: Final[Mapping[CallState, frozenset[CallState]]] = {
    CallState.CREATED: frozenset({CallState.RINGING, CallState.ENDED}),
    CallState.RINGING: frozenset({CallState.ANSWERED, CallState.ENDED}),
    CallState.ANSWERED: frozenset({CallState.CONNECTED, CallState.ENDED}),
    CallState.CONNECTED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_time(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Call:
    """One call between two different users.

    The invariants checked on construction are the ones :func:`transition`
    maintains, so a ``Call`` read back from storage is held to the same
    standard as one built in memory.
    """

    call_id: str
    caller_id: int
    callee_id: int
    media: Media
    # The caller's device (connection) that sent the offer; set when the call rings.
    caller_device: str | None
    created_at: float
    state: CallState = CallState.CREATED
    rang_at: float | None = None
    answered_at: float | None = None
    # When media first connected, as an in-call device reported it. Only ever used for
    # this call's own record (outcome and duration), so a device that lies about it
    # can only misrecord its own call.
    connected_at: float | None = None
    ended_at: float | None = None
    answered_device: str | None = None
    end_reason: EndReason | None = None
    ended_by: int | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.call_id, str) and bool(self.call_id), "call_id must be set")
        _require(type(self.caller_id) is int and type(self.callee_id) is int, "ids must be int")
        _require(self.caller_id != self.callee_id, "a call needs two different users")
        _require(isinstance(self.media, Media), "media must be a Media")
        _require(isinstance(self.state, CallState), "state must be a CallState")
        _require(
            self.caller_device is None or isinstance(self.caller_device, str),
            "caller_device must be a str",
        )
        _require(_is_time(self.created_at), "created_at must be a finite number")
        for name in ("rang_at", "answered_at", "connected_at", "ended_at"):
            value = getattr(self, name)
            _require(value is None or _is_time(value), f"{name} must be a finite number")
        _require(
            self.answered_device is None or isinstance(self.answered_device, str),
            "answered_device must be a str",
        )
        _require(
            self.end_reason is None or isinstance(self.end_reason, EndReason),
            "end_reason must be an EndReason",
        )
        _require(
            self.ended_by is None or self.ended_by in (self.caller_id, self.callee_id),
            "ended_by must be a participant",
        )
        self._check_history()

    def _check_history(self) -> None:
        """The timestamps present must be exactly those of the states passed through."""
        rang = self.rang_at is not None
        answered = self.answered_at is not None
        connected = self.connected_at is not None
        ended = self.state is CallState.ENDED
        live = self.state in (CallState.RINGING, *IN_CALL)
        _require(rang or not (live or answered), "a call that rang has rang_at")
        _require(not rang or self.state is not CallState.CREATED, "a new call has not rung")
        _require(rang == (self.caller_device is not None), "a call that rang has a caller device")
        _require(answered == (self.answered_device is not None), "answered_at needs a device")
        _require(
            answered == (self.state in IN_CALL or (ended and answered)),
            "only an answered call has answered_at",
        )
        _require(
            connected == (self.state is CallState.CONNECTED or (ended and connected)),
            "only a connected call has connected_at",
        )
        _require(answered or not connected, "a call connects only once answered")
        _require(
            ended == (self.ended_at is not None) == (self.end_reason is not None),
            "exactly the ended calls have ended_at and end_reason",
        )
        _require(ended or self.ended_by is None, "only an ended call has ended_by")

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict (enums as their values), for storage outside the process."""
        return {
            "call_id": self.call_id,
            "caller_id": self.caller_id,
            "callee_id": self.callee_id,
            "media": self.media.value,
            "caller_device": self.caller_device,
            "state": self.state.value,
            "created_at": self.created_at,
            "rang_at": self.rang_at,
            "answered_at": self.answered_at,
            "connected_at": self.connected_at,
            "ended_at": self.ended_at,
            "answered_device": self.answered_device,
            "end_reason": None if self.end_reason is None else self.end_reason.value,
            "ended_by": self.ended_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Call:
        """Rebuild a call from :meth:`to_dict` output; raises ValueError on bad data.

        Unknown keys are ignored so that a node running an older release can
        still read calls written by a newer one during a rolling upgrade; for the same
        reason a missing ``connected_at`` (written by a release before it existed)
        reads as "not connected".
        """
        fields = _Fields(data)
        reason = fields.optional("end_reason", str)
        return cls(
            call_id=fields.required("call_id", str),
            caller_id=fields.required("caller_id", int),
            callee_id=fields.required("callee_id", int),
            media=Media(fields.required("media", str)),
            caller_device=fields.optional("caller_device", str),
            state=CallState(fields.required("state", str)),
            created_at=fields.time("created_at"),
            rang_at=fields.optional_time("rang_at"),
            answered_at=fields.optional_time("answered_at"),
            connected_at=fields.optional_time("connected_at", absent_ok=True),
            ended_at=fields.optional_time("ended_at"),
            answered_device=fields.optional("answered_device", str),
            end_reason=None if reason is None else EndReason(reason),
            ended_by=fields.optional("ended_by", int),
        )


class _Fields:
    """Typed access to a stored dict, turning every surprise into ValueError."""

    def __init__(self, data: Mapping[str, object]) -> None:
        self._data = data

    def _get(self, key: str) -> object:
        try:
            return self._data[key]
        except KeyError:
            raise ValueError(f"stored call lacks {key!r}") from None

    def optional(self, key: str, kind: type[_T]) -> _T | None:
        value = self._get(key)
        if value is None:
            return None
        if type(value) is not kind:  # exact: bool is not an int here
            raise ValueError(f"stored call has a bad {key!r}")
        return value

    def required(self, key: str, kind: type[_T]) -> _T:
        value = self.optional(key, kind)
        if value is None:
            raise ValueError(f"stored call has no {key!r}")
        return value

    def optional_time(self, key: str, *, absent_ok: bool = False) -> float | None:
        value = self._data.get(key) if absent_ok else self._get(key)
        if value is None:
            return None
        if not _is_time(value):
            raise ValueError(f"stored call has a bad {key!r}")
        return float(value)

    def time(self, key: str) -> float:
        value = self.optional_time(key)
        if value is None:
            raise ValueError(f"stored call has no {key!r}")
        return value


def transition(
    call: Call,
    new_state: CallState,
    *,
    at: float,
    device_id: str | None = None,
    reason: EndReason | None = None,
    by: int | None = None,
) -> Call:
    """Move ``call`` to ``new_state`` at time ``at`` and return the updated call.

    ``device_id`` is required (and only accepted) when ringing (the caller's
    device that sent the offer) and when answering (the callee's); ``reason`` is
    required and ``by`` optional (``None`` for timeouts and failures) when
    ending; connecting (an answered call's media came up) takes ``at`` alone.
    Anything else raises :class:`IllegalTransition`, so a service bug such as
    answering twice surfaces instead of silently overwriting state.

    ``at`` is not checked against earlier timestamps: with several nodes the
    clocks may disagree by a little, and a call that cannot be ended because of
    clock skew would be worse than a slightly odd timestamp.
    """
    old = call.state
    if new_state not in _LEGAL[old]:
        raise IllegalTransition(f"call {call.call_id}: {old.name} -> {new_state.name} refused")
    if not _is_time(at):
        raise IllegalTransition(f"call {call.call_id}: time must be a finite number")
    ringing = new_state is CallState.RINGING
    answering = new_state is CallState.ANSWERED
    connecting = new_state is CallState.CONNECTED
    ending = new_state is CallState.ENDED
    if (ringing or answering) != (device_id is not None):
        raise IllegalTransition(
            f"call {call.call_id}: device_id is needed exactly to ring (the caller's "
            "device) and to answer (the callee's)"
        )
    if ending != (reason is not None) or (by is not None and not ending):
        raise IllegalTransition(f"call {call.call_id}: reason and by belong to ending only")
    if by is not None and not is_participant(call, by):
        raise IllegalTransition(f"call {call.call_id}: user {by} is not in this call")

    if ringing:
        updated = dataclasses.replace(call, state=new_state, rang_at=at, caller_device=device_id)
    elif answering:
        updated = dataclasses.replace(
            call, state=new_state, answered_at=at, answered_device=device_id
        )
    elif connecting:
        updated = dataclasses.replace(call, state=new_state, connected_at=at)
    else:
        updated = dataclasses.replace(
            call, state=new_state, ended_at=at, end_reason=reason, ended_by=by
        )
    logger.debug("call %s: %s -> %s", call.call_id, old.name, new_state.name)
    return updated


def outcome(call: Call) -> CallOutcome:
    """How an ended call counts in history.

    Once media connected, a call is ``completed`` however it ended later; an
    answered call whose media never connected is ``not_connected`` (the relay was
    unreachable, say), so history never shows a conversation that did not happen.
    Before the answer: ``timeout`` is a missed call, ``rejected`` and ``busy`` speak for
    themselves, a ``hangup`` by the callee while it rang is a rejection, and
    everything else (caller hung up or cancelled, set-up failed) is
    ``cancelled``.
    """
    if call.state is not CallState.ENDED or call.end_reason is None:
        raise ValueError(f"call {call.call_id} has not ended")
    if call.connected_at is not None:
        return CallOutcome.COMPLETED
    if call.answered_at is not None:
        return CallOutcome.NOT_CONNECTED
    reason = call.end_reason
    if reason is EndReason.TIMEOUT:
        return CallOutcome.MISSED
    if reason is EndReason.REJECTED:
        return CallOutcome.REJECTED
    if reason is EndReason.BUSY:
        return CallOutcome.BUSY
    if reason is EndReason.HANGUP and call.ended_by == call.callee_id:
        return CallOutcome.REJECTED
    return CallOutcome.CANCELLED


def duration_s(call: Call) -> int:
    """Whole seconds of conversation, from when media connected to the end; 0 if
    media never connected or the call has not ended.

    Clamped at 0 because connection and hang-up may be stamped by different nodes.
    """
    if call.connected_at is None or call.ended_at is None:
        return 0
    return max(0, int(call.ended_at - call.connected_at))


def is_participant(call: Call, user_id: int) -> bool:
    return user_id in (call.caller_id, call.callee_id)


def other_party(call: Call, user_id: int) -> int:
    """The user on the other end from ``user_id``; ValueError for outsiders."""
    if user_id == call.caller_id:
        return call.callee_id
    if user_id == call.callee_id:
        return call.caller_id
    raise ValueError(f"user {user_id} is not in call {call.call_id}")
