"""The 1:1 call protocol as one pure object: frames and deadlines in, effects out.

:class:`CallSession` holds one live call and decides everything about it: who may send
which frame when, what each SDP and candidate may carry (through the sanitizer, with
the *sender's* transport policy), how a call switches between direct and relayed, when
it rings out and when a lost device fails it. It never does anything itself: each
method returns the effects (:class:`Send`, :class:`Ring`, :class:`Schedule`,
:class:`Cancel`, :class:`Record`, :class:`End`) and leaves its new state in
:attr:`CallSession.live`. The driver in ``services/calls`` loads the call, feeds the
session the facts it asked for (settings, presence), stores the new state with a
compare-and-set, and only then applies the effects; when the store changed under it, it
feeds the session the fresh state and asks again.

No I/O and no clock: ``now`` is always passed in, so the whole protocol runs under a
fake clock in tests (tests/unit/calls/test_session.py).

The privacy rules it enforces:
- every SDP and candidate handed on is sanitised with the policy its sender's side has
  *at that moment*, so a relayed side's address cannot leave the server whatever its
  client does (invariants 1 and 6);
- the callee's devices may send nothing until one of them has answered, and the
  caller's candidates wait in the session until then (invariant 3);
- a switch to the relay takes effect for everything forwarded after it is stored, even
  towards a peer that ignores the switch.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from ringfence.calls.live import (
    LiveCall,
    TransportPolicy,
    device_of,
    is_direct,
    policy_of,
    stricter,
)
from ringfence.calls.sanitizer import SignalingError, sanitize_candidate, sanitize_sdp
from ringfence.calls.state import (
    ANSWERED_ELSEWHERE,
    IN_CALL,
    Call,
    CallState,
    EndReason,
    other_party,
    transition,
)
from ringfence.wire.calls import (
    AnswerFrame,
    CallAnswerFrame,
    CallCandidateFrame,
    CallEndedFrame,
    CallIncomingFrame,
    CallMediaFrame,
    CallReanswerFrame,
    CallReofferFrame,
    CallTransportFrame,
    CandidateFrame,
    ClientCallFrame,
    HangupFrame,
    IceCandidate,
    MediaFrame,
    OfferFrame,
    ReanswerFrame,
    RejectFrame,
    ReofferFrame,
    ServerCallFrame,
    Transport,
    TransportFrame,
    UserRef,
    encode,
    parse_server_frame,
)

log = logging.getLogger(__name__)


class CallError(Exception):
    """A signaling frame that cannot be accepted; sent back as an error event."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Party:
    """One device of one user: where a frame came from, or where one goes."""

    user_id: int
    device_id: str


# --- deadlines ------------------------------------------------------------------------


class DeadlineKind(enum.Enum):
    RING = "ring"  # the ring timeout (and the wait for an offer before it)
    CHECK = "check"  # the periodic check that the call's devices are still connected
    GRACE = "grace"  # a device of the call lost its connection; it fails when this runs out


@dataclass(frozen=True, slots=True)
class DeadlineKey:
    """Which deadline of a call: at most one of each key is set at a time."""

    kind: DeadlineKind
    party: Party | None = None  # the lost device, for GRACE only

    def __post_init__(self) -> None:
        if (self.kind is DeadlineKind.GRACE) != (self.party is not None):
            raise ValueError("a grace deadline, and only one, names its device")

    def encode(self) -> str:
        """The key as the call stores keep it."""
        if self.party is None:
            return self.kind.value
        return f"{self.kind.value}:{self.party.user_id}:{self.party.device_id}"

    @classmethod
    def parse(cls, text: str) -> DeadlineKey | None:
        """The key :meth:`encode` wrote; None for anything else."""
        kind, sep, rest = text.partition(":")
        if kind == DeadlineKind.GRACE.value:
            user, _, device_id = rest.partition(":")
            if not user.isdigit() or not device_id:
                return None
            return cls(DeadlineKind.GRACE, Party(int(user), device_id))
        if sep or kind not in (DeadlineKind.RING.value, DeadlineKind.CHECK.value):
            return None
        return cls(DeadlineKind(kind))


RING = DeadlineKey(DeadlineKind.RING)
CHECK = DeadlineKey(DeadlineKind.CHECK)


def grace(party: Party) -> DeadlineKey:
    return DeadlineKey(DeadlineKind.GRACE, party)


# --- effects --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """The frame needs a fresh TURN credential of ``for_user``'s in its ``ice_servers``,
    charged to ``payer``'s budget (None: already charged before the decision)."""

    for_user: int
    payer: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``frame`` to one device of ``user_id``, or to all of them (``device_id``
    None, but ``exclude_device``). ``frame`` is either a typed frame or one already
    encoded (a candidate that waited for the answer)."""

    user_id: int
    device_id: str | None
    frame: ServerCallFrame | dict[str, object]
    exclude_device: str | None = None
    credential: Credential | None = None


@dataclass(frozen=True, slots=True)
class Ring:
    """Send ``call.incoming`` (:meth:`CallSession.incoming`) to the callee's device
    ``device_id``, or to every device connected now (None), each with a credential of
    the callee's charged to ``payer``. A device the payer's budget cannot cover does
    not ring, and the payer cannot tell."""

    device_id: str | None
    payer: int


@dataclass(frozen=True, slots=True)
class Schedule:
    deadline: DeadlineKey
    at: float
    replace: bool = True  # False: a deadline of this key already set stays as it is


@dataclass(frozen=True, slots=True)
class Cancel:
    deadline: DeadlineKey


@dataclass(frozen=True, slots=True)
class Record:
    """Keep the ended call's record in the conversation (before anyone is told)."""

    call: Call


@dataclass(frozen=True, slots=True)
class End:
    """The call ended: forget its live state and every deadline it has.
    ``callee_rang``: the callee's devices were rung (so they may still show it)."""

    call: Call
    callee_rang: bool = False


Effect: TypeAlias = Send | Ring | Schedule | Cancel | Record | End


@dataclass(frozen=True, slots=True)
class Timing:
    ring_timeout_s: float
    grace_s: float
    liveness_check_s: float
    # A transport switch whose ICE restart never completed stops blocking the next one.
    switch_stale_s: float = 15.0
    max_pending_candidates: int = 64


@dataclass(frozen=True, slots=True)
class Facts:
    """What the session cannot know by itself; the driver reads what the session asks
    for (:meth:`CallSession.needs_policies`, :meth:`CallSession.devices_to_check`)."""

    # Both sides' policies as their settings decide them now: (caller's, callee's).
    policies: tuple[TransportPolicy, TransportPolicy] | None = None
    callee_busy: bool = False  # the callee is in another call
    connected: frozenset[Party] = frozenset()  # which of the asked-for devices are online


EndDecision = Callable[[Call], EndReason | None]


class CallSession:
    """One live call's protocol. Each method decides on :attr:`live` as it is, leaves
    the new state there (the same object when nothing changed, so the driver writes
    nothing), and returns the effects to apply once that state is stored."""

    def __init__(self, live: LiveCall, *, relay_addresses: frozenset[str], timing: Timing):
        self.live = live
        self._relay_addresses = relay_addresses
        self._timing = timing

    # --- what the driver must read first -------------------------------------------

    def needs_policies(self, frame: ClientCallFrame) -> bool:
        """Whether deciding ``frame`` needs both users' policies as settings say now.

        A switch always does. An offer does when the call was allowed anything direct:
        the policies were read when the call started, before it was stored, so a
        setting withdrawn in between reached no stored call."""
        if isinstance(frame, TransportFrame):
            return True
        live = self.live
        return isinstance(frame, OfferFrame) and "all" in (live.caller_policy, live.callee_policy)

    def devices_to_check(self, deadline: DeadlineKey) -> list[Party]:
        """The devices whose presence deciding ``deadline`` needs."""
        if deadline.party is not None:
            return [deadline.party]
        if deadline.kind is not DeadlineKind.CHECK:
            return []
        call = self.live.call
        return [
            Party(user_id, device_id)
            for user_id, device_id in (
                (call.caller_id, call.caller_device),
                (call.callee_id, call.answered_device),
            )
            if device_id is not None
        ]

    @staticmethod
    def missing(frame: ClientCallFrame) -> CallError | None:
        """The answer to a frame for a call that does not exist (or is not the
        sender's: the same answer, so call ids cannot be probed). Trickled candidates
        still in flight when a call ends are expected, and dropped: an error for them
        would reach the client ahead of call.ended."""
        if isinstance(frame, CandidateFrame):
            return None
        return CallError("call_not_found", "no such call")

    @staticmethod
    def gone(frame: ClientCallFrame) -> CallError | None:
        """The answer to a frame whose call ended while it was being decided."""
        if isinstance(frame, OfferFrame):
            return CallError("call_state", "this call already has an offer")
        if isinstance(frame, AnswerFrame):
            return CallError("call_state", "this call is not ringing")
        if isinstance(frame, TransportFrame | ReanswerFrame):
            return CallError("call_state", "this call is no longer in progress")
        return None

    # --- frames from devices ---------------------------------------------------------

    def receive(
        self, frame: ClientCallFrame, device: Party, now: float, facts: Facts = Facts()
    ) -> list[Effect]:
        """Decide one signaling frame from ``device``; raises CallError to refuse it."""
        self._member(device)
        try:
            if isinstance(frame, OfferFrame):
                return self._offer(device, frame, now, facts)
            if isinstance(frame, AnswerFrame):
                return self._answer(device, frame, now)
            if isinstance(frame, CandidateFrame):
                return self._candidate(device, frame)
            if isinstance(frame, RejectFrame):
                return self._reject(device, now)
            if isinstance(frame, HangupFrame):
                return self._hangup(device, now)
            if isinstance(frame, TransportFrame):
                return self._switch(device, frame, now, facts)
            if isinstance(frame, ReofferFrame):
                return self._reoffer(device, frame)
            if isinstance(frame, ReanswerFrame):
                return self._reanswer(device, frame)
            if isinstance(frame, MediaFrame):
                return self._media(device, frame)
            return self._connected(device, now)
        except SignalingError as exc:
            raise CallError(exc.code, str(exc)) from None

    def admit_switch(self, device: Party, now: float) -> None:
        """The checks a switch passes before it is charged to anyone's budget: only the
        in-call device of an answered call asks, one switch at a time."""
        self._member(device)
        self._peer_device(device)
        self._no_switch_under_way(now)

    def _member(self, device: Party) -> None:
        call = self.live.call
        if device.user_id not in (call.caller_id, call.callee_id):
            # The same answer as for a call that does not exist: ids are not probeable.
            raise CallError("call_not_found", "no such call")

    def _offer(self, device: Party, frame: OfferFrame, now: float, facts: Facts) -> list[Effect]:
        live = self.live
        call = live.call
        if device.user_id != call.caller_id:
            raise CallError("call_state", "only the caller sends the offer")
        if call.state is not CallState.CREATED:
            raise CallError("call_state", "this call already has an offer")
        self._sdp(frame.sdp, live.caller_policy)  # a bad SDP ends nothing
        if facts.callee_busy:
            return self._end(_only_while(CallState.CREATED, EndReason.BUSY), None, now)
        caller_policy, callee_policy = live.caller_policy, live.callee_policy
        if self.needs_policies(frame):
            assert facts.policies is not None, "the driver reads the policies first"
            caller_policy = stricter(caller_policy, facts.policies[0])
            callee_policy = stricter(callee_policy, facts.policies[1])
        self.live = LiveCall(
            transition(call, CallState.RINGING, at=now, device_id=device.device_id),
            offer_sdp=self._sdp(frame.sdp, caller_policy),
            caller_policy=caller_policy,
            callee_policy=callee_policy,
            silenced=live.silenced,
        )
        effects: list[Effect] = [
            Schedule(RING, now + self._timing.ring_timeout_s),
            Schedule(CHECK, now + self._timing.liveness_check_s),
        ]
        if not live.silenced:  # a silenced call rings out on the caller's side only
            effects.append(Ring(None, payer=device.user_id))
        return effects

    def incoming(self, caller: UserRef) -> CallIncomingFrame:
        """The ringing frame for a callee device (its ``ice_servers`` are filled in with
        a credential of the callee's when it is sent). The offer is sanitised again,
        with the policy as it stands now: it may have been tightened since the offer
        was stored (a setting changed while the call rang)."""
        live = self.live
        assert live.offer_sdp is not None, "only a ringing call rings"
        return CallIncomingFrame(
            call_id=live.call.call_id,
            caller=caller,
            media=live.call.media.value,
            sdp=self._sdp(live.offer_sdp, live.caller_policy),
            ice_servers=[],
            ice_transport_policy=live.callee_policy,
            direct_allowed=is_direct(live),
        )

    def _answer(self, device: Party, frame: AnswerFrame, now: float) -> list[Effect]:
        live = self.live
        call = live.call
        if device.user_id != call.callee_id:
            raise CallError("call_state", "only the callee answers")
        if call.state is not CallState.RINGING:
            raise CallError("call_state", "this call is not ringing")
        sdp = self._sdp(frame.sdp, live.callee_policy)  # a bad SDP answers nothing
        # Stored with a compare-and-set: of two devices answering at once exactly one
        # wins, and the candidates handed on below are exactly those queued until now.
        answered = LiveCall(
            transition(call, CallState.ANSWERED, at=now, device_id=device.device_id),
            caller_policy=live.caller_policy,
            callee_policy=live.callee_policy,
        )
        self.live = answered
        assert call.caller_device is not None
        effects: list[Effect] = [
            Cancel(RING),
            Send(
                call.caller_id,
                call.caller_device,
                CallAnswerFrame(call_id=call.call_id, sdp=sdp, direct_allowed=is_direct(answered)),
            ),
            Send(
                call.callee_id,
                None,
                CallEndedFrame(call_id=call.call_id, reason=ANSWERED_ELSEWHERE),
                exclude_device=device.device_id,
            ),
        ]
        effects.extend(
            Send(call.callee_id, device.device_id, body) for body in live.pending_candidates
        )
        return effects

    def _candidate(self, device: Party, frame: CandidateFrame) -> list[Effect]:
        live = self.live
        call = live.call
        if device.user_id == call.caller_id:
            if call.state is CallState.CREATED:
                raise CallError("call_state", "send the offer before candidates")
            if device.device_id != call.caller_device:
                raise CallError("call_state", "this device is not in the call")
            policy, to_user, to_device = live.caller_policy, call.callee_id, call.answered_device
        else:
            # Invariant 3: nothing from the callee's side before its user has answered.
            if call.state not in IN_CALL or device.device_id != call.answered_device:
                raise CallError("call_state", "answer the call before sending candidates")
            policy, to_user, to_device = live.callee_policy, call.caller_id, call.caller_device
        body = self._candidate_body(frame, policy)
        if body is None:
            return []  # a non-relay candidate from a relayed side: dropped, never forwarded
        if to_device is not None:
            return [Send(to_user, to_device, body)]
        if call.state is not CallState.RINGING:
            return []  # ended before anyone answered
        # Still ringing: it waits for the device that answers.
        if len(live.pending_candidates) >= self._timing.max_pending_candidates:
            raise CallError("too_many_candidates", "too many candidates before answer")
        self.live = dataclasses.replace(live, pending_candidates=(*live.pending_candidates, body))
        return []

    def _candidate_body(
        self, frame: CandidateFrame, policy: TransportPolicy
    ) -> dict[str, object] | None:
        """The call.candidate frame to hand on under ``policy``; None to drop it."""
        clean = sanitize_candidate(
            frame.candidate.candidate,
            relay_only=policy == "relay",
            relay_addresses=self._relay_addresses,
        )
        if clean is None:
            return None
        candidate = IceCandidate(
            candidate=clean,
            sdp_mid=frame.candidate.sdp_mid,
            sdp_mline_index=frame.candidate.sdp_mline_index,
            username_fragment=frame.candidate.username_fragment,
        )
        return encode(CallCandidateFrame(call_id=self.live.call.call_id, candidate=candidate))

    def _reject(self, device: Party, now: float) -> list[Effect]:
        call = self.live.call
        if device.user_id != call.callee_id or call.state is not CallState.RINGING:
            raise CallError("call_state", "only a ringing call can be rejected, by its callee")
        return self._end(_only_while(CallState.RINGING, EndReason.REJECTED), device.user_id, now)

    def _hangup(self, device: Party, now: float) -> list[Effect]:
        me = device.user_id

        def reason(call: Call) -> EndReason:
            if call.state in IN_CALL:
                return EndReason.HANGUP
            return EndReason.CANCELLED if me == call.caller_id else EndReason.REJECTED

        return self._end(reason, me, now)

    def _connected(self, device: Party, now: float) -> list[Effect]:
        """An in-call device says media connected: from now on the call counts as a
        conversation, and its duration runs from here. Said again (both devices say it,
        and again after an ICE restart), it changes nothing. Nothing but this call's own
        record depends on it: a device that claims it falsely, or never does, can only
        misrecord its own call."""
        if self.live.call.state is CallState.ENDED:
            return []
        self._peer_device(device)  # an in-call device of an answered call
        if self.live.call.state is CallState.ANSWERED:
            self.live = dataclasses.replace(
                self.live, call=transition(self.live.call, CallState.CONNECTED, at=now)
            )
            log.info("call %s: media connected", self.live.call.call_id)
        return []

    def _media(self, device: Party, frame: MediaFrame) -> list[Effect]:
        """Microphone and camera on or off: handed to the other in-call device as is.
        Nothing is kept: each device says it again whenever its connection (re)starts."""
        peer_device = self._peer_device(device)
        peer_id = other_party(self.live.call, device.user_id)
        media = CallMediaFrame(call_id=frame.call_id, audio=frame.audio, video=frame.video)
        return [Send(peer_id, peer_device, media)]

    # --- switching an answered call between relayed and direct ------------------------

    def _switch(
        self, device: Party, frame: TransportFrame, now: float, facts: Facts
    ) -> list[Effect]:
        """Re-decide both sides' transport policy mid-call; the asking device then
        restarts ICE under it. "direct" needs both users' settings to allow it *now*
        (``facts.policies``, read after the call); relaying is always allowed. From the
        moment the new policies are stored, every SDP and candidate of the call is
        sanitised with them, so a switch to the relay protects both addresses even
        from a peer that ignores it. The driver has charged the asker for both
        devices' fresh credentials (after :meth:`admit_switch`)."""
        peer_device = self._peer_device(device)
        self._no_switch_under_way(now)
        assert facts.policies is not None, "the driver reads the policies first"
        policies = facts.policies
        direct_allowed = policies == ("all", "all")
        if frame.transport == "direct" and not direct_allowed:
            raise CallError(
                "direct_not_allowed", "a direct connection is not allowed by both users' settings"
            )
        if frame.transport == "relay":
            policies = ("relay", "relay")
        self._switched(device.device_id, policies, now)
        return self._announce_switch(
            device, peer_device, frame.transport, direct_allowed=direct_allowed
        )

    def hold_policies(
        self, user_id: int, policies: tuple[TransportPolicy, TransportPolicy], now: float
    ) -> list[Effect]:
        """``user_id`` changed who may connect to them directly (``policies``: both
        sides' as settings decide them now), and it holds for this call too. A ringing
        call keeps ringing but is sanitised with the stricter policies from now on; an
        answered call no longer allowed to be direct moves behind the relay at once,
        as if the user had asked (their own in-call device restarts ICE). Moving a call
        behind the relay protects an address and is never refused or charged; it
        cannot repeat without a switch back to direct in between, and those are."""
        live = self.live
        call = live.call
        if call.state is CallState.ENDED or policies == (live.caller_policy, live.callee_policy):
            return []
        if call.state not in IN_CALL:
            # Only ever tighten a ringing call: the devices were handed the old policy,
            # and a relayed side stays relayed until someone asks.
            tightened = dataclasses.replace(
                live,
                caller_policy=stricter(live.caller_policy, policies[0]),
                callee_policy=stricter(live.callee_policy, policies[1]),
            )
            if tightened.caller_policy == "relay" and live.caller_policy != "relay":
                # What was kept under the old policy must not reach the callee, nor stay
                # in the store: the offer (for devices that connect later) and the
                # queued candidates.
                tightened = dataclasses.replace(
                    tightened,
                    offer_sdp=None
                    if live.offer_sdp is None
                    else self._sdp(live.offer_sdp, "relay"),
                    pending_candidates=self._relay_only(live.pending_candidates),
                )
            if tightened != live:
                self.live = tightened
            return []
        if "relay" not in policies:
            return []  # now more is allowed: the users may switch when they like
        if live.caller_policy == live.callee_policy == "relay":
            return []  # already relayed both ways
        mine = device_of(call, user_id)
        theirs = device_of(call, other_party(call, user_id))
        if mine is None or theirs is None:
            return []
        self._switched(mine, ("relay", "relay"), now)
        return self._announce_switch(Party(user_id, mine), theirs, "relay", direct_allowed=False)

    def _reoffer(self, device: Party, frame: ReofferFrame) -> list[Effect]:
        peer_device = self._peer_device(device)
        if self.live.switching_device != device.device_id:
            raise CallError("call_state", "ask for a transport switch before restarting ICE")
        sdp = self._sdp(frame.sdp, policy_of(self.live, device.user_id))
        peer_id = other_party(self.live.call, device.user_id)
        call_id = self.live.call.call_id
        return [Send(peer_id, peer_device, CallReofferFrame(call_id=call_id, sdp=sdp))]

    def _reanswer(self, device: Party, frame: ReanswerFrame) -> list[Effect]:
        peer_device = self._peer_device(device)
        sdp = self._sdp(frame.sdp, policy_of(self.live, device.user_id))
        if self.live.switching_device != peer_device:
            raise CallError("call_state", "there is no ICE restart to answer")
        self.live = dataclasses.replace(self.live, switching_device=None, switch_started=None)
        peer_id = other_party(self.live.call, device.user_id)
        call_id = self.live.call.call_id
        return [Send(peer_id, peer_device, CallReanswerFrame(call_id=call_id, sdp=sdp))]

    def _no_switch_under_way(self, now: float) -> None:
        live = self.live
        if live.switching_device is not None and (
            live.switch_started is None or now - live.switch_started < self._timing.switch_stale_s
        ):
            raise CallError("call_state", "a switch of this call is already under way")

    def _switched(
        self, device_id: str, policies: tuple[TransportPolicy, TransportPolicy], now: float
    ) -> None:
        """New policies, and ``device_id`` to make the restart offer."""
        self.live = dataclasses.replace(
            self.live,
            caller_policy=policies[0],
            callee_policy=policies[1],
            switching_device=device_id,
            switch_started=now,
        )

    def _announce_switch(
        self, device: Party, peer_device: str, transport: Transport, *, direct_allowed: bool
    ) -> list[Effect]:
        """Tell both in-call devices of the switch; ``device`` restarts ICE. Each gets a
        fresh credential of its own user's, already paid for."""
        live = self.live
        log.info("call %s: switching to %s", live.call.call_id, transport)
        peer_id = other_party(live.call, device.user_id)
        return [
            Send(
                to_user,
                to_device,
                CallTransportFrame(
                    call_id=live.call.call_id,
                    transport=transport,
                    ice_servers=[],
                    ice_transport_policy=policy_of(live, to_user),
                    restart=restart,
                    direct_allowed=direct_allowed,
                ),
                credential=Credential(to_user),
            )
            for to_user, to_device, restart in (
                (device.user_id, device.device_id, True),
                (peer_id, peer_device, False),
            )
        ]

    def _relay_only(self, bodies: tuple[dict[str, object], ...]) -> tuple[dict[str, object], ...]:
        """Queued candidate frames, keeping only what a relayed side may forward."""
        kept = []
        for body in bodies:
            frame = parse_server_frame(body)
            assert isinstance(frame, CallCandidateFrame)
            clean = sanitize_candidate(
                frame.candidate.candidate, relay_only=True, relay_addresses=self._relay_addresses
            )
            if clean is not None:
                candidate = frame.candidate.model_copy(update={"candidate": clean})
                kept.append(encode(frame.model_copy(update={"candidate": candidate})))
        return tuple(kept)

    def _peer_device(self, device: Party) -> str:
        """The other device of an answered call, checking ``device`` is the in-call one
        of its user (a user's other devices take no part)."""
        call = self.live.call
        if call.state not in IN_CALL:
            raise CallError("call_state", "this call has not been answered")
        theirs = device_of(call, other_party(call, device.user_id))
        if device.device_id != device_of(call, device.user_id) or theirs is None:
            raise CallError("call_state", "this device is not in the call")
        return theirs

    # --- devices coming and going, and deadlines ------------------------------------

    def device_connected(self, device: Party) -> list[Effect]:
        """A device of a user in the call connected: it is no longer lost, and if the
        call rings for that user, it rings there too. Reconnecting is the callee's own
        action, so it is charged to the callee: a device that reconnects in a loop
        stops ringing (the others still ring) instead of collecting credentials."""
        call = self.live.call
        effects: list[Effect] = [Cancel(grace(device))]
        if (
            call.callee_id == device.user_id
            and call.state is CallState.RINGING
            and not self.live.silenced
        ):
            effects.append(Ring(device.device_id, payer=device.user_id))
        return effects

    def device_disconnected(self, device: Party, now: float) -> list[Effect]:
        """A call survives its device's WebSocket for a grace period, then fails."""
        call = self.live.call
        if device.device_id in (call.caller_device, call.answered_device):
            return [Schedule(grace(device), now + self._timing.grace_s)]
        return []

    def tick(self, deadline: DeadlineKey, now: float, facts: Facts = Facts()) -> list[Effect]:
        """A deadline of this call came due (``facts.connected``: which of the devices
        :meth:`devices_to_check` named are connected anywhere)."""
        if deadline.kind is DeadlineKind.RING:

            def expired(call: Call) -> EndReason | None:
                if call.state is CallState.RINGING:
                    return EndReason.TIMEOUT
                return EndReason.CANCELLED if call.state is CallState.CREATED else None

            return self._end(expired, None, now)
        if deadline.kind is DeadlineKind.CHECK:
            # Normally the node that loses a device's WebSocket starts its grace period
            # at once; this catches the devices that vanished with their node. A grace
            # period already running is not prolonged.
            effects: list[Effect] = [
                Schedule(grace(party), now + self._timing.grace_s, replace=False)
                for party in self.devices_to_check(deadline)
                if party not in facts.connected
            ]
            effects.append(Schedule(CHECK, now + self._timing.liveness_check_s))
            return effects
        lost = deadline.party
        assert lost is not None
        if lost in facts.connected:
            return []

        def failed(call: Call) -> EndReason | None:
            return EndReason.FAILED if lost.device_id == device_of(call, lost.user_id) else None

        return self._end(failed, None, now)

    # --- ending ------------------------------------------------------------------

    def _end(self, reason: EndDecision, by: int | None, now: float) -> list[Effect]:
        """End the call for ``reason(call)`` (None leaves it alone). The record is kept
        before anyone is told, so a client that reads the thread on call.ended finds
        it there. A call that never rang stays unknown to the callee."""
        call = self.live.call
        why = reason(call)
        if why is None or call.state is CallState.ENDED:
            return []
        ended = transition(call, CallState.ENDED, at=now, reason=why, by=by)
        rang = call.state is not CallState.CREATED
        callee_rang = rang and not self.live.silenced
        self.live = LiveCall(ended)
        effects: list[Effect] = [End(ended, callee_rang=callee_rang)]
        if rang or why is EndReason.BUSY:
            effects.append(Record(ended))
        frame = CallEndedFrame(call_id=call.call_id, reason=why.value)
        effects.append(Send(call.caller_id, None, frame))
        if rang:
            effects.append(Send(call.callee_id, None, frame))
        return effects

    def _sdp(self, sdp: str, policy: TransportPolicy) -> str:
        return sanitize_sdp(
            sdp, relay_only=policy == "relay", relay_addresses=self._relay_addresses
        )


def _only_while(state: CallState, reason: EndReason) -> EndDecision:
    """End for ``reason`` if the call is still in ``state`` when it ends."""

    def decide(call: Call) -> EndReason | None:
        return reason if call.state is state else None

    return decide
