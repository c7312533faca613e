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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from ringfence.realtime.bus import Envelope

log = logging.getLogger(__name__)


class HistoryReader(Protocol):
    """Reads one user's durable events with after < pos <= upto (None: to the end)."""

    async def __call__(self, *, after: int, upto: int | None, limit: int) -> list[Envelope]: ...


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
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=queue_size)
        self._send_timeout_s = send_timeout_s
        self._sender: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.closed = False
        self.close_reason: str | None = None
        self._close_code = CLOSE_TOO_SLOW
        self._give_up_hooks: list[GiveUpHook] = []

    def deliver(self, envelope: Envelope) -> None:
        if self.closed or envelope.exclude_device == self.device_id:
            return
        if envelope.end_session is not None:
            if envelope.end_session == self.session_id:
                self._stop("session ended", CLOSE_SESSION_ENDED)
            return
        try:
            self._queue.put_nowait(envelope)
        except asyncio.QueueFull:
            # The client stopped reading. Buffering more would let one idle socket grow
            # the server's memory without bound; it can reconnect with ``since``.
            self._stop("send queue overflow")

    def start(self, *, since: int | None, current: int) -> None:
        """Begin sending: history after ``since`` (if given), then live events."""
        if self.closed:
            return  # given up on (or stopped) before it started
        self._sender = asyncio.get_running_loop().create_task(
            self._run(since, current), name=f"ws-send-{self.device_id}"
        )

    def on_give_up(self, hook: GiveUpHook) -> None:
        """Run ``hook`` when the server gives up on this client (too slow, stalled or
        replaced), before the close is attempted: the close can wait forever behind
        unread data, and the connection must not stay subscribed while it does."""
        self._give_up_hooks.append(hook)

    def resync(self) -> None:
        """Read back from the database the durable events this connection may have
        missed while the Bus was cut off, behind those already queued."""
        self.deliver(_RESYNC)

    def reply(self, payload: str) -> None:
        """Queue a reply to this device (an error or a pong) behind earlier events."""
        self.deliver(Envelope(payload))

    async def stop(self) -> None:
        """Stop sending and closing; called when the socket is gone."""
        self.closed = True
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

    def _stop(self, reason: str, code: int = CLOSE_TOO_SLOW) -> None:
        """Give up on this client: stop the sender, then unsubscribe and close."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._close_code = code
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
        self._closer = asyncio.get_running_loop().create_task(
            self._give_up(sender, code, reason), name=f"ws-close-{self.device_id}"
        )

    async def _run(self, since: int | None, current: int) -> None:
        try:
            await self._pump(since, current)
        except TimeoutError:
            self._stop("send timed out")
        except Exception as exc:
            # Usually the socket went away under us (each server names that
            # differently); else the stream cannot go on. Either way the client must
            # not sit on a silent socket: close it, and it reconnects with ``since``.
            log.debug("sender for %s stopped: %s", self.device_id, type(exc).__name__)
            self._stop("sender stopped", CLOSE_INTERNAL)

    async def _pump(self, since: int | None, current: int) -> None:
        last = current if since is None else since
        if since is not None:
            last = await self._replay(after=since, upto=None)
        while True:
            env = await self._queue.get()
            if env is _RESYNC:
                last = await self._replay(after=last, upto=None)
                continue
            if env.pos is None:
                await self._send(env.payload)
                continue
            if env.pos <= last:
                continue  # already sent, by replay or an earlier gap fill
            if env.pos > last + 1:
                last = await self._replay(after=last, upto=env.pos - 1)
            await self._send(env.payload)
            last = env.pos

    async def _replay(self, *, after: int, upto: int | None) -> int:
        last = after
        while True:
            page = await self._history(after=last, upto=upto, limit=REPLAY_PAGE)
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
        while not self._queue.empty():  # nothing queued will be sent now
            self._queue.get_nowait()
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
