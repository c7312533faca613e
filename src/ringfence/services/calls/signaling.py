"""The signaling driver: load a call's session, feed it, store what it decided, and
carry out its effects.

All the rules are in the pure :class:`~ringfence.calls.session.CallSession`. This
module does only what the session cannot: read the facts it asks for (settings,
presence), store its new state with a compare-and-set, charge credentials, and deliver
frames. SDP and candidates pass through here to the event stream; they are kept only in
the call store's live state, and never logged or written to the database.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ringfence.calls.live import LiveCall, TransportPolicy
from ringfence.calls.sanitizer import normalise_relay_addresses
from ringfence.calls.session import (
    CallError,
    CallSession,
    Cancel,
    DeadlineKey,
    Effect,
    End,
    Facts,
    Party,
    Record,
    Ring,
    Schedule,
    Send,
    Timing,
)
from ringfence.calls.state import IN_CALL, Call, CallState
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.realtime.hub import Presence
from ringfence.services.call_policy import pair_facts, transport_policies
from ringfence.services.calls.budget import CallBudget
from ringfence.services.calls.records import CallRecords
from ringfence.services.calls.store import CallStore, Deadline
from ringfence.services.errors import RateLimited
from ringfence.services.stream import EventStream
from ringfence.services.views import user_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import User
from ringfence.wire.calls import (
    ClientCallFrame,
    OfferFrame,
    TransportFrame,
    UserRef,
    encode,
)

log = logging.getLogger(__name__)

# Writers racing on one call each read again and re-decide; this many rounds is far more
# than real contention needs, and bounds a bug.
UPDATE_ATTEMPTS = 20

Decide = Callable[[CallSession], Awaitable[list[Effect]]]


class CallNotifier(Protocol):
    """Tells a user's devices about a call beyond their open sockets (Web Push), so a
    closed tab still rings. It gets a call id and nothing else about the call; it must
    not block signaling (queue, then send in the background)."""

    async def call_incoming(self, user_id: int, call_id: str) -> None: ...

    async def call_ended(self, user_id: int, call_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Device:
    """The connection a signaling frame came in on."""

    user: User
    device_id: str


class Signaling:
    def __init__(
        self,
        *,
        db: Database,
        stream: EventStream,
        store: CallStore,
        presence: Presence,
        budget: CallBudget,
        records: CallRecords,
        relay_addresses: frozenset[str],
        clock: Clock,
        settings: Settings,
        liveness_check_s: float,
        notifier: CallNotifier | None = None,
    ) -> None:
        self._db = db
        self._notifier = notifier
        self._stream = stream
        self.store = store
        self._presence = presence
        self._budget = budget
        self._records = records
        # A relayed side's "relay" candidates must really be on the relay.
        self._relay_addresses = normalise_relay_addresses(relay_addresses)
        self._clock = clock
        self._cfg = settings
        self._timing = Timing(
            ring_timeout_s=settings.ring_timeout_s,
            grace_s=settings.call_grace_s,
            liveness_check_s=liveness_check_s,
        )

    def _session(self, live: LiveCall) -> CallSession:
        return CallSession(live, relay_addresses=self._relay_addresses, timing=self._timing)

    # --- frames ------------------------------------------------------------------------

    async def handle(self, device: Device, frame: ClientCallFrame) -> None:
        """Act on one signaling frame; raises CallError for a frame that is refused."""
        party = Party(device.user.id, device.device_id)
        live = await self.store.get(frame.call_id)
        if live is None:
            error = CallSession.missing(frame)
            if error is not None:
                raise error
            return
        if isinstance(frame, TransportFrame):
            await self._admit_switch(self._session(live), party)
        busy = isinstance(frame, OfferFrame) and await self._busy(live.call.callee_id)

        async def decide(session: CallSession) -> list[Effect]:
            policies = (
                await self._policies(session.live.call) if session.needs_policies(frame) else None
            )
            facts = Facts(policies=policies, callee_busy=busy)
            return session.receive(frame, party, self._clock.time(), facts)

        done = await self._step(frame.call_id, live, decide)
        if done is None:
            error = CallSession.gone(frame)
            if error is not None:
                raise error
            return
        await self._apply(*done)

    async def _admit_switch(self, session: CallSession, party: Party) -> None:
        """A switch hands out fresh TURN credentials to both devices, so it is rate
        limited, and the one who asked pays for both; only once the session has
        checked it could go ahead (refusals of a switch under way are free)."""
        session.admit_switch(party, self._clock.time())
        try:
            await self._budget.limit(
                f"call:switch:{party.user_id}",
                self._cfg.call_switches_per_minute,
                "too many switches of the call's connection; try again later",
            )
            await self._budget.charge(party.user_id, 2)
        except RateLimited as exc:  # over the WebSocket it is an error event
            raise CallError(exc.code, exc.detail) from None

    # --- devices and settings ----------------------------------------------------------

    async def device_connected(self, device: Device) -> None:
        """Ring a device that connects while a call to its user rings; resume a device
        that comes back within the grace period."""
        party = Party(device.user.id, device.device_id)
        for live in await self.store.calls_of(party.user_id):
            session = self._session(live)
            await self._apply(session, session.device_connected(party))

    async def device_disconnected(self, device: Device) -> None:
        """A call survives its device's WebSocket for a grace period, then fails."""
        party = Party(device.user.id, device.device_id)
        for live in await self.store.calls_of(party.user_id):
            session = self._session(live)
            await self._apply(session, session.device_disconnected(party, self._clock.time()))

    async def direct_connections_changed(self, user_id: int) -> None:
        """The user changed who may connect to them directly: it holds for their calls
        in progress too, not just the next one (:meth:`CallSession.hold_policies`)."""
        for live in await self.store.calls_of(user_id):
            if live.call.state is CallState.ENDED:
                continue

            async def decide(session: CallSession) -> list[Effect]:
                # Read after the call (each time round): a setting withdrawn meanwhile was
                # either committed before this read, or its tightening of the stored call
                # makes this write lose and read again.
                policies = await self._policies(session.live.call)
                return session.hold_policies(user_id, policies, self._clock.time())

            try:
                done = await self._step(live.call.call_id, live, decide)
            except CallError as exc:  # the call changed too often at once; it ends soon
                log.warning("call %s: policy not re-applied: %s", live.call.call_id, exc.detail)
                continue
            if done is not None:
                await self._apply(*done)

    # --- deadlines -------------------------------------------------------------------

    async def fire(self, deadline: Deadline) -> None:
        """Act on a deadline of a call that came due (claimed by this node's sweeper)."""
        key = DeadlineKey.parse(deadline.kind)
        if key is None:
            log.warning("call %s: unknown deadline kind dropped", deadline.call_id)
            return
        live = await self.store.get(deadline.call_id)
        if live is None:
            return

        async def decide(session: CallSession) -> list[Effect]:
            connected = frozenset(
                [
                    party
                    for party in session.devices_to_check(key)
                    if await self._presence.is_connected(party.user_id, party.device_id)
                ]
            )
            return session.tick(key, self._clock.time(), Facts(connected=connected))

        done = await self._step(deadline.call_id, live, decide)
        if done is not None:
            await self._apply(*done)

    # --- the driver ------------------------------------------------------------------

    async def _step(
        self, call_id: str, first: LiveCall | None, decide: Decide
    ) -> tuple[CallSession, list[Effect]] | None:
        """Read the call, let the session decide, and store its new state only if
        nobody wrote in between; otherwise read again and decide again. Returns the
        session (holding the state as stored) and its effects, or None when the call is
        gone.

        Every write of a live call goes through here, so a writer that read the call
        before another one changed it can never undo that change (a tightened policy, a
        queued candidate, an answer): the store's compare-and-set is on the revision.
        ``first`` is a value just read from the store, to spare one read."""
        live = first
        for _ in range(UPDATE_ATTEMPTS):
            if live is None:
                live = await self.store.get(call_id)
                if live is None:
                    return None
            session = self._session(live)
            effects = await decide(session)
            if session.live is live:
                return session, effects  # nothing to write
            if await self.store.replace(live, session.live):
                session.live = dataclasses.replace(session.live, revision=live.revision + 1)
                return session, effects
            live = None
        raise CallError("call_busy", "the call changed too often at once; try again")

    async def _apply(self, session: CallSession, effects: list[Effect]) -> None:
        """Carry out the effects in order. One that fails does not stop the rest (the
        ended call is still announced when its record could not be kept); the first
        failure is raised at the end."""
        error: Exception | None = None
        for effect in effects:
            try:
                await self._apply_one(session, effect)
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error

    async def _apply_one(self, session: CallSession, effect: Effect) -> None:
        call_id = session.live.call.call_id
        if isinstance(effect, Send):
            await self._send(call_id, effect)
        elif isinstance(effect, Ring):
            await self._ring(session, effect)
        elif isinstance(effect, Schedule):
            await self.store.set_deadline(
                call_id, effect.deadline.encode(), effect.at, replace=effect.replace
            )
        elif isinstance(effect, Cancel):
            await self.store.cancel_deadline(call_id, effect.deadline.encode())
        elif isinstance(effect, Record):
            await self._records.record(effect.call)
        elif isinstance(effect, End):
            await self.store.remove(call_id)  # and its deadlines
            assert effect.call.end_reason is not None
            log.info("call %s ended: %s", call_id, effect.call.end_reason.value)
            if effect.callee_rang and self._notifier is not None:
                # So that a notification still ringing somewhere goes away.
                await self._notifier.call_ended(effect.call.callee_id, call_id)

    async def _send(self, call_id: str, send: Send) -> None:
        frame = send.frame
        if not isinstance(frame, dict):
            if send.credential is not None:
                payer = send.credential.payer
                if payer is not None and not await self._budget.try_charge(payer):
                    log.info("call %s: a frame not sent (credential limit)", call_id)
                    return
                ice = self._budget.ice_server(send.credential.for_user)
                frame = frame.model_copy(update={"ice_servers": [ice]})
            frame = encode(frame)
        if send.device_id is None:
            await self._stream.notify(send.user_id, frame, exclude_device=send.exclude_device)
        else:
            await self._stream.notify_device(send.user_id, send.device_id, frame)

    async def _ring(self, session: CallSession, ring: Ring) -> None:
        """Send call.incoming to the callee's device(s), each with a credential of the
        callee's charged to the payer. Out of budget, the other devices do not ring;
        the caller cannot tell."""
        call = session.live.call
        # Read afresh, not taken from the socket the offer came on: its copy of the
        # caller is as old as the socket, and a name changed since must ring as it is.
        # One statement, in no transaction: this read is on the way to call.incoming.
        async with self._db.read_one() as store:
            caller = await store.users.shown(call.caller_id)
        if caller is None:
            return
        shown = user_view(caller)
        caller_ref = UserRef(
            id=shown.id,
            username=shown.username,
            display_name=shown.display_name,
            verified=shown.verified,
        )
        devices = (
            [ring.device_id]
            if ring.device_id is not None
            else await self._presence.devices(call.callee_id)
        )
        for device_id in devices:
            if not await self._budget.try_charge(ring.payer):
                log.info("call %s: not every device rang (credential limit)", call.call_id)
                break
            frame = session.incoming(caller_ref).model_copy(
                update={"ice_servers": [self._budget.ice_server(call.callee_id)]}
            )
            await self._stream.notify_device(call.callee_id, device_id, encode(frame))
        if ring.device_id is None and self._notifier is not None:
            # The first ring also wakes the callee's devices that have no socket open.
            await self._notifier.call_incoming(call.callee_id, call.call_id)

    async def _policies(self, call: Call) -> tuple[TransportPolicy, TransportPolicy]:
        """Both sides' policies as their settings decide them now."""
        async with self._db.read() as store:
            users = await store.users.by_ids([call.caller_id, call.callee_id])
            facts = await pair_facts(store, users[call.caller_id], users[call.callee_id])
        return transport_policies(facts)

    async def _busy(self, user_id: int) -> bool:
        return any(live.call.state in IN_CALL for live in await self.store.calls_of(user_id))
