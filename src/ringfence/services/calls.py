"""1:1 calls: who may ring whom, signaling relay, and the privacy rules on the way.

The server is the only place a rule is decided:
- ``start`` refuses every disallowed call with the same 403, after counting the attempt
  against the rate limits, so a caller can probe neither settings nor blocks;
- every SDP and candidate is passed through the sanitizer with the *sender's* transport
  policy, so a relayed side's address cannot leave the server whatever its client does;
- the callee's devices may send nothing until one of them has answered, and the
  caller's candidates wait on the server until then, so ringing reveals nothing;
- SDP and candidates are held in ephemeral call state only, and never logged.

Timeouts are deadlines kept in the call store, not timers of this process: every node
runs a sweeper that claims due deadlines (each goes to one node) and acts on them, so a
call still ends when the node that started it has died. A periodic liveness check of
each live call notices devices that vanished with a dead node (their presence
expired) and gives them the same grace period as a dropped WebSocket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ringfence.calls.codec import (
    AnswerFrame,
    CallAnswerFrame,
    CallCandidateFrame,
    CallEndedFrame,
    CallIncomingFrame,
    CallReanswerFrame,
    CallReofferFrame,
    CallTransportFrame,
    CandidateFrame,
    ClientCallFrame,
    ConnectedFrame,
    HangupFrame,
    IceCandidate,
    OfferFrame,
    ReanswerFrame,
    RejectFrame,
    ReofferFrame,
    Transport,
    TransportFrame,
    UserRef,
    encode,
    parse_server_frame,
)
from ringfence.calls.codec import IceServer as IceServerFrame
from ringfence.calls.sanitizer import (
    SignalingError,
    normalise_relay_addresses,
    sanitize_candidate,
    sanitize_sdp,
)
from ringfence.calls.state import (
    ANSWERED_ELSEWHERE,
    IN_CALL,
    Call,
    CallState,
    EndReason,
    Media,
    duration_s,
    other_party,
    outcome,
    transition,
)
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.realtime.ephemeral import (
    CallStore,
    Deadline,
    LiveCall,
    Presence,
    RateLimiter,
    TransportPolicy,
    retry_after,
)
from ringfence.services.accounts import AuthContext
from ringfence.services.call_policy import call_verdict, pair_facts, transport_policies
from ringfence.services.errors import Conflict, Forbidden, RateLimited
from ringfence.services.messaging import Messaging
from ringfence.services.stream import EventStream
from ringfence.services.views import CallRecord, UserView
from ringfence.storage.database import Database
from ringfence.storage.repositories import User
from ringfence.tasks import raise_if_cancelled, stop
from ringfence.turn.credentials import TurnCredentialIssuer

log = logging.getLogger(__name__)

MAX_PENDING_CANDIDATES = 64
RING, CHECK, GRACE = "ring", "check", "grace:"  # deadline kinds; GRACE + "user:device"
# A transport switch whose ICE restart never completed stops blocking the next one.
SWITCH_STALE_S = 15.0
DEADLINE_LEASE_S = 30.0  # a claimed deadline comes due again if its node dies on it
# Writers racing on one call each read again and re-decide; this many rounds is far more
# than real contention needs, and bounds a bug.
UPDATE_ATTEMPTS = 20


class CallError(Exception):
    """A signaling frame that cannot be accepted; sent back as an error event."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Device:
    """The connection a signaling frame came in on."""

    user: User
    device_id: str


@dataclass(frozen=True, slots=True)
class StartedCall:
    call_id: str
    ice_servers: list[dict[str, object]]
    ice_transport_policy: Literal["relay", "all"]
    ring_timeout_s: int


@dataclass(frozen=True, slots=True)
class CallHistoryEntry:
    message_id: int
    call: CallRecord
    peer: UserView
    direction: Literal["outgoing", "incoming"]
    created_at: Any


class Calls:
    def __init__(
        self,
        *,
        db: Database,
        stream: EventStream,
        messaging: Messaging,
        store: CallStore,
        limiter: RateLimiter,
        presence: Presence,
        turn: TurnCredentialIssuer,
        relay_addresses: frozenset[str],
        clock: Clock,
        settings: Settings,
        sweep_interval_s: float = 0.2,
        liveness_check_s: float = 2.0,
    ) -> None:
        self._db = db
        self._stream = stream
        self._messaging = messaging
        self._calls = store
        self._limiter = limiter
        self._presence = presence
        self._turn = turn
        # A relayed side's "relay" candidates must really be on the relay.
        self._relay_addresses = normalise_relay_addresses(relay_addresses)
        self._clock = clock
        self._cfg = settings
        self._sweep_interval_s = sweep_interval_s
        self._liveness_check_s = liveness_check_s
        self._sweeper: asyncio.Task[None] | None = None

    # --- HTTP ---------------------------------------------------------------------

    async def start(self, auth: AuthContext, to: str, media: str) -> StartedCall:
        me = auth.user
        # Attempts are counted before any rule is looked at, refused or not, so that
        # probing someone's settings costs the same as calling them.
        await self._limit(f"call:caller:{me.id}", self._cfg.call_attempts_per_minute)
        await self._limit(f"call:pair:{me.id}:{to}", self._cfg.call_attempts_per_pair_per_minute)
        # The caller's credential, counted here with the attempts (before any rule) so
        # that running out of credentials answers the same whoever is called.
        await self._charge_credentials(me.id, 1)
        async with self._db.read() as store:
            # The caller as stored now, not as the auth cache remembers it: being
            # verified or suspended a moment ago decides this call.
            fresh = await store.users.by_id(me.id)
            callee = await store.users.by_username(to)
            facts = (
                None if callee is None or fresh is None else await pair_facts(store, fresh, callee)
            )
            if callee is None or facts is None or (verdict := call_verdict(facts)) == "refuse":
                raise Forbidden("call_not_allowed", "you cannot call this user")
            caller_policy, callee_policy = transport_policies(facts)
        mine = await self._calls.calls_of(me.id)
        if any(live.call.state in IN_CALL for live in mine):
            raise Conflict("already_in_call", "hang up your current call first")
        ringing = [
            live
            for live in mine
            if live.call.callee_id == callee.id
            and live.call.state in (CallState.CREATED, CallState.RINGING)
        ]
        if len(ringing) >= self._cfg.ringing_calls_per_pair:
            raise RateLimited(
                "call_rate_limited", "a call to this user is already ringing", retry_after_s=5
            )
        call = Call(
            call_id=secrets.token_urlsafe(16),
            caller_id=me.id,
            callee_id=callee.id,
            media=Media(media),
            caller_device=None,
            created_at=self._clock.time(),
        )
        await self._calls.put(
            LiveCall(
                call,
                caller_policy=caller_policy,
                callee_policy=callee_policy,
                silenced=verdict == "silence",
            )
        )
        # A call whose offer never comes ends quietly; its callee never knew of it.
        await self._schedule(call.call_id, RING, self._cfg.ring_timeout_s)
        return StartedCall(
            call_id=call.call_id,
            ice_servers=[self._ice_server(me.id).model_dump()],
            ice_transport_policy=caller_policy,
            ring_timeout_s=self._cfg.ring_timeout_s,
        )

    async def history(
        self, auth: AuthContext, *, before: int | None, limit: int
    ) -> list[CallHistoryEntry]:
        me = auth.user
        async with self._db.read() as store:
            rows = await store.messages.calls_of(me.id, before=before, limit=limit)
            peers = await store.users.by_ids(
                [m.recipient_id if m.sender_id == me.id else m.sender_id for m in rows]
            )
        entries = []
        for msg in rows:
            outgoing = msg.sender_id == me.id
            peer = peers[msg.recipient_id if outgoing else msg.sender_id]
            assert msg.call is not None
            entries.append(
                CallHistoryEntry(
                    message_id=msg.id,
                    call=CallRecord.model_validate_json(msg.call),
                    peer=UserView.of(peer),
                    direction="outgoing" if outgoing else "incoming",
                    created_at=msg.created_at,
                )
            )
        return entries

    # --- WebSocket frames ------------------------------------------------------------

    async def handle(self, device: Device, frame: ClientCallFrame) -> None:
        """Act on one signaling frame; raises CallError for a frame that is refused."""
        live = await self._calls.get(frame.call_id)
        if live is None and isinstance(frame, CandidateFrame):
            # Trickled candidates still in flight when a call ends are expected; an error
            # for them would reach the client ahead of call.ended. Ids are unguessable,
            # so dropping them silently reveals nothing.
            return
        if live is None or device.user.id not in (live.call.caller_id, live.call.callee_id):
            # Same answer for "no such call" and "not yours": ids are not probeable.
            raise CallError("call_not_found", "no such call")
        try:
            if isinstance(frame, OfferFrame):
                await self._offer(device, live, frame)
            elif isinstance(frame, AnswerFrame):
                await self._answer(device, live, frame)
            elif isinstance(frame, CandidateFrame):
                await self._candidate(device, live, frame)
            elif isinstance(frame, RejectFrame):
                await self._reject(device, live)
            elif isinstance(frame, HangupFrame):
                await self._hangup(device, live)
            elif isinstance(frame, TransportFrame):
                await self._switch(device, live, frame)
            elif isinstance(frame, ReofferFrame):
                await self._reoffer(device, live, frame)
            elif isinstance(frame, ReanswerFrame):
                await self._reanswer(device, live, frame)
            elif isinstance(frame, ConnectedFrame):
                await self._connected(device, live)
        except SignalingError as exc:
            raise CallError(exc.code, str(exc)) from None

    async def _offer(self, device: Device, live: LiveCall, frame: OfferFrame) -> None:
        call = live.call
        if device.user.id != call.caller_id:
            raise CallError("call_state", "only the caller sends the offer")
        if call.state is not CallState.CREATED:
            raise CallError("call_state", "this call already has an offer")
        self._sanitize_sdp(frame.sdp, live.caller_policy)  # a bad SDP ends nothing
        if await self._busy(call.callee_id):
            await self._end(live, _only_while(CallState.CREATED, EndReason.BUSY), by=None)
            return

        async def ring(current: LiveCall) -> LiveCall:
            if current.call.state is not CallState.CREATED:
                raise CallError("call_state", "this call already has an offer")
            policies = (current.caller_policy, current.callee_policy)
            if "all" in policies:
                # The policies were read when the call started, before it was stored,
                # so a setting withdrawn in between reached no stored call: read them
                # again now that it is stored, and keep the stricter.
                now = await self._settings_policies(current.call)
                policies = (_stricter(policies[0], now[0]), _stricter(policies[1], now[1]))
            return LiveCall(
                transition(
                    current.call,
                    CallState.RINGING,
                    at=self._clock.time(),
                    device_id=device.device_id,
                ),
                offer_sdp=self._sanitize_sdp(frame.sdp, policies[0]),
                caller_policy=policies[0],
                callee_policy=policies[1],
                silenced=current.silenced,
            )

        changed = await self._update(call.call_id, ring, first=live)
        if changed is None:
            raise CallError("call_state", "this call already has an offer")
        rang = changed[1]
        await self._schedule(call.call_id, RING, self._cfg.ring_timeout_s)
        await self._schedule(call.call_id, CHECK, self._liveness_check_s)
        if rang.silenced:
            return  # rings out on the caller's side only; the timeout records it missed
        caller = UserView.of(device.user)
        for device_id in await self._presence.devices(call.callee_id):
            # Each rung device gets a credential: the caller's action, the caller's
            # budget (never the callee's, whom others could otherwise drain). Out of
            # budget, the other devices do not ring; the caller cannot tell.
            if not await self._credentials_left(device.user.id):
                log.info("call %s: not every device rang (credential limit)", call.call_id)
                break
            await self._ring(rang, caller, device_id)

    async def _ring(self, live: LiveCall, caller: UserView, device_id: str) -> None:
        """Send call.incoming to one callee device, with a credential of the callee's."""
        assert live.offer_sdp is not None
        frame = CallIncomingFrame(
            call_id=live.call.call_id,
            caller=UserRef(**caller.model_dump()),
            media=live.call.media.value,
            # Again, with the policy as it stands now: it may have been tightened since
            # the offer was stored (a setting changed while the call rang).
            sdp=self._sanitize_sdp(live.offer_sdp, live.caller_policy),
            ice_servers=[self._ice_server(live.call.callee_id)],
            ice_transport_policy=live.callee_policy,
            direct_allowed=_direct(live),
        )
        await self._stream.notify_device(live.call.callee_id, device_id, encode(frame))

    def _sanitize_sdp(self, sdp: str, policy: str) -> str:
        return sanitize_sdp(
            sdp, relay_only=policy == "relay", relay_addresses=self._relay_addresses
        )

    def _ice_server(self, account_id: int) -> IceServerFrame:
        """A credential for ``account_id``'s device, under the account's pseudonym, so
        the relay's quota counts all of the account's allocations together. Every
        caller of this has charged someone's credential budget first."""
        ice = self._turn.issue_for(account_id)
        return IceServerFrame(urls=list(ice.urls), username=ice.username, credential=ice.credential)

    async def _charge_credentials(self, user_id: int, count: int) -> None:
        """Count ``count`` credentials against ``user_id``'s budget (the account whose
        action asks for them), or raise RateLimited."""
        for _ in range(count):
            await self._limit(
                f"turn:{user_id}",
                self._cfg.turn_credentials_per_minute,
                "too many calls and call changes; try again later",
            )

    async def _credentials_left(self, user_id: int) -> bool:
        """Charge one credential to ``user_id``; False when their budget is spent."""
        try:
            await self._charge_credentials(user_id, 1)
        except RateLimited:
            return False
        return True

    async def _answer(self, device: Device, live: LiveCall, frame: AnswerFrame) -> None:
        call = live.call
        if device.user.id != call.callee_id:
            raise CallError("call_state", "only the callee answers")
        if call.state is not CallState.RINGING:
            raise CallError("call_state", "this call is not ringing")
        self._sanitize_sdp(frame.sdp, live.callee_policy)  # a bad SDP answers nothing

        async def answer(current: LiveCall) -> LiveCall:
            if current.call.state is not CallState.RINGING:
                raise CallError("call_state", "this call is not ringing")
            return LiveCall(
                transition(
                    current.call,
                    CallState.ANSWERED,
                    at=self._clock.time(),
                    device_id=device.device_id,
                ),
                caller_policy=current.caller_policy,
                callee_policy=current.callee_policy,
            )

        # Compare-and-set: of two devices answering at once, exactly one wins; and the
        # candidates handed on below are exactly those queued until the answer.
        changed = await self._update(call.call_id, answer, first=live)
        if changed is None:
            raise CallError("call_state", "this call is not ringing")
        rang, answered = changed
        sdp = self._sanitize_sdp(frame.sdp, answered.callee_policy)
        await self._calls.cancel_deadline(call.call_id, RING)
        assert call.caller_device is not None
        await self._stream.notify_device(
            call.caller_id,
            call.caller_device,
            encode(
                CallAnswerFrame(call_id=call.call_id, sdp=sdp, direct_allowed=_direct(answered))
            ),
        )
        await self._stream.notify(
            call.callee_id,
            encode(CallEndedFrame(call_id=call.call_id, reason=ANSWERED_ELSEWHERE)),
            exclude_device=device.device_id,
        )
        for body in rang.pending_candidates:
            await self._stream.notify_device(call.callee_id, device.device_id, body)

    async def _candidate(self, device: Device, live: LiveCall, frame: CandidateFrame) -> None:
        call = live.call
        from_caller = device.user.id == call.caller_id
        if from_caller:
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
        body = self._candidate_body(call.call_id, frame, policy)
        if body is None:
            return  # a non-relay candidate from a relayed side: dropped, never forwarded
        if to_device is None:  # still ringing: keep it for the device that answers
            answered_by: str | None = None

            async def queue(current: LiveCall) -> LiveCall | None:
                nonlocal body, answered_by
                if current.call.state is not CallState.RINGING:
                    answered_by = current.call.answered_device
                    return None  # answered (or ended) meanwhile
                if len(current.pending_candidates) >= MAX_PENDING_CANDIDATES:
                    raise CallError("too_many_candidates", "too many candidates before answer")
                # Under the policy as stored now: it may have been tightened meanwhile.
                body = self._candidate_body(call.call_id, frame, current.caller_policy)
                if body is None:
                    return None
                return dataclasses.replace(
                    current, pending_candidates=(*current.pending_candidates, body)
                )

            if await self._update(call.call_id, queue, first=live) is not None:
                return
            if answered_by is None or body is None:
                return
            # Answered in the meantime: forward to the device that answered.
            to_device = answered_by
        await self._stream.notify_device(to_user, to_device, body)

    def _candidate_body(
        self, call_id: str, frame: CandidateFrame, policy: TransportPolicy
    ) -> dict[str, object] | None:
        """The call.candidate frame to hand on under ``policy``; None to drop it."""
        clean = sanitize_candidate(
            frame.candidate.candidate,
            relay_only=policy == "relay",
            relay_addresses=self._relay_addresses,
        )
        if clean is None:
            return None
        return encode(
            CallCandidateFrame(
                call_id=call_id,
                candidate=IceCandidate(
                    candidate=clean,
                    sdp_mid=frame.candidate.sdp_mid,
                    sdp_mline_index=frame.candidate.sdp_mline_index,
                    username_fragment=frame.candidate.username_fragment,
                ),
            )
        )

    # --- switching an answered call between relayed and direct -----------------------

    async def _switch(self, device: Device, live: LiveCall, frame: TransportFrame) -> None:
        """Re-decide both sides' transport policy mid-call, then have the asking device
        restart ICE under it.

        From the moment the new policies are stored, every SDP and candidate of the
        call is sanitised with them, so a switch to the relay protects both addresses
        even from a peer that ignores it. "direct" needs both users' settings to allow
        it *now*; relaying is always allowed. Each switch hands out fresh TURN
        credentials to both devices, so switches are rate limited per user.
        """
        call = live.call
        peer_device = self._peer_device(device, live)
        now = self._clock.time()
        if live.switching_device is not None and (
            live.switch_started is None or now - live.switch_started < SWITCH_STALE_S
        ):
            raise CallError("call_state", "a switch of this call is already under way")
        try:
            await self._limit(
                f"call:switch:{device.user.id}",
                self._cfg.call_switches_per_minute,
                "too many switches of the call's connection; try again later",
            )
            # Both devices get a fresh credential; the one who asked pays for both.
            await self._charge_credentials(device.user.id, 2)
        except RateLimited as exc:  # over the WebSocket it is an error event
            raise CallError(exc.code, exc.detail) from None
        direct_allowed = False

        async def decide(current: LiveCall) -> LiveCall:
            nonlocal peer_device, direct_allowed
            peer_device = self._peer_device(device, current)
            if current.switching_device is not None and (
                current.switch_started is None or now - current.switch_started < SWITCH_STALE_S
            ):
                raise CallError("call_state", "a switch of this call is already under way")
            # Read after the call (each time round): a setting withdrawn meanwhile was
            # either committed before this read, or its tightening of the stored call
            # makes this write lose and read again.
            policies = await self._settings_policies(current.call)
            direct_allowed = policies == ("all", "all")
            if frame.transport == "direct" and not direct_allowed:
                raise CallError(
                    "direct_not_allowed",
                    "a direct connection is not allowed by both users' settings",
                )
            if frame.transport == "relay":
                policies = ("relay", "relay")
            return self._switched(current, device.device_id, policies)

        changed = await self._update(call.call_id, decide, first=live)
        if changed is None:
            raise CallError("call_state", "this call is no longer in progress")
        await self._announce_switch(
            changed[1],
            device.user.id,
            device.device_id,
            peer_device,
            frame.transport,
            direct_allowed=direct_allowed,
        )

    def _switched(
        self, live: LiveCall, device_id: str, policies: tuple[TransportPolicy, TransportPolicy]
    ) -> LiveCall:
        """The call with new policies, and ``device_id`` to make the restart offer."""
        return dataclasses.replace(
            live,
            caller_policy=policies[0],
            callee_policy=policies[1],
            switching_device=device_id,
            switch_started=self._clock.time(),
        )

    async def _announce_switch(
        self,
        switched: LiveCall,
        user_id: int,
        device_id: str,
        peer_device: str,
        transport: Transport,
        *,
        direct_allowed: bool,
    ) -> None:
        """Tell both in-call devices of a stored switch; ``device_id`` (of ``user_id``)
        restarts ICE."""
        call = switched.call
        log.info("call %s: switched to %s", call.call_id, transport)
        peer_id = other_party(call, user_id)
        for to_user, to_device, restart in (
            (user_id, device_id, True),
            (peer_id, peer_device, False),
        ):
            body = CallTransportFrame(
                call_id=call.call_id,
                transport=transport,
                ice_servers=[self._ice_server(to_user)],
                ice_transport_policy=_policy_of(switched, to_user),
                restart=restart,
                direct_allowed=direct_allowed,
            )
            await self._stream.notify_device(to_user, to_device, encode(body))

    async def direct_connections_changed(self, user_id: int) -> None:
        """The user changed who may connect to them directly: it holds for their calls
        in progress too, not just the next one. A ringing call keeps ringing but is
        sanitised with the new policies from now on; an answered call that is no
        longer allowed to be direct moves behind the relay at once, as if the user had
        asked (their own in-call device restarts ICE)."""
        for live in await self._calls.calls_of(user_id):
            if live.call.state is CallState.ENDED:
                continue
            try:
                await self._hold_policies(user_id, live)
            except CallError as exc:  # the call changed too often at once; it ends soon
                log.warning("call %s: policy not re-applied: %s", live.call.call_id, exc.detail)

    async def _hold_policies(self, user_id: int, live: LiveCall) -> None:
        """Make one call obey both users' settings as they stand now (see above)."""
        switch: tuple[str, str] | None = None

        async def tighten(current: LiveCall) -> LiveCall | None:
            nonlocal switch
            switch = None
            call = current.call
            caller_policy, callee_policy = await self._settings_policies(call)
            if (caller_policy, callee_policy) == (current.caller_policy, current.callee_policy):
                return None
            if call.state not in IN_CALL:
                # Only ever tighten a ringing call: the devices were handed the old
                # policy, and a relayed side stays relayed until someone asks.
                tightened = dataclasses.replace(
                    current,
                    caller_policy=_stricter(current.caller_policy, caller_policy),
                    callee_policy=_stricter(current.callee_policy, callee_policy),
                )
                if tightened == current:
                    return None
                if tightened.caller_policy == "relay":
                    # What was queued under the old policy must not reach the callee.
                    tightened = dataclasses.replace(
                        tightened,
                        pending_candidates=self._relay_only(current.pending_candidates),
                    )
                return tightened
            if "relay" not in (caller_policy, callee_policy):
                return None  # now more is allowed: the users may switch when they like
            if current.caller_policy == current.callee_policy == "relay":
                return None  # already relayed both ways
            mine = _device_of(call, user_id)
            theirs = _device_of(call, other_party(call, user_id))
            if mine is None or theirs is None:
                return None
            switch = (mine, theirs)
            return self._switched(current, mine, ("relay", "relay"))

        changed = await self._update(live.call.call_id, tighten, first=live)
        if changed is not None and switch is not None:
            mine, theirs = switch
            # Not charged to anyone's credential budget: moving a call behind the relay
            # protects an address and is never refused. It cannot repeat without a
            # switch back to direct in between, and those are charged.
            await self._announce_switch(
                changed[1], user_id, mine, theirs, "relay", direct_allowed=False
            )

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

    async def _reoffer(self, device: Device, live: LiveCall, frame: ReofferFrame) -> None:
        peer_device = self._peer_device(device, live)
        if live.switching_device != device.device_id:
            raise CallError("call_state", "ask for a transport switch before restarting ICE")
        sdp = self._sanitize_sdp(frame.sdp, _policy_of(live, device.user.id))
        peer_id = other_party(live.call, device.user.id)
        body = encode(CallReofferFrame(call_id=live.call.call_id, sdp=sdp))
        await self._stream.notify_device(peer_id, peer_device, body)

    async def _reanswer(self, device: Device, live: LiveCall, frame: ReanswerFrame) -> None:
        peer_device = self._peer_device(device, live)
        self._sanitize_sdp(frame.sdp, _policy_of(live, device.user.id))  # refuse a bad one

        async def finish(current: LiveCall) -> LiveCall:
            if self._peer_device(device, current) != peer_device:
                raise CallError("call_state", "this device is not in the call")
            if current.switching_device != peer_device:
                raise CallError("call_state", "there is no ICE restart to answer")
            return dataclasses.replace(current, switching_device=None, switch_started=None)

        # Losing this race to a hang-up only means the answer goes nowhere.
        changed = await self._update(live.call.call_id, finish, first=live)
        if changed is None:
            raise CallError("call_state", "this call is no longer in progress")
        sdp = self._sanitize_sdp(frame.sdp, _policy_of(changed[1], device.user.id))
        peer_id = other_party(live.call, device.user.id)
        body = encode(CallReanswerFrame(call_id=live.call.call_id, sdp=sdp))
        await self._stream.notify_device(peer_id, peer_device, body)

    def _peer_device(self, device: Device, live: LiveCall) -> str:
        """The other device of an answered call, checking ``device`` is the in-call one
        of its user (a user's other devices take no part)."""
        call = live.call
        if call.state not in IN_CALL:
            raise CallError("call_state", "this call has not been answered")
        theirs = _device_of(call, other_party(call, device.user.id))
        if device.device_id != _device_of(call, device.user.id) or theirs is None:
            raise CallError("call_state", "this device is not in the call")
        return theirs

    async def _connected(self, device: Device, live: LiveCall) -> None:
        """An in-call device says media connected: from now on the call counts as a
        conversation, and its duration runs from here. Said again (both devices say it,
        and again after an ICE restart), it changes nothing.

        Nothing but this call's own record depends on it: a device that claims it
        falsely, or never does, can only misrecord its own call."""
        self._peer_device(device, live)  # an in-call device of an answered call

        async def connect(current: LiveCall) -> LiveCall | None:
            if current.call.state is not CallState.ANSWERED:
                return None  # connected already, or ended
            return dataclasses.replace(
                current, call=transition(current.call, CallState.CONNECTED, at=self._clock.time())
            )

        if await self._update(live.call.call_id, connect, first=live) is not None:
            log.info("call %s: media connected", live.call.call_id)

    async def _update(
        self,
        call_id: str,
        change: Callable[[LiveCall], Awaitable[LiveCall | None]],
        *,
        first: LiveCall | None = None,
    ) -> tuple[LiveCall, LiveCall] | None:
        """Read the call, decide, and write the decision only if nobody wrote in between;
        otherwise read again and decide again. Returns ``(before, after)`` as stored,
        or None when the call is gone or ``change`` decides there is nothing to write.

        Every write of a live call goes through here, so a writer that read the call
        before another one changed it can never undo that change (a tightened policy, a
        queued candidate, an answer): the store's compare-and-set is on the revision.
        ``first`` is a value just read from the store, to spare one read."""
        live = first
        for _ in range(UPDATE_ATTEMPTS):
            if live is None:
                live = await self._calls.get(call_id)
                if live is None:
                    return None
            updated = await change(live)
            if updated is None:
                return None
            if await self._calls.replace(live, updated):
                return live, dataclasses.replace(updated, revision=live.revision + 1)
            live = None
        raise CallError("call_busy", "the call changed too often at once; try again")

    async def _settings_policies(self, call: Call) -> tuple[TransportPolicy, TransportPolicy]:
        """Both sides' policies as their settings decide them now."""
        async with self._db.read() as store:
            users = await store.users.by_ids([call.caller_id, call.callee_id])
            facts = await pair_facts(store, users[call.caller_id], users[call.callee_id])
        return transport_policies(facts)

    async def _reject(self, device: Device, live: LiveCall) -> None:
        if device.user.id != live.call.callee_id or live.call.state is not CallState.RINGING:
            raise CallError("call_state", "only a ringing call can be rejected, by its callee")
        await self._end(live, _only_while(CallState.RINGING, EndReason.REJECTED), by=device.user.id)

    async def _hangup(self, device: Device, live: LiveCall) -> None:
        me = device.user.id

        def reason(call: Call) -> EndReason:
            if call.state in IN_CALL:
                return EndReason.HANGUP
            return EndReason.CANCELLED if me == call.caller_id else EndReason.REJECTED

        await self._end(live, reason, by=me)

    # --- device presence -------------------------------------------------------------

    async def device_connected(self, device: Device) -> None:
        """Ring a device that connects while a call to its user rings; resume a device
        that comes back within the grace period."""
        for live in await self._calls.calls_of(device.user.id):
            call = live.call
            await self._calls.cancel_deadline(
                call.call_id, _grace(device.user.id, device.device_id)
            )
            if (
                call.callee_id == device.user.id
                and call.state is CallState.RINGING
                and not live.silenced
            ):
                # Reconnecting is the callee's own action: their budget. A device that
                # reconnects in a loop stops ringing (the others still ring) instead of
                # collecting a credential each time.
                if not await self._credentials_left(device.user.id):
                    log.info("call %s: device not rung (credential limit)", call.call_id)
                    continue
                async with self._db.read() as store:
                    caller = await store.users.by_id(call.caller_id)
                if caller is not None:
                    await self._ring(live, UserView.of(caller), device.device_id)

    async def device_disconnected(self, device: Device) -> None:
        """A call survives its device's WebSocket for a grace period, then fails."""
        for live in await self._calls.calls_of(device.user.id):
            call = live.call
            if device.device_id in (call.caller_device, call.answered_device):
                await self._schedule(
                    call.call_id, _grace(device.user.id, device.device_id), self._cfg.call_grace_s
                )

    async def _check(self, call_id: str) -> None:
        """Give a device of the call that is connected nowhere its grace period.

        Normally the node that loses a device's WebSocket does that at once; this
        catches the devices that vanished with their node."""
        live = await self._calls.get(call_id)
        if live is None:
            return
        call = live.call
        for user_id, device_id in (
            (call.caller_id, call.caller_device),
            (call.callee_id, call.answered_device),
        ):
            if device_id is not None and not await self._presence.is_connected(user_id, device_id):
                # replace=False: a grace period already running is not prolonged.
                await self._schedule(
                    call_id, _grace(user_id, device_id), self._cfg.call_grace_s, replace=False
                )
        await self._schedule(call_id, CHECK, self._liveness_check_s)

    async def _lost(self, user_id: int, device_id: str, call_id: str) -> None:
        if await self._presence.is_connected(user_id, device_id):
            return
        live = await self._calls.get(call_id)
        if live is not None and device_id == _device_of(live.call, user_id):

            def failed(call: Call) -> EndReason | None:
                return EndReason.FAILED if device_id == _device_of(call, user_id) else None

            await self._end(live, failed, by=None)

    # --- ending ------------------------------------------------------------------

    async def _expire(self, call_id: str) -> None:
        live = await self._calls.get(call_id)
        if live is None:
            return

        def expired(call: Call) -> EndReason | None:
            if call.state is CallState.RINGING:
                return EndReason.TIMEOUT
            return EndReason.CANCELLED if call.state is CallState.CREATED else None

        await self._end(live, expired, by=None)

    async def _end(
        self, live: LiveCall, reason: Callable[[Call], EndReason | None], *, by: int | None
    ) -> None:
        """End the call for ``reason(call)``, decided on the call as stored when it ends
        (it may have been answered or connected since ``live`` was read); None leaves
        it alone."""
        ended: Call | None = None

        async def end(current: LiveCall) -> LiveCall | None:
            nonlocal ended
            why = reason(current.call)
            if why is None or current.call.state is CallState.ENDED:
                return None
            ended = transition(
                current.call, CallState.ENDED, at=self._clock.time(), reason=why, by=by
            )
            return LiveCall(ended)

        changed = await self._update(live.call.call_id, end, first=live)
        if changed is None or ended is None:
            return  # someone else ended it first, or it no longer should end
        call = changed[0].call
        why = ended.end_reason
        assert why is not None
        await self._calls.remove(call.call_id)  # and its deadlines
        log.info("call %s ended: %s", call.call_id, why.value)
        rang = call.state is not CallState.CREATED
        try:
            # Persist first, then notify: a client that reads the thread on call.ended
            # finds the record there.
            if rang or why is EndReason.BUSY:
                await self._record(ended)
        finally:
            body = encode(CallEndedFrame(call_id=call.call_id, reason=why.value))
            await self._stream.notify(call.caller_id, body)
            if rang:  # a call that never rang stays unknown to the callee
                await self._stream.notify(call.callee_id, body)

    async def _record(self, call: Call) -> None:
        async with self._db.read() as store:
            users = await store.users.by_ids([call.caller_id, call.callee_id])
        record = CallRecord(
            call_id=call.call_id,
            media=call.media.value,
            outcome=outcome(call).value,
            duration_s=duration_s(call),
        )
        await self._messaging.record_call(users[call.caller_id], users[call.callee_id], record)

    async def _busy(self, user_id: int) -> bool:
        return any(live.call.state in IN_CALL for live in await self._calls.calls_of(user_id))

    async def _limit(
        self, key: str, limit: int, detail: str = "too many call attempts; try again later"
    ) -> None:
        wait = await self._limiter.hit(key, limit=limit, window_s=60.0)
        if wait is not None:
            raise RateLimited("call_rate_limited", detail, retry_after(wait))

    # --- deadlines ----------------------------------------------------------------

    async def _schedule(
        self, call_id: str, kind: str, delay: float, *, replace: bool = True
    ) -> None:
        await self._calls.set_deadline(call_id, kind, self._clock.time() + delay, replace=replace)

    def start_sweeper(self) -> None:
        """Begin acting on due deadlines (of calls started on any node)."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="call-deadline-sweeper"
            )

    async def _sweep_forever(self) -> None:
        delay = self._sweep_interval_s
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the store is unreachable: back off, and say so once
                if delay == self._sweep_interval_s:
                    log.warning("sweeping call deadlines failed (%s); retrying", type(exc).__name__)
                delay = min(5.0, delay * 2)
            else:
                if delay != self._sweep_interval_s:
                    log.info("sweeping call deadlines works again")
                delay = self._sweep_interval_s
            raise_if_cancelled()
            await asyncio.sleep(delay)

    async def sweep(self) -> int:
        """Claim the deadlines due now and act on them; returns how many there were."""
        due = await self._calls.claim_due(self._clock.time(), lease_s=DEADLINE_LEASE_S, limit=100)
        for deadline in due:
            try:
                await self._fire(deadline)
            except Exception:
                log.exception("call %s: %s deadline failed", deadline.call_id, deadline.kind[:5])
            # If this fails too, the lease runs out and the deadline fires again; every
            # action is idempotent.
            await self._calls.release(deadline)
        return len(due)

    async def _fire(self, deadline: Deadline) -> None:
        if deadline.kind == RING:
            await self._expire(deadline.call_id)
        elif deadline.kind == CHECK:
            await self._check(deadline.call_id)
        elif deadline.kind.startswith(GRACE):
            user, _, device_id = deadline.kind[len(GRACE) :].partition(":")
            await self._lost(int(user), device_id, deadline.call_id)

    async def close(self) -> None:
        """Stop sweeping; the deadlines stay in the store for the other nodes."""
        await stop(self._sweeper)
        self._sweeper = None


def _only_while(state: CallState, reason: EndReason) -> Callable[[Call], EndReason | None]:
    """End for ``reason`` if the call is still in ``state`` when it ends."""

    def decide(call: Call) -> EndReason | None:
        return reason if call.state is state else None

    return decide


def _grace(user_id: int, device_id: str) -> str:
    return f"{GRACE}{user_id}:{device_id}"


def _direct(live: LiveCall) -> bool:
    """Whether both sides may connect directly, as the call's policies stand."""
    return live.caller_policy == live.callee_policy == "all"


def _stricter(old: TransportPolicy, new: TransportPolicy) -> TransportPolicy:
    return "relay" if "relay" in (old, new) else "all"


def _policy_of(live: LiveCall, user_id: int) -> TransportPolicy:
    return live.caller_policy if user_id == live.call.caller_id else live.callee_policy


def _device_of(call: Call, user_id: int) -> str | None:
    """The device through which ``user_id`` takes part in the call, once it has one."""
    return call.caller_device if user_id == call.caller_id else call.answered_device
