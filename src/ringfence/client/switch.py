"""Moving a connected call between the relay and a direct connection without hanging up.

A switch replaces the peer connection. An ICE restart of the running one is not
enough: Chromium keeps a working direct pair and never checks the new relay pairs that
rank below it, so the call would stay direct (docs/security.md). The device that asked
builds a second connection under the new policy, with the same DTLS certificate (so
the same fingerprints and verification words), and offers it as call.reoffer; the other
device answers with a second connection of its own. Media moves over once it connects,
and the old connection - and its path - is closed.

The same mechanism restarts a connection that dropped mid-call (the call asks for the
relay again), so :class:`SwitchController` serves both; the call decides when to ask.
It sees its call only through :class:`SwitchHost`, never its internals, so the rules of
a switch can be read (and changed) here alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Protocol

from aiortc import RTCIceCandidate
from aiortc.mediastreams import MediaStreamTrack

from ringfence.client import call_text as text
from ringfence.client.api import IceServer
from ringfence.client.call_types import CallEnded, TransportSwitchFailed
from ringfence.client.peer import LocalMedia, PeerConnection, Policy
from ringfence.wire.call_states import IN_CALL, CallState
from ringfence.wire.calls import (
    ClientCallFrame,
    ReanswerFrame,
    ReofferFrame,
    Transport,
    TransportFrame,
)

__all__ = ["REOFFER_WAIT_S", "SWITCH_REFUSALS", "SwitchController", "SwitchHost"]

log = logging.getLogger(__name__)

# How long the offer of a switch the other side asked for may take to arrive.
REOFFER_WAIT_S = 10.0
# The server's refusals of a switch (or of a restart, which asks for one).
SWITCH_REFUSALS = frozenset({"direct_not_allowed", "call_state", "call_rate_limited"})


class SwitchHost(Protocol):
    """What a switch needs of its call."""

    @property
    def call_id(self) -> str: ...

    @property
    def state(self) -> CallState: ...

    @property
    def ice_servers(self) -> Sequence[IceServer]:
        """The ICE servers of the switch the server made (a replacement uses them)."""

    @property
    def ice_transport_policy(self) -> Policy: ...

    @property
    def connection(self) -> PeerConnection | None:
        """The connection carrying the call now."""

    @property
    def local_media(self) -> LocalMedia: ...

    @property
    def connect_timeout_s(self) -> float:
        """How long a replacement may take to connect."""

    async def send(self, frame: ClientCallFrame) -> None: ...

    def spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Future[None]:
        """Run ``coro`` in the background for as long as it takes."""

    def adopt(self, connection: PeerConnection, tracks: list[MediaStreamTrack]) -> None:
        """The replacement carries media now (its remote ``tracks`` with it): the call
        moves to it and closes the old connection."""

    async def fail(self, detail: str) -> None:
        """End the call as failed."""


class SwitchController:
    """The replacement connection of one call, from the server's switch until the
    replacement carries media (it is adopted) or fails (the call ends)."""

    def __init__(self, host: SwitchHost) -> None:
        self._host = host
        self._next: PeerConnection | None = None
        self._next_tracks: list[MediaStreamTrack] = []
        self._waiter: asyncio.Future[None] | None = None
        self._transport: Transport | None = None
        self._awaiting_reoffer: float | None = None  # since when (loop time)

    @property
    def replacing(self) -> bool:
        """A replacement connection is being set up."""
        return self._next is not None

    def in_flight(self) -> bool:
        """A switch is under way, asked for by either side."""
        return (
            self._next is not None
            or (
                # The other side's offer may never come (its new connection failed
                # first): after a while this side may restart the call itself.
                self._awaiting_reoffer is not None
                and asyncio.get_running_loop().time() - self._awaiting_reoffer < REOFFER_WAIT_S
            )
            or self._waiter is not None
        )

    # --- the switch this side asks for --------------------------------------------------

    async def request(self, transport: Transport, timeout_s: float) -> None:
        """Ask the server to switch, and return once media flows over the replacement
        (see :meth:`Call.switch_transport`)."""
        host = self._host
        if host.state is CallState.RECONNECTING:
            raise TransportSwitchFailed("call_state", text.SWITCH_WHILE_RECONNECTING)
        if host.state is not CallState.CONNECTED or host.connection is None:
            raise TransportSwitchFailed("call_state", text.SWITCH_NOT_CONNECTED)
        if self._waiter is not None or self._next is not None:
            raise TransportSwitchFailed("call_state", text.SWITCH_UNDER_WAY)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await host.send(TransportFrame(call_id=host.call_id, transport=transport))
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(waiter)
        except TimeoutError:
            await host.fail(text.switch_not_completed(transport))
            raise TransportSwitchFailed("failed", text.SWITCH_TIMED_OUT) from None
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def settle(self, error: TransportSwitchFailed | None = None) -> None:
        """End the wait of :meth:`request`, if any: done, or failed with ``error``."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def refused(self, code: str, detail: str) -> bool:
        """Whether the server's error is its refusal of the switch this side asked for;
        if so, the wait fails and the call goes on as is."""
        if (
            self._waiter is not None
            and self._next is None
            and code in SWITCH_REFUSALS
            and self._host.state is CallState.CONNECTED
        ):
            self.settle(TransportSwitchFailed(code, detail))
            return True
        return False

    # --- the server's frames --------------------------------------------------------------

    async def on_transport(self, transport: Transport, *, restart: bool) -> None:
        """The server switched the call (the host already took the new policy and
        credentials): on the device that offers (``restart``), offer the replacement."""
        self._transport = transport
        if not restart:
            self._awaiting_reoffer = asyncio.get_running_loop().time()
            return  # the other device makes the offer
        try:
            current = self._host.connection
            assert current is not None
            connection = self._start()
            # Receive what the call receives now, whatever this side sends.
            connection.add_media(self._host.local_media, receive=current.receiving())
            sdp = await connection.make_offer()
            connection.check_gathered(sdp)
            if connection is not self._next:
                return  # replaced or ended meanwhile
            await self._host.send(ReofferFrame(call_id=self._host.call_id, sdp=sdp))
        except Exception as exc:
            await self._failed(exc)
            return
        log.info("call %s: offered a %s connection", self._host.call_id, transport)

    async def on_reoffer(self, sdp: str) -> None:
        host = self._host
        if host.state not in IN_CALL or host.connection is None:
            log.info("call %s: ignoring a switch offer in state %s", host.call_id, host.state)
            return
        self._awaiting_reoffer = None
        try:
            connection = self._start()
            await connection.take_offer(sdp, host.local_media)
            answer = await connection.make_answer()
            connection.check_gathered(answer)
            if connection is not self._next:
                return
            await host.send(ReanswerFrame(call_id=host.call_id, sdp=answer))
            await connection.release_candidates()
        except Exception as exc:
            await self._failed(exc)

    async def on_reanswer(self, sdp: str) -> None:
        connection = self._next
        if self._host.state not in IN_CALL or connection is None:
            log.info("call %s: ignoring an unexpected switch answer", self._host.call_id)
            return
        try:
            await connection.take_answer(sdp)
            await connection.release_candidates()
        except Exception as exc:
            await self._failed(exc)

    async def add_candidate(self, candidate: RTCIceCandidate) -> bool:
        """During a switch, the other side's candidates are its new connection's: take
        them (True), or leave them to the current connection (False)."""
        if self._next is None:
            return False
        await self._next.add_candidate(candidate)
        return True

    # --- the replacement ------------------------------------------------------------------

    def _start(self) -> PeerConnection:
        """A second connection under the new policy, sharing the current one's DTLS
        certificate, that takes over the call once it connects."""
        host = self._host
        assert host.connection is not None
        self.drop()  # an unfinished earlier switch gives way
        connection = PeerConnection(
            host.ice_servers,
            host.ice_transport_policy,
            on_track=self._on_track,
            on_state=self._on_state,
            certificate_of=host.connection,
        )
        self._next = connection
        self._next_tracks = []
        host.spawn(self._expire(connection))
        return connection

    def _on_track(self, connection: PeerConnection, track: MediaStreamTrack) -> None:
        if connection is self._next:
            self._next_tracks.append(track)

    def _on_state(self, connection: PeerConnection, state: str) -> None:
        if connection is not self._next:
            return
        if state == "connected":
            self._host.spawn(self._promote(connection))
        elif state == "failed":
            self._host.spawn(self._failed(ConnectionError(text.NEW_CONNECTION_FAILED)))

    async def _expire(self, connection: PeerConnection) -> None:
        await asyncio.sleep(self._host.connect_timeout_s)
        if connection is self._next:
            await self._failed(TimeoutError(text.NEW_CONNECTION_DID_NOT_CONNECT))

    async def _promote(self, connection: PeerConnection) -> None:
        """The replacement carries media: the call moves to it."""
        if connection is not self._next or self._host.state not in IN_CALL:
            return
        self._next = None
        tracks, self._next_tracks = self._next_tracks, []
        self._host.adopt(connection, tracks)
        log.info("call %s: now %s", self._host.call_id, self._transport)
        self.settle()

    def drop(self) -> asyncio.Future[None] | None:
        """Give up the replacement, if any; returns its closing (not awaited: see
        :meth:`Call._finish`)."""
        connection, self._next = self._next, None
        self._next_tracks = []
        if connection is None:
            return None
        return self._host.spawn(connection.close())

    async def _failed(self, exc: BaseException) -> None:
        """A switch that cannot complete ends the call rather than leaving it on a path
        the user asked to leave; so does a restart of a dropped connection that fails
        (it was the last try)."""
        host = self._host
        if host.state is CallState.ENDED:
            return
        why = (exc.detail if isinstance(exc, CallEnded) else str(exc)) or type(exc).__name__
        if host.state is CallState.RECONNECTING:
            detail = text.restart_failed(why)
        else:
            detail = text.switch_failed(why)
        self.settle(TransportSwitchFailed("failed", detail))
        await host.fail(detail)
