"""A call in progress as the server keeps it: the call, both sides' transport policies,
and the signaling it still has to hand on.

Pure values, shared by the call session (which decides) and the call stores (which keep
them in memory or in Redis). Live-call state holds the caller's offer SDP while the call
rings, because a callee device that connects mid-ring must still be able to ring. It
lives only in the call store, with a TTL, and never in the database or a log (privacy
invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ringfence.calls.state import Call

# "relay": this side's device may use and hand on relay candidates only; "all": direct
# connections too. A call is direct only when both sides are "all".
TransportPolicy = Literal["relay", "all"]


@dataclass(frozen=True)
class LiveCall:
    """A call in progress and the signaling it still needs to hand on."""

    call: Call
    offer_sdp: str | None = None
    # Caller candidates that arrive while the call rings wait here for the device that
    # answers: devices that merely ring learn nothing about the caller's network.
    pending_candidates: tuple[dict[str, object], ...] = field(default=())
    caller_policy: TransportPolicy = "relay"
    callee_policy: TransportPolicy = "relay"
    # The callee silences unknown callers: ring out unseen, then record a missed call.
    silenced: bool = False
    # A mid-call transport switch under way: the device that makes the ICE-restart
    # offer, and when the switch began (a switch left unfinished does not block the
    # next one for ever).
    switching_device: str | None = None
    switch_started: float | None = None
    # The stored version this value was read at (0: never stored). Set by the store on
    # every write and compared by ``CallStore.replace``; not part of the call.
    revision: int = 0


def stricter(old: TransportPolicy, new: TransportPolicy) -> TransportPolicy:
    return "relay" if "relay" in (old, new) else "all"


def is_direct(live: LiveCall) -> bool:
    """Whether both sides may connect directly, as the call's policies stand."""
    return live.caller_policy == live.callee_policy == "all"


def policy_of(live: LiveCall, user_id: int) -> TransportPolicy:
    return live.caller_policy if user_id == live.call.caller_id else live.callee_policy


def device_of(call: Call, user_id: int) -> str | None:
    """The device through which ``user_id`` takes part in the call, once it has one."""
    return call.caller_device if user_id == call.caller_id else call.answered_device
