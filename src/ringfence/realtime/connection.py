"""One authenticated WebSocket: a bounded send queue and an ordered, gap-free stream.

The connection subscribes to the Bus *before* it reads the user's current stream
position, so nothing published in between can fall through. Its sender task then
replays history after ``since``, and for every live durable event checks the position:
an old one is a duplicate and is dropped; one that skips ahead means an event was
published out of order (two writers on different nodes), so the gap is read back from
the database first. The client therefore sees every position exactly once, in order.

A client that stops reading is given up on: its queue overflows (or a send stalls),
the connection unsubscribes at once through its give-up hooks, and only then tries to
close the socket. The close frame has to wait behind the data the client is not
reading, so it may never go out; nothing is buffered for the socket meanwhile.

An idle connection is kept small, since a server holds thousands: ``__slots__``, no
queue object until something is queued (a ``deque`` whose length is the bound, not an
``asyncio.Queue`` with its three deques), and no sender task while there is nothing to
send. The sender is started by the first delivery and ends once the queue is empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from ringfence.realtime.bus import Envelope, Subscription

log = logging.getLogger(__name__)


class HistoryReader(Protocol):
    """Reads a user's durable events with after < pos <= upto (None: to the end).
    (``EventStream.history``: one bound method can serve every connection.)"""

    async def __call__(
        self, user_id: int, *, after: int, upto: int | None, limit: int
    ) -> list[Envelope]: ...


REPLAY_PAGE = 500
# Queued by resync(): "read back every durable event after the last one sent".
_RESYNC = Envelope("")
CLOSE_TOO_SLOW = 1013  # "try again later": the client reconnects with since
CLOSE_INTERNAL = 1011  # the server could not go on with this stream
CLOSE_REPLACED = 4409  # the same device reconnected on a newer socket
CLOSE_SESSION_ENDED = 4401  # the session this socket authenticated with logged out


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


GiveUpHook = Callable[["Connection"], Awaitable[None]]


class Connection:
    """A device's live connection. ``deliver`` is the Bus handler; it never blocks."""

    __slots__ = (
        "_close_code",
        "_closer",
        "_give_up_hooks",
        "_history",
        "_last",
        "_queue",
        "_queue_size",
        "_send_timeout_s",
        "_sender",
        "_started",
        "_transport",
        "close_reason",
        "closed",
        "device_id",
        "session_id",
        "subscriptions",
        "user_id",
    )

    def __init__(
        self,
        *,
        user_id: int,
        device_id: str,
        transport: Transport,
        history: HistoryReader,
        queue_size: int,
        send_timeout_s: float = 30.0,
        session_id: int | None = None,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.device_id = device_id
        self._transport = transport
        self._history = history
        # Created by the first delivery, dropped again once the sender has emptied it.
        self._queue: deque[Envelope] | None = None
        self._queue_size = queue_size
        self._send_timeout_s = send_timeout_s
        self._sender: asyncio.Task[None] | None = None  # only while there is work
        self._closer: asyncio.Task[None] | None = None
        self._started = False
        self._last = 0  # the position of the last durable event sent (once started)
        self.closed = False
        self.close_reason: str | None = None
        self._close_code = CLOSE_TOO_SLOW
        self._give_up_hooks: tuple[GiveUpHook, ...] = ()
        # The Bus subscriptions the Hub holds for this connection.
        self.subscriptions: tuple[Subscription, ...] = ()

    def deliver(self, envelope: Envelope) -> None:
        if self.closed or envelope.exclude_device == self.device_id:
            return
        if envelope.end_session is not None:
            if envelope.end_session == self.session_id:
                self.end_session()
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif len(queue) >= self._queue_size:
            # The client stopped reading. Buffering more would let one idle socket grow
            # the server's memory without bound; it can reconnect with ``since``.
            self._stop("send queue overflow")
            return
        queue.append(envelope)
        if self._sender is None and self._started:
            self._start_sender()

    def start(self, *, since: int | None, current: int) -> None:
        """Begin sending: history after ``since`` (if given), then live events."""
        if self.closed or self._started:
            return  # given up on (or stopped) before it started
        self._started = True
        if since is None:
            self._last = current
        else:
            self._last = since
            # Read back everything after ``since`` before whatever is queued already.
            if self._queue is None:
                self._queue = deque()
            self._queue.appendleft(_RESYNC)
        if self._queue:
            self._start_sender()

    def queued(self) -> int:
        """Events waiting to be sent (never more than the queue size)."""
        return len(self._queue) if self._queue is not None else 0

    def on_give_up(self, hook: GiveUpHook) -> None:
        """Run ``hook`` when the server gives up on this client (too slow, stalled,
        replaced or signed out), before the close is attempted: the close can wait
        forever behind unread data, and the connection must not stay subscribed while
        it does."""
        self._give_up_hooks = (*self._give_up_hooks, hook)

    def resync(self) -> None:
        """Read back from the database the durable events this connection may have
        missed while the Bus was cut off, behind those already queued."""
        self.deliver(_RESYNC)

    def reply(self, payload: str) -> None:
        """Queue a reply to this device (an error or a pong) behind earlier events."""
        self.deliver(Envelope(payload))

    def end_session(self, reason: str = "session ended") -> None:
        """Close this socket because the session it authenticated with was revoked
        (a logout, a suspension)."""
        self._stop(reason, CLOSE_SESSION_ENDED)

    async def stop(self) -> None:
        """Stop sending and closing; called when the socket is gone."""
        self.closed = True
        self._queue = None
        tasks = {task for task in (self._sender, self._closer) if task is not None}
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        # asyncio.wait, unlike awaiting the tasks, lets our own cancellation through.
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.debug("task of %s failed", self.device_id, exc_info=task.exception())

    def replaced(self) -> None:
        """Close this socket because its device id was resumed on a newer one."""
        self._stop("replaced by a newer connection", CLOSE_REPLACED)

    def _start_sender(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._run())

    def _stop(self, reason: str, code: int = CLOSE_TOO_SLOW) -> None:
        """Give up on this client: stop the sender, then unsubscribe and close."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._close_code = code
        self._queue = None  # nothing queued will be sent now
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
        self._closer = asyncio.get_running_loop().create_task(
            self._give_up(sender, code, reason), name=f"ws-close-{self.device_id}"
        )

    async def _run(self) -> None:
        try:
            await self._drain()
        except TimeoutError:
            self._stop("send timed out")
        except Exception as exc:
            # Usually the socket went away under us (each server names that
            # differently); else the stream cannot go on. Either way the client must
            # not sit on a silent socket: close it, and it reconnects with ``since``.
            log.debug("sender for %s stopped: %s", self.device_id, type(exc).__name__)
            self._stop("sender stopped", CLOSE_INTERNAL)

    async def _drain(self) -> None:
        """Send what is queued, in order; return (ending the task) once it is empty."""
        while True:
            queue = self._queue
            if not queue:
                # No await between this check and the reset: a delivery from now on
                # finds no sender and starts a new one.
                self._queue = None
                self._sender = None
                return
            env = queue.popleft()
            if env is _RESYNC:
                self._last = await self._replay(after=self._last, upto=None)
                continue
            if env.pos is None:
                await self._send(env.payload)
                continue
            if env.pos <= self._last:
                continue  # already sent, by replay or an earlier gap fill
            if env.pos > self._last + 1:
                self._last = await self._replay(after=self._last, upto=env.pos - 1)
            await self._send(env.payload)
            self._last = env.pos

    async def _replay(self, *, after: int, upto: int | None) -> int:
        last = after
        while True:
            page = await self._history(self.user_id, after=last, upto=upto, limit=REPLAY_PAGE)
            for env in page:
                await self._send(env.payload)
                assert env.pos is not None
                last = env.pos
            if len(page) < REPLAY_PAGE:
                return last

    async def _send(self, payload: str) -> None:
        await asyncio.wait_for(self._transport.send_text(payload), self._send_timeout_s)

    async def _give_up(self, sender: asyncio.Task[None] | None, code: int, reason: str) -> None:
        log.info("disconnecting device %s: %s", self.device_id, reason)
        if sender is not None:
            await asyncio.wait({sender})  # it was cancelled, or is returning
        for hook in self._give_up_hooks:
            try:
                await hook(self)
            except Exception:
                log.exception("give-up hook for device %s failed", self.device_id)
        try:
            # No timeout: the close frame waits behind the unread data and goes out if
            # the client ever reads again; stop() cancels this when the socket ends.
            await self._transport.close(code, reason)
        except Exception as exc:
            log.debug("closing %s failed: %s", self.device_id, type(exc).__name__)
