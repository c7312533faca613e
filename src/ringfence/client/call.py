"""1:1 WebRTC calls from Python, with aiortc, over Ringfence's signaling.

Two rules shape this module:

- **The server decides the ICE configuration.** Every peer connection is built from
  exactly the ``ice_servers`` and ``ice_transport_policy`` the server handed out (never
  aiortc's default public STUN server), so a relayed user's address never leaves the
  TURN relay.
- **A ringing callee reveals nothing.** An :class:`IncomingCall` holds the offer but
  creates no peer connection, gathers no candidate and sends no SDP until
  :meth:`IncomingCall.accept`.

Call state is an explicit machine (:class:`CallState`) with one transition method that
refuses illegal moves. The peer connection itself is built and checked in
:mod:`ringfence.client.peer`, and a mid-call switch between relayed and direct (which
also restarts a dropped connection) is run by :mod:`ringfence.client.switch`; this
module keeps the call: its states, its signaling and teardown; timing the connection
and restarting a dropped one is :mod:`ringfence.client.call_health`'s. Every
sentence a call reports (an end's detail, say) comes from
:mod:`ringfence.client.call_text`. SDP and candidates are kept for introspection
(``local_sdp``, ``remote_sdp``, ``remote_candidates``) but never logged.

Failing fast and honestly: a call whose relay cannot be reached fails within
``RELAY_GATHER_TIMEOUT_S`` with an error that says so, rather than waiting for a media
timeout; once media connects, the server is told (``call.connected``) so that only a
call that really connected is recorded as a conversation; and a connection that drops
mid-call is restarted through the relay (see :mod:`ringfence.client.call_health`)
before the call is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Literal, NoReturn

from aiortc import RTCIceCandidate
from aiortc.mediastreams import MediaStreamTrack

from ringfence.calls.verification import verification_code
from ringfence.client import call_text as text
from ringfence.client.api import IceServer, Media, RingfenceClient
from ringfence.client.call_health import CallHealth
from ringfence.client.call_types import CallEnded as CallEnded
from ringfence.client.call_types import CandidateInfo as CandidateInfo
from ringfence.client.call_types import SelectedPair as SelectedPair
from ringfence.client.call_types import StateChange as StateChange
from ringfence.client.call_types import TransportSwitchFailed as TransportSwitchFailed
from ringfence.client.events import Event, EventStream, EventStreamClosed, Subscription
from ringfence.client.media import DiscardSink, MediaSink
from ringfence.client.peer import RELAY_GATHER_TIMEOUT_S as RELAY_GATHER_TIMEOUT_S
from ringfence.client.peer import LocalMedia, PeerConnection, gathering_problem, parse_candidate
from ringfence.client.peer import Policy as Policy
from ringfence.client.peer import rtc_configuration as rtc_configuration
from ringfence.client.switch import REOFFER_WAIT_S as REOFFER_WAIT_S
from ringfence.client.switch import SwitchController
from ringfence.wire.call_states import IN_CALL, TRANSITIONS
from ringfence.wire.call_states import CallState as CallState  # re-exported: the API
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
    ClientCallFrame,
    CodecError,
    HangupFrame,
    IceCandidate,
    OfferFrame,
    RejectFrame,
    Transport,
    parse_server_frame,
)
from ringfence.wire.calls import IceServer as IceServerFrame

__all__ = [
    "Call",
    "CallEnded",
    "CallState",
    "CandidateInfo",
    "IncomingCall",
    "OutgoingCall",
    "SelectedPair",
    "StateChange",
    "TransportSwitchFailed",
    "place_call",
    "wait_for_incoming",
]

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 5.0
# How long the end of a call waits for its connections to close (see Call._finish).
CLOSE_WAIT_S = 2.0


class Call:
    """What both directions share: signaling, the peer connection, state and teardown.

    Tracks handed to the call are stopped when it ends; the sink is stopped too, so a
    recording is complete once :meth:`wait_ended` returns.
    """

    direction: Literal["outgoing", "incoming"]

    def __init__(
        self,
        events: EventStream,
        *,
        call_id: str,
        peer: str,
        media: Media,
        ice_servers: Sequence[IceServer],
        ice_transport_policy: Policy,
        initial: CallState,
        connect_timeout_s: float,
    ) -> None:
        self.call_id = call_id
        self.peer = peer
        self.media = media
        self.ice_servers = list(ice_servers)
        self.ice_transport_policy: Policy = ice_transport_policy
        self.local_sdp: str | None = None
        self.remote_sdp: str | None = None
        self.remote_candidates: list[str] = []
        self._events = events
        self._connect_timeout_s = connect_timeout_s
        self._changes = [StateChange(initial)]
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        # The connection carrying the call (replaced by a switch), and the other
        # side's candidates that came before it existed.
        self._connection: PeerConnection | None = None
        self._early: list[RTCIceCandidate] = []
        self._local = LocalMedia()
        self._sink: MediaSink = DiscardSink()
        self._background: set[asyncio.Future[None]] = set()
        self._sub: Subscription = events.subscribe_call(call_id)
        # Whether both users' settings allow switching this call to direct (the server
        # says so with the answer, the ring and every switch).
        self.direct_allowed = False
        # The other person's microphone and camera (call.media), on until they say not.
        self.peer_audio = True
        self.peer_video = media == "video"
        # The connection that replaces this one during a switch, until it connects.
        side = _CallSide(self)
        self._switch = SwitchController(side)
        # Connecting in time, and restarting a dropped connection.
        self._health = CallHealth(side)
        self._pump = asyncio.get_running_loop().create_task(
            self._read_signaling(), name=f"call-{call_id[:8]}"
        )

    @property
    def restarts(self) -> int:
        """How many times the connection dropped mid-call and was restarted."""
        return self._health.restarts

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id} {self.peer} {self.state}>"

    # --- state ----------------------------------------------------------------------

    @property
    def state(self) -> CallState:
        return self._changes[-1].state

    @property
    def changes(self) -> tuple[StateChange, ...]:
        """Every state so far, oldest first."""
        return tuple(self._changes)

    @property
    def end_reason(self) -> str | None:
        return self._changes[-1].reason

    @property
    def end_detail(self) -> str | None:
        return self._changes[-1].detail

    def _transition(
        self, new: CallState, reason: str | None = None, detail: str | None = None
    ) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"call {self.call_id}: illegal transition {old} -> {new}")
        log.info("call %s: %s -> %s%s", self.call_id, old, new, f" ({reason})" if reason else "")
        self._changes.append(StateChange(new, reason, detail))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def state_changes(self) -> AsyncIterator[StateChange]:
        """Every state the call has been and goes through, from the first, ending with
        ``ended``."""
        index = 0
        while True:
            changed = self._changed
            while index < len(self._changes):
                change = self._changes[index]
                index += 1
                yield change
                if change.state is CallState.ENDED:
                    return
            await changed.wait()

    async def wait_connected(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the common case, kept short
    ) -> None:
        """Return once media flows (again, if the call is reconnecting); raise
        :class:`CallEnded` if the call ends first."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                if self.state is CallState.CONNECTED:
                    return
                if self.state is CallState.ENDED:
                    raise CallEnded(self.end_reason or "failed", self.end_detail)
                await changed.wait()

    async def wait_ended(self) -> str:
        """Wait for the end and for teardown (recordings closed); returns the reason."""
        await self._done.wait()
        return self.end_reason or "failed"

    # --- introspection ----------------------------------------------------------------

    @property
    def verification_code(self) -> tuple[str, ...] | None:
        """Five words to read to the other person once both descriptions are known.

        Derived from the DTLS fingerprints as this side saw them, so a signaling server
        that swapped them to sit in the middle makes the two sides' words differ.
        """
        if self.local_sdp is None or self.remote_sdp is None:
            return None
        return verification_code(self.call_id, self.local_sdp, self.remote_sdp)

    def selected_candidate_pair(self) -> SelectedPair | None:
        """The nominated ICE pair of the (bundled) transport, or None before ICE
        has completed or after teardown."""
        if self._connection is None:
            return None
        return self._connection.selected_pair()

    # --- ending -----------------------------------------------------------------------

    async def hangup(self) -> str:
        """End the call (a ringing outgoing call is cancelled, a ringing incoming one
        rejected). Returns the end reason once teardown is complete."""
        if self.state is not CallState.ENDED:
            await self._ask_server_to_end(HangupFrame(call_id=self.call_id), "hangup")
        return await self.wait_ended()

    async def _ask_server_to_end(self, frame: ClientCallFrame, fallback: str) -> None:
        """Send the frame and let the server's ``call.ended`` end the call, so both
        sides agree on the reason; end locally if the server stays silent."""
        try:
            await self._send(frame)
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                await self._done.wait()
        except (EventStreamClosed, TimeoutError):
            await self._finish(fallback, text.SERVER_SILENT_AT_END)

    async def _fail(self, detail: str) -> None:
        """A local failure: tell the server (best effort), then tear down."""
        if self.state is CallState.ENDED:
            return
        with contextlib.suppress(EventStreamClosed, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._send(HangupFrame(call_id=self.call_id))
        await self._finish("failed", detail)

    async def _finish(self, reason: str, detail: str | None = None) -> None:
        if self.state is CallState.ENDED:
            await self._done.wait()
            return
        self._transition(CallState.ENDED, reason, detail)
        self._sub.close()
        current = asyncio.current_task()
        if self._pump is not current and not self._pump.done():
            self._pump.cancel()
        self._health.stop()
        self._switch.settle(TransportSwitchFailed("call_state", text.call_ended(reason)))
        try:
            # The replacement of an unfinished switch first, then the call's own.
            closing: list[asyncio.Future[None]] = []
            if (replacement := self._switch.drop()) is not None:
                closing.append(replacement)
            if self._connection is not None:
                closing.append(self._close_later(self._connection))
            # Closing deletes the relay allocation, and aioice retries that for about a
            # minute when the relay is gone: a call that failed because of its relay
            # must not take that long to end. The rest finishes in the background (and
            # the relay frees the allocation when it expires).
            if closing:  # a ringing call that was never answered has none
                await asyncio.wait(closing, timeout=CLOSE_WAIT_S)
            self._local.stop()
            await self._sink.stop()
        finally:
            self._done.set()

    async def close(self) -> None:
        """Release everything without telling the server (e.g. an ignored call)."""
        await self._finish("failed", text.CLOSED_LOCALLY)

    # --- signaling --------------------------------------------------------------------

    async def _send(self, frame: ClientCallFrame) -> None:
        await self._events.send(frame.model_dump(mode="json", by_alias=True))

    async def _read_signaling(self) -> None:
        try:
            async for event in self._sub:
                await self._on_event(event)
            if self.state is not CallState.ENDED:  # the stream was closed by its owner
                await self._finish("failed", text.EVENT_STREAM_CLOSED)
        except EventStreamClosed as exc:
            await self._finish("failed", text.lost_server(exc.reason))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("call %s: signaling failed", self.call_id)
            await self._fail(text.signaling_error(exc))

    async def _on_event(self, event: Event) -> None:
        if event.get("type") == "error":
            await self._on_error(str(event.get("error")), str(event.get("detail", "")))
            return
        try:
            frame = parse_server_frame(event)
        except CodecError as exc:
            log.warning(
                "call %s: ignoring a malformed %s frame (%s)",
                self.call_id,
                event.get("type"),
                exc.detail,
            )
            return
        if isinstance(frame, CallEndedFrame):
            await self._finish(frame.reason)
        elif isinstance(frame, CallCandidateFrame):
            await self._on_candidate(frame.candidate)
        elif isinstance(frame, CallAnswerFrame):
            if self.state is CallState.RINGING:  # outgoing: the answer to our offer
                self.direct_allowed = frame.direct_allowed
            await self._on_answer(frame.sdp)
        elif isinstance(frame, CallIncomingFrame):
            self._on_ring_again(frame)
        elif isinstance(frame, CallTransportFrame):
            await self._on_transport(frame)
        elif isinstance(frame, CallReofferFrame):
            await self._switch.on_reoffer(frame.sdp)
        elif isinstance(frame, CallReanswerFrame):
            await self._switch.on_reanswer(frame.sdp)
        elif isinstance(frame, CallMediaFrame):
            # The other person's microphone and camera, as they last said.
            self.peer_audio, self.peer_video = frame.audio, frame.video

    async def _on_error(self, code: str, detail: str) -> None:
        if await self._health.on_refused(code):
            return  # this side's restart of a dropped connection
        if self._switch.refused(code, detail):
            return  # the switch this side asked for; the call goes on as is
        # Before media flows, a refused offer/answer leaves nothing to continue with.
        # Once connected, a refused frame (a stray candidate) does not hurt the call.
        if self.state in (CallState.NEW, CallState.RINGING, CallState.CONNECTING):
            await self._fail(text.server_refused(code, detail))
        else:
            log.info("call %s: server error %s", self.call_id, code)

    async def _on_answer(self, sdp: str) -> None:
        log.info("call %s: ignoring an unexpected answer", self.call_id)

    # --- switching between relayed and direct mid-call (see client/switch.py) --------

    async def switch_transport(self, transport: Transport, *, timeout_s: float = 30.0) -> None:
        """Move the connected call to the relay (``"relay"``), hiding both addresses
        from now on, or back to a direct connection (``"direct"``, allowed only when
        both users' settings allow it: see :attr:`direct_allowed`), without hanging up.

        The server decides and re-checks the settings; this side then sets up a new
        connection under the new policy (same DTLS certificate, so the verification
        words stay the same) and returns once media flows over it. Raises
        :class:`TransportSwitchFailed` when the server refuses (the call goes on
        unchanged) or the restart fails (the call ends, rather than carrying on over a
        path the user asked to leave).
        """
        await self._switch.request(transport, timeout_s)

    async def _on_transport(self, frame: CallTransportFrame) -> None:
        """The server switched the call: take the new policy and credentials, and let
        the switch offer the connection that replaces this one (on the asking device)."""
        if self.state not in IN_CALL or self._connection is None:
            log.info("call %s: ignoring a transport switch in state %s", self.call_id, self.state)
            return
        self.ice_servers = [_ice_server(server) for server in frame.ice_servers]
        self.ice_transport_policy = frame.ice_transport_policy
        self.direct_allowed = frame.direct_allowed
        self._health.transport_arrived()
        await self._switch.on_transport(frame.transport, restart=frame.restart)

    def _adopt(self, connection: PeerConnection, tracks: list[MediaStreamTrack]) -> None:
        """A switch's new connection carries media: the call moves to it, the old one
        closes (and a call that was reconnecting is connected again)."""
        old, self._connection = self._connection, connection
        self.local_sdp = connection.local_sdp
        self.remote_sdp = connection.remote_sdp
        for track in tracks:
            self._sink.add_track(track)  # the sink moves over to the new tracks
        if old is not None:
            # Not awaited: after a network change the old relay allocation may be out
            # of reach, and deleting it would hold the call up for a minute.
            self._close_later(old)
        self._health.adopted()

    def _close_later(self, connection: PeerConnection) -> asyncio.Future[None]:
        """Close ``connection`` without waiting for it (see :meth:`_finish`)."""
        return self._spawn(connection.close())

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _on_ring_again(self, frame: CallIncomingFrame) -> None:
        pass

    async def _on_candidate(self, candidate: IceCandidate) -> None:
        self.remote_candidates.append(candidate.candidate)
        try:
            parsed = parse_candidate(
                candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index
            )
        except ValueError:
            log.info("call %s: ignoring an unparseable remote candidate", self.call_id)
            return
        if parsed is None:
            return  # end-of-candidates: aiortc learns that from the SDP already
        if await self._switch.add_candidate(parsed):
            return  # the switch's new connection takes it
        if self._connection is None:
            self._early.append(parsed)  # applied once there is a connection
        else:
            await self._connection.add_candidate(parsed)

    # --- media ------------------------------------------------------------------------

    def _peer_connection(self, sink: MediaSink | None) -> PeerConnection:
        if sink is not None:
            self._sink = sink
        connection = PeerConnection(
            self.ice_servers,
            self.ice_transport_policy,
            on_track=self._on_track,
            on_state=self._on_state,
        )
        connection.hold(self._early)
        self._early = []
        self._connection = connection
        return connection

    def _on_track(self, connection: PeerConnection, track: MediaStreamTrack) -> None:
        self._sink.add_track(track)

    def _on_state(self, connection: PeerConnection, state: str) -> None:
        if connection is self._connection:  # not a connection a switch has replaced
            self._spawn(self._health.on_connection_state(state))

    def _still(self, state: CallState) -> bool:
        """Whether the call is in ``state`` now: a method, so that the type checker does
        not assume the state unchanged across an await."""
        return self.state is state

    async def _abandon(self, exc: Exception, what: str) -> NoReturn:
        """Setting up failed: end the call (unless it already ended, which is usually
        why) and raise :class:`CallEnded`."""
        if self.state is not CallState.ENDED:
            detail = exc.detail if isinstance(exc, CallEnded) else None
            await self._fail(detail or text.setup_failed(what, exc))
        await self.wait_ended()
        raise CallEnded(self.end_reason or "failed", self.end_detail) from exc


class _CallSide:
    """The call as its switch controller and its health see it (:class:`SwitchHost`,
    :class:`HealthHost`): what they may read and do, and nothing else."""

    def __init__(self, call: Call) -> None:
        self._call = call

    @property
    def call_id(self) -> str:
        return self._call.call_id

    @property
    def direction(self) -> Literal["outgoing", "incoming"]:
        return self._call.direction

    @property
    def state(self) -> CallState:
        return self._call.state

    def transition(self, state: CallState, detail: str | None = None) -> None:
        self._call._transition(state, detail=detail)

    def switch_in_flight(self) -> bool:
        return self._call._switch.in_flight()

    def switch_replacing(self) -> bool:
        return self._call._switch.replacing

    @property
    def ice_servers(self) -> Sequence[IceServer]:
        return self._call.ice_servers

    @property
    def ice_transport_policy(self) -> Policy:
        return self._call.ice_transport_policy

    @property
    def connection(self) -> PeerConnection | None:
        return self._call._connection

    @property
    def local_media(self) -> LocalMedia:
        return self._call._local

    @property
    def connect_timeout_s(self) -> float:
        return self._call._connect_timeout_s

    async def send(self, frame: ClientCallFrame) -> None:
        await self._call._send(frame)

    def spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Future[None]:
        return self._call._spawn(coro)

    def adopt(self, connection: PeerConnection, tracks: list[MediaStreamTrack]) -> None:
        self._call._adopt(connection, tracks)

    async def fail(self, detail: str) -> None:
        await self._call._fail(detail)


class OutgoingCall(Call):
    """A call this client placed. Create it with :func:`place_call`."""

    direction: Literal["outgoing", "incoming"] = "outgoing"

    async def _offer(self, tracks: Sequence[MediaStreamTrack], sink: MediaSink | None) -> None:
        self._local.tracks = list(tracks)
        connection = self._peer_connection(sink)
        connection.add_media(
            self._local, receive=["audio", "video"] if self.media == "video" else ["audio"]
        )
        try:
            # aiortc gathers every candidate before returning: the SDP is complete.
            sdp = await connection.make_offer()
            connection.check_gathered(sdp)
        except Exception as exc:
            await self._abandon(exc, text.MAKING_OFFER)
        if self.state is CallState.ENDED:  # e.g. the server gave up waiting for the offer
            raise CallEnded(self.end_reason or "failed", self.end_detail)
        self.local_sdp = sdp
        # Ringing from the moment the offer leaves: the server may answer at once.
        self._transition(CallState.RINGING)
        try:
            await self._send(OfferFrame(call_id=self.call_id, sdp=sdp))
        except Exception as exc:
            await self._abandon(exc, text.SENDING_OFFER)

    async def _on_answer(self, sdp: str) -> None:
        connection = self._connection
        if self.state is not CallState.RINGING or connection is None:
            log.info("call %s: ignoring an answer in state %s", self.call_id, self.state)
            return
        self.remote_sdp = sdp
        self._transition(CallState.CONNECTING)
        self._health.start_connect_timer()
        await connection.take_answer(sdp)
        await connection.release_candidates()


class IncomingCall(Call):
    """A call ringing on this device. Nothing is sent and no network activity happens
    for it until :meth:`accept`."""

    direction: Literal["outgoing", "incoming"] = "incoming"

    def __init__(
        self, events: EventStream, frame: CallIncomingFrame, *, connect_timeout_s: float
    ) -> None:
        super().__init__(
            events,
            call_id=frame.call_id,
            peer=frame.caller.username,
            media=frame.media,
            ice_servers=[_ice_server(server) for server in frame.ice_servers],
            ice_transport_policy=frame.ice_transport_policy,
            initial=CallState.INCOMING,
            connect_timeout_s=connect_timeout_s,
        )
        self.caller = frame.caller
        self.remote_sdp = frame.sdp
        self.direct_allowed = frame.direct_allowed

    def _on_ring_again(self, frame: CallIncomingFrame) -> None:
        # The server rings a device again after it reconnects, with fresh credentials.
        if self.state is CallState.INCOMING:
            self.ice_servers = [_ice_server(server) for server in frame.ice_servers]
            self.ice_transport_policy = frame.ice_transport_policy

    async def accept(
        self, tracks: Sequence[MediaStreamTrack] = (), sink: MediaSink | None = None
    ) -> None:
        """Answer: only now is a peer connection created and are candidates gathered.
        Raises :class:`CallEnded` if the call ended (or was answered elsewhere) first."""
        if self.state is not CallState.INCOMING:
            for track in tracks:
                track.stop()
            raise CallEnded(self.end_reason or "failed", text.NO_LONGER_RINGING)
        assert self.remote_sdp is not None
        self._transition(CallState.ACCEPTING)
        self._local.tracks = list(tracks)
        connection = self._peer_connection(sink)
        try:
            for unsent in await connection.take_offer(self.remote_sdp, self._local):
                unsent.stop()
            sdp = await connection.make_answer()
        except Exception as exc:
            await self._abandon(exc, text.ANSWERING)
        if not self._still(CallState.ACCEPTING):  # ended while we were gathering
            await self.wait_ended()
            raise CallEnded(self.end_reason or "failed", text.ENDED_WHILE_ANSWERING)
        problem = gathering_problem(sdp, connection.policy)
        self.local_sdp = sdp
        self._transition(CallState.CONNECTING)
        self._health.start_connect_timer()
        try:
            # The user accepted, so the answer goes out even when no usable candidate
            # was gathered (then it carries no network information at all): the call is
            # recorded as answered but not connected, rather than as declined.
            await self._send(AnswerFrame(call_id=self.call_id, sdp=sdp))
            if problem is not None:
                raise CallEnded("failed", problem)
            await connection.release_candidates()
        except Exception as exc:
            await self._abandon(exc, text.SENDING_ANSWER)

    async def reject(self) -> str:
        """Decline a ringing call; returns the end reason (``rejected``)."""
        if self.state is CallState.INCOMING:
            await self._ask_server_to_end(RejectFrame(call_id=self.call_id), "rejected")
        return await self.wait_ended()


def _ice_server(server: IceServerFrame) -> IceServer:
    entry: IceServer = {"urls": list(server.urls)}
    if server.username is not None:
        entry["username"] = server.username
    if server.credential is not None:
        entry["credential"] = server.credential
    return entry


async def place_call(
    client: RingfenceClient,
    events: EventStream,
    username: str,
    *,
    media: Media = "audio",
    tracks: Sequence[MediaStreamTrack] = (),
    sink: MediaSink | None = None,
    connect_timeout_s: float = 30.0,
) -> OutgoingCall:
    """Start a call to ``username`` and send the offer; the returned call is ringing.

    Raises :class:`~ringfence.client.api.RingfenceError` if the server refuses (403
    ``call_not_allowed`` for any reason, 429 when rate limited) and :class:`CallEnded`
    if no offer could be made. ``events`` must be connected.
    """
    started = await client.start_call(username, media)
    call = OutgoingCall(
        events,
        call_id=started["call_id"],
        peer=username,
        media=media,
        ice_servers=started["ice_servers"],
        ice_transport_policy=started["ice_transport_policy"],
        initial=CallState.NEW,
        connect_timeout_s=connect_timeout_s,
    )
    try:
        await call._offer(tracks, sink)
    except asyncio.CancelledError:
        # Never leave a call ringing behind a cancelled caller.
        await asyncio.shield(call._fail(text.CANCELLED_WHILE_CALLING))
        raise
    return call


async def wait_for_incoming(
    events: EventStream,
    *,
    from_user: str | None = None,
    connect_timeout_s: float = 30.0,
) -> IncomingCall:
    """The next call ringing on this device (only from ``from_user``, if given; calls
    from others are left ringing for the user's other devices, not rejected). Bound
    the wait with ``asyncio.timeout``."""
    while True:
        event = await events.next_event("call.incoming", timeout=None)
        try:
            frame = parse_server_frame(event)
        except CodecError as exc:
            log.warning("ignoring a malformed call.incoming (%s)", exc.detail)
            continue
        if not isinstance(frame, CallIncomingFrame):
            continue
        if from_user is not None and frame.caller.username != from_user:
            continue
        call = IncomingCall(events, frame, connect_timeout_s=connect_timeout_s)
        if call._sub.has(lambda e: e.get("type") == "call.ended"):
            await call.close()  # it stopped ringing before we looked
            continue
        return call
