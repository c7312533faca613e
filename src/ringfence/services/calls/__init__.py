"""1:1 calls: the thin driver around the pure call protocol.

- :mod:`.admission`: who may ring whom (``start``), decided from stored settings;
- :mod:`.signaling`: frames and device presence, fed to the pure
  :class:`~ringfence.calls.session.CallSession`, whose effects it carries out;
- :mod:`.deadlines`: the sweeper that fires ring timeouts, grace periods and checks;
- :mod:`.records`: the call records kept in conversations, and the call history;
- :mod:`.budget`: attempt limits and TURN credentials.

:class:`Calls` wires them together for app.py; each part can be used on its own.
"""

from __future__ import annotations

from ringfence.calls.session import CallError
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.realtime.hub import Presence
from ringfence.services.accounts import AuthContext
from ringfence.services.calls.admission import CallAdmission, StartedCall
from ringfence.services.calls.budget import CallBudget
from ringfence.services.calls.deadlines import DeadlineSweeper
from ringfence.services.calls.records import CallHistoryEntry, CallRecords
from ringfence.services.calls.signaling import CallNotifier, Device, Signaling
from ringfence.services.calls.store import CallStore
from ringfence.services.errors import Conflict, NotFound
from ringfence.services.messaging import Messaging
from ringfence.services.ratelimit import RateLimiter
from ringfence.services.stream import EventStream
from ringfence.storage.database import Database
from ringfence.turn.credentials import TurnCredentialIssuer
from ringfence.wire.calls import ClientCallFrame, RejectFrame

__all__ = ["CallError", "CallHistoryEntry", "CallNotifier", "Calls", "Device", "StartedCall"]


class Calls:
    """Every part of calling, built over one call store."""

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
        notifier: CallNotifier | None = None,
    ) -> None:
        budget = CallBudget(limiter=limiter, turn=turn, settings=settings)
        self.records = CallRecords(db=db, messaging=messaging)
        self.admission = CallAdmission(
            db=db, store=store, budget=budget, clock=clock, settings=settings
        )
        self.signaling = Signaling(
            db=db,
            stream=stream,
            store=store,
            presence=presence,
            budget=budget,
            records=self.records,
            relay_addresses=relay_addresses,
            clock=clock,
            settings=settings,
            liveness_check_s=liveness_check_s,
            notifier=notifier,
        )
        self.sweeper = DeadlineSweeper(
            store=store, fire=self.signaling.fire, clock=clock, interval_s=sweep_interval_s
        )

    @property
    def store(self) -> CallStore:
        return self.signaling.store

    @store.setter
    def store(self, store: CallStore) -> None:
        """Use another call store from now on (tests wrap the real one to interleave
        writers)."""
        self.admission.store = self.signaling.store = self.sweeper.store = store

    async def start(self, auth: AuthContext, to: str, media: str) -> StartedCall:
        return await self.admission.start(auth, to, media)

    async def history(
        self, auth: AuthContext, *, before: int | None, limit: int
    ) -> list[CallHistoryEntry]:
        return await self.records.history(auth, before=before, limit=limit)

    async def handle(self, device: Device, frame: ClientCallFrame) -> None:
        await self.signaling.handle(device, frame)

    async def decline(self, auth: AuthContext, call_id: str) -> None:
        """Decline a call ringing for ``auth``'s user without a socket: the Decline of a
        notification a service worker shows. The same rules as call.reject (only the
        callee, only while it rings); not a participant reads as no such call."""
        device = Device(user=auth.user, device_id="notification")
        try:
            await self.signaling.handle(device, RejectFrame(call_id=call_id))
        except CallError as exc:
            if exc.code == "call_not_found":
                raise NotFound("call_not_found", "no such call") from None
            raise Conflict(exc.code, exc.detail) from None

    async def device_connected(self, device: Device) -> None:
        await self.signaling.device_connected(device)

    async def device_disconnected(self, device: Device) -> None:
        await self.signaling.device_disconnected(device)

    async def direct_connections_changed(self, user_id: int) -> None:
        await self.signaling.direct_connections_changed(user_id)

    def start_sweeper(self) -> None:
        self.sweeper.start()

    async def sweep(self) -> int:
        return await self.sweeper.sweep()

    async def close(self) -> None:
        await self.sweeper.close()
