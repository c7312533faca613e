"""What a call reports, without the machinery that runs it: its steps, its failures and
the candidate pair it uses. Light to import (no aiortc), so the CLI can describe calls
and catch their errors without loading WebRTC until a call is placed."""

from __future__ import annotations

from dataclasses import dataclass

from ringfence.wire.call_states import CallState


@dataclass(frozen=True, slots=True)
class StateChange:
    """One step of a call. ``reason`` is set on ``ended``: the server's reason
    (hangup, rejected, timeout, answered_elsewhere, busy, failed, cancelled), or
    ``failed`` for a local failure, explained by ``detail``. On ``reconnecting``,
    ``detail`` says why the connection is being restarted."""

    state: CallState
    reason: str | None = None
    detail: str | None = None


class CallEnded(Exception):
    """The call ended before what was awaited happened."""

    def __init__(self, reason: str, detail: str | None) -> None:
        super().__init__(f"call ended: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail


class TransportSwitchFailed(Exception):
    """A mid-call switch between relayed and direct did not happen. ``code`` is the
    server's refusal (``direct_not_allowed``, ``call_state``, ``call_rate_limited``)
    or ``failed`` when the ICE restart itself failed (the call then ends). A call that
    is reconnecting cannot be switched (``call_state``): it already is, to the relay."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CandidateInfo:
    type: str  # host, srflx, prflx or relay
    address: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class SelectedPair:
    """The ICE candidate pair media flows over. A ``relay`` candidate on either end
    means the media goes through a TURN relay and neither side sees the other's address."""

    local: CandidateInfo
    remote: CandidateInfo

    @property
    def relayed(self) -> bool:
        return "relay" in (self.local.type, self.remote.type)
