"""One authenticated WebSocket: a bounded send queue and an ordered, gap-free stream.

The connection subscribes to the Bus *before* it reads the user's current stream
position, so nothing published in between can fall through. Its sender task then
replays history after ``since``, and for every live durable event checks the position:
an old one is a duplicate and is dropped; one that skips ahead means an event was
published out of order (two writers on different nodes), so the gap is read back from
the database first. The client therefore sees every position exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from ringfence.realtime.bus import Envelope

log = logging.getLogger(__name__)


class HistoryReader(Protocol):
    """Reads one user's durable events with after < pos <= upto (None: to the end)."""

    async def __call__(self, *, after: int, upto: int | None, limit: int) -> list[Envelope]: ...


REPLAY_PAGE = 500
CLOSE_TOO_SLOW = 1013  # "try again later": the client reconnects with since
CLOSE_REPLACED = 4409  # the same device reconnected on a newer socket


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


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
    ) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self._transport = transport
        self._history = history
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=queue_size)
        self._send_timeout_s = send_timeout_s
        self._sender: asyncio.Task[None] | None = None
        self.closed = False
        self.close_reason: str | None = None
        self._close_code = CLOSE_TOO_SLOW

    def deliver(self, envelope: Envelope) -> None:
        if self.closed or envelope.exclude_device == self.device_id:
            return
        try:
            self._queue.put_nowait(envelope)
        except asyncio.QueueFull:
            # The client stopped reading. Buffering more would let one idle socket grow
            # the server's memory without bound; it can reconnect with ``since``.
            log.info("device %s is not reading; disconnecting it", self.device_id)
            self._stop("send queue overflow")

    def start(self, *, since: int | None, current: int) -> None:
        """Begin sending: history after ``since`` (if given), then live events."""
        self._sender = asyncio.get_running_loop().create_task(
            self._run(since, current), name=f"ws-send-{self.device_id}"
        )

    def reply(self, payload: str) -> None:
        """Queue a reply to this device (an error or a pong) behind earlier events."""
        self.deliver(Envelope(payload))

    async def stop(self) -> None:
        """Stop the sender; called when the socket is gone."""
        self.closed = True
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender

    def replaced(self) -> None:
        """Close this socket because its device id was resumed on a newer one."""
        self._stop("replaced by a newer connection", CLOSE_REPLACED)

    def _stop(self, reason: str, code: int = CLOSE_TOO_SLOW) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._close_code = code
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()

    async def _run(self, since: int | None, current: int) -> None:
        last = current if since is None else since
        try:
            if since is not None:
                last = await self._replay(after=since, upto=None)
            while True:
                env = await self._queue.get()
                if env.pos is None:
                    await self._send(env.payload)
                    continue
                if env.pos <= last:
                    continue  # already sent, by replay or an earlier gap fill
                if env.pos > last + 1:
                    last = await self._replay(after=last, upto=env.pos - 1)
                await self._send(env.payload)
                last = env.pos
        except asyncio.CancelledError:
            if self.close_reason is not None:
                await self._close(self._close_code, self.close_reason)
            raise
        except (TimeoutError, OSError, RuntimeError) as exc:
            # The socket went away under us; the receive side notices and cleans up.
            log.debug("sender for %s stopped: %s", self.device_id, type(exc).__name__)
            self.closed = True

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

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(TimeoutError, OSError, RuntimeError):
            await asyncio.wait_for(self._transport.close(code, reason), 5)
