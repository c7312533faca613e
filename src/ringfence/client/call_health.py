"""A call's connection over time: connecting in time, and restarting a dropped one.

aiortc reports a dead path only when ICE consent expires (about 30 s), so a connected
call watches what it receives instead: nothing for ``DROP_AFTER_S`` means the path is
gone (a network change, a relay hiccup). The call is then restarted through the relay
with the mechanism of a transport switch (:mod:`ringfence.client.switch`): the server
hands both devices fresh relay credentials, and a new connection with the same DTLS
certificate replaces the dead one. Only if that fails too does the call end.

:class:`CallHealth` decides when; it acts on the call only through
:class:`HealthHost`. Its sentences come from :mod:`ringfence.client.call_text`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Literal, Protocol

from ringfence.client import call_text as text
from ringfence.client.events import EventStreamClosed
from ringfence.client.peer import PeerConnection
from ringfence.client.switch import SWITCH_REFUSALS
from ringfence.wire.call_states import IN_CALL, CallState
from ringfence.wire.calls import ClientCallFrame, ConnectedFrame, TransportFrame

log = logging.getLogger(__name__)

# Mid-call, how often the connection's received packets are read, and how long nothing
# may arrive before the connection counts as dropped. Both clients send RTP (or at
# least RTCP receiver reports) every second or so, so 4 s of silence is not a pause.
MEDIA_CHECK_S = 1.0
DROP_AFTER_S = 4.0
# The callee waits this much longer than the caller before restarting a dropped
# connection itself, so that usually only one side asks the server for the restart.
CALLEE_RESTART_DELAY_S = 2.0
# A restart through the relay that has not carried the call within this long has
# failed, and the call ends.
RECOVERY_TIMEOUT_S = 20.0
# A restart refused because a switch was under way is asked for again after this long
# if nothing came of that switch.
RESTART_RETRY_S = 4.0


class HealthHost(Protocol):
    """What a call's health needs of the call."""

    @property
    def call_id(self) -> str: ...

    @property
    def direction(self) -> Literal["outgoing", "incoming"]: ...

    @property
    def state(self) -> CallState: ...

    @property
    def connection(self) -> PeerConnection | None:
        """The connection carrying the call."""

    @property
    def connect_timeout_s(self) -> float: ...

    def transition(self, state: CallState, detail: str | None = None) -> None: ...

    def switch_in_flight(self) -> bool:
        """A switch of the connection is under way, from either side."""

    def switch_replacing(self) -> bool:
        """A switch's new connection exists and is being set up."""

    async def send(self, frame: ClientCallFrame) -> None: ...

    def spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Future[None]: ...

    async def fail(self, detail: str) -> None: ...


class CallHealth:
    def __init__(self, host: HealthHost) -> None:
        self._host = host
        # How many times the connection dropped mid-call and was restarted.
        self.restarts = 0
        # This side asked the server for a restart and has no answer yet.
        self._asked_restart = False
        self._connect_timer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._recovery_timer: asyncio.Task[None] | None = None

    def start_connect_timer(self) -> None:
        """SDP is exchanged: media must connect within the call's connect timeout."""
        host = self._host

        async def expire() -> None:
            await asyncio.sleep(host.connect_timeout_s)
            if host.state is CallState.CONNECTING:
                await host.fail(text.not_connected_within(host.connect_timeout_s))

        self._connect_timer = asyncio.get_running_loop().create_task(expire())

    async def on_connection_state(self, state: str) -> None:
        """The connection carrying the call moved to ``state``."""
        host = self._host
        if state == "connected" and host.state is CallState.CONNECTING:
            if self._connect_timer is not None:
                self._connect_timer.cancel()
            host.transition(CallState.CONNECTED)
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch_media(), name=f"call-{host.call_id[:8]}-media"
            )
            # Only now does the call count as a conversation, in both people's history.
            # Lost with the socket, the call is recorded as not connected: a record that
            # errs that way is honest; the call itself goes on.
            with contextlib.suppress(EventStreamClosed, TimeoutError):
                await host.send(ConnectedFrame(call_id=host.call_id))
        elif state == "failed" and host.state in IN_CALL:
            # During a switch the other side may close the old connection as soon as
            # its new one is up: the switch decides. Otherwise restart it.
            if not host.switch_replacing():
                await self.recover(text.MEDIA_FAILED)
        elif state == "failed":
            await host.fail(text.MEDIA_FAILED)

    async def on_refused(self, code: str) -> bool:
        """The server refused a frame with ``code``: True if it was this side's restart
        (which this then handles), False for anything else."""
        host = self._host
        if not (
            self._asked_restart and code in SWITCH_REFUSALS and host.state is CallState.RECONNECTING
        ):
            return False
        self._asked_restart = False
        if code == "call_rate_limited":
            await host.fail(text.DROPPED_TOO_OFTEN)
        else:
            # A switch is already under way: usually the other side restarting too,
            # whose offer comes next.
            log.info("call %s: restart refused (%s); waiting", host.call_id, code)
            host.spawn(self._ask_restart_again())
        return True

    def transport_arrived(self) -> None:
        """The server switched the call (this side's restart, or anyone's switch)."""
        self._asked_restart = False

    def adopted(self) -> None:
        """A switch's new connection carries the call: a restart, if one was going,
        worked."""
        if self._host.state is CallState.RECONNECTING:
            self._reconnected()

    def stop(self) -> None:
        """The call ended: every timer and the watcher go (not the task running this)."""
        current = asyncio.current_task()
        for task in (self._connect_timer, self._watcher, self._recovery_timer):
            if task is not None and task is not current and not task.done():
                task.cancel()

    # --- a connection that drops mid-call ----------------------------------------------

    async def _watch_media(self) -> None:
        host = self._host
        loop = asyncio.get_running_loop()
        seen: tuple[PeerConnection | None, int] = (None, -1)
        quiet_since = loop.time()
        while host.state in IN_CALL:
            await asyncio.sleep(MEDIA_CHECK_S)
            connection = host.connection
            if connection is None:
                return
            now = (connection, await connection.packets_received())
            if now != seen:
                seen, quiet_since = now, loop.time()
                if host.state is CallState.RECONNECTING and not self._restart_in_flight():
                    # The old path came back by itself before any restart got going.
                    self._reconnected()
                continue
            quiet = loop.time() - quiet_since
            if (
                quiet >= DROP_AFTER_S
                and host.state is CallState.CONNECTED
                and not self._restart_in_flight()
            ):
                host.spawn(self.recover(text.nothing_received(quiet)))

    def _still(self, state: CallState) -> bool:
        """Whether the call is in ``state`` now: a method, so that the type checker does
        not assume the state unchanged across an await."""
        return self._host.state is state

    def _restart_in_flight(self) -> bool:
        """A switch or restart of the connection is under way, from either side."""
        return self._asked_restart or self._host.switch_in_flight()

    async def recover(self, why: str) -> None:
        """Restart a dropped connection through the relay; end the call only if that
        fails (the replacement fails or does not connect in RECOVERY_TIMEOUT_S)."""
        host = self._host
        if host.state is not CallState.CONNECTED:
            return
        self.restarts += 1
        host.transition(CallState.RECONNECTING, why)
        self._recovery_timer = asyncio.get_running_loop().create_task(self._recovery_deadline())
        if host.direction == "incoming":
            # The caller usually notices at the same moment and restarts first; then its
            # call.transport arrives meanwhile and this side just answers.
            await asyncio.sleep(CALLEE_RESTART_DELAY_S)
        await self._ask_restart()

    async def _ask_restart(self) -> None:
        if not self._still(CallState.RECONNECTING) or self._restart_in_flight():
            return
        self._asked_restart = True
        try:
            # "relay" for a relayed call is an ICE restart through the relay; for a
            # direct one it also hides both addresses, which is allowed without asking.
            await self._host.send(TransportFrame(call_id=self._host.call_id, transport="relay"))
        except (EventStreamClosed, TimeoutError):
            self._asked_restart = False  # the recovery deadline (or the stream) ends it

    async def _ask_restart_again(self) -> None:
        """The restart was refused because a switch was under way. If no offer came of
        it after RESTART_RETRY_S (a switch left unfinished blocks the next one on the
        server for a while), ask again, until the recovery deadline."""
        await asyncio.sleep(RESTART_RETRY_S)
        await self._ask_restart()

    async def _recovery_deadline(self) -> None:
        await asyncio.sleep(RECOVERY_TIMEOUT_S)
        if self._host.state is CallState.RECONNECTING:
            await self._host.fail(text.restart_did_not_restore(RECOVERY_TIMEOUT_S))

    def _reconnected(self) -> None:
        timer, self._recovery_timer = self._recovery_timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        self._host.transition(CallState.CONNECTED)
