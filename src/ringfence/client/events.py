"""The real-time event stream (``/api/v1/events``), kept open across network trouble.

The stream authenticates with its first frame (the token never goes in the URL),
remembers the highest durable position it has seen and, when the socket drops,
reconnects with exponential backoff, asking for everything ``since`` that position and
presenting the same ``device_id``, so the server resumes this device's calls instead of
ending them.

Frames are routed, not broadcast: a :class:`Subscription` (one per call, say) claims the
frames its predicate matches, and everything else lands in the stream's own bounded
inbox, read with ``async for`` or picked out with :meth:`EventStream.next_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, cast

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ringfence.client.api import MessageNotSent, RingfenceError, events_url
from ringfence.client.apitypes import Message

__all__ = ["Event", "EventStream", "EventStreamClosed", "Subscription"]

log = logging.getLogger(__name__)

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

# Close codes after which reconnecting cannot help.
CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4401
CLOSE_REPLACED = 4409
_FATAL_CLOSE = {
    CLOSE_POLICY: "the server refused the connection",
    CLOSE_UNAUTHORIZED: "the session token is no longer valid",
    CLOSE_REPLACED: "another connection took over this device id",
}
_MAX_FRAME = 4 * 1024 * 1024


class EventStreamClosed(Exception):
    """The stream is gone for good: closed by its owner (``fatal`` False) or refused by
    the server (``fatal`` True: revoked token, device taken over)."""

    def __init__(self, reason: str, *, fatal: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


class _Mailbox:
    """A bounded FIFO of events with selective, awaitable receive."""

    def __init__(self, maxlen: int, name: str) -> None:
        self._items: deque[Event] = deque()
        self._maxlen = maxlen
        self._name = name
        self._waiters: set[asyncio.Future[None]] = set()
        self._error: EventStreamClosed | None = None
        self.dropped = 0

    def put(self, event: Event) -> None:
        if self._error is not None:
            return
        if len(self._items) >= self._maxlen:
            # Nobody is reading: keep memory bounded and say so once per burst.
            self._items.popleft()
            if self.dropped == 0:
                log.warning("%s is full; dropping its oldest events", self._name)
            self.dropped += 1
        self._items.append(event)
        self._wake()

    def take(self, predicate: Predicate | None = None) -> Event | None:
        for index, event in enumerate(self._items):
            if predicate is None or predicate(event):
                del self._items[index]
                return event
        return None

    def has(self, predicate: Predicate) -> bool:
        return any(predicate(event) for event in self._items)

    def take_all(self, predicate: Predicate) -> list[Event]:
        taken = [event for event in self._items if predicate(event)]
        if taken:
            self._items = deque(event for event in self._items if not predicate(event))
        return taken

    async def get(self, predicate: Predicate | None = None) -> Event:
        """The first (matching) event, waiting for it; once closed and drained of
        matches, raises :class:`EventStreamClosed`."""
        while True:
            event = self.take(predicate)
            if event is not None:
                return event
            if self._error is not None:
                raise self._error
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)

    def close(self, error: EventStreamClosed) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


class Subscription:
    """Frames claimed from the stream by a predicate, in arrival order.

    While it exists, matching frames go here and not to the stream's inbox. ``close()``
    (or leaving ``with``) hands routing back.
    """

    def __init__(self, stream: EventStream, predicate: Predicate, maxlen: int) -> None:
        self._stream = stream
        self.predicate = predicate
        self._box = _Mailbox(maxlen, "a subscription")

    def _put(self, event: Event) -> None:
        self._box.put(event)

    def _close(self, error: EventStreamClosed) -> None:
        self._box.close(error)

    async def get(self) -> Event:
        """The next frame; raises :class:`EventStreamClosed` once closed and drained."""
        return await self._box.get()

    def has(self, predicate: Predicate) -> bool:
        """Whether a matching frame is waiting (without taking it)."""
        return self._box.has(predicate)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self._box.get()
            except EventStreamClosed as exc:
                if exc.fatal:
                    raise
                return

    def close(self) -> None:
        self._stream._unsubscribe(self)
        self._box.close(EventStreamClosed("subscription closed", fatal=False))

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventStream:
    """``async with EventStream(base_url, token) as events: ...``

    ``ready`` is the server's latest ``ready`` frame; ``pos`` the highest durable
    position seen; ``device_id`` this device's id, fixed by the first ``ready``. Each
    reconnection puts its ``ready`` frame (with ``"resync": true`` if the client must
    reload its state) into the inbox, so readers can tell.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        since: int | None = None,
        device_id: str | None = None,
        connect_timeout: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        send_timeout_s: float = 15.0,
        inbox_size: int = 1000,
    ) -> None:
        self.url = events_url(base_url)
        self._token = token
        self.pos = since
        self.device_id = device_id
        self.ready: Event | None = None
        self.reconnects = 0
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._inbox = _Mailbox(inbox_size, "the event inbox")
        self._subs: list[Subscription] = []
        self._ws: ClientConnection | None = None
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed: EventStreamClosed | None = None
        # message.send frames waiting for their ack or error, by txn_id.
        self._sends: dict[str, asyncio.Future[Event]] = {}

    def __repr__(self) -> str:
        return f"<EventStream {self.url} device={self.device_id} pos={self.pos}>"

    @property
    def user(self) -> dict[str, Any]:
        if self.ready is None:
            raise RuntimeError("the event stream is not connected yet")
        user: dict[str, Any] = self.ready["user"]
        return user

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def __aenter__(self) -> EventStream:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- connection ---------------------------------------------------------------

    async def connect(self) -> Event:
        """Open the stream; raises :class:`RingfenceError` if the server refuses the
        token, or ``OSError``/``TimeoutError`` if it cannot be reached."""
        if self._task is not None:
            raise RuntimeError("the event stream is already connected")
        ws, ready = await self._open()
        self._task = asyncio.get_running_loop().create_task(self._run(ws), name="ringfence-events")
        return ready

    async def _open(self) -> tuple[ClientConnection, Event]:
        ws = await websockets.connect(
            self.url,
            compression=None,
            max_size=_MAX_FRAME,
            open_timeout=self._connect_timeout,
        )
        try:
            auth: Event = {"type": "auth", "token": self._token}
            if self.pos is not None:
                auth["since"] = self.pos
            if self.device_id is not None:
                auth["device_id"] = self.device_id
            await ws.send(json.dumps(auth))
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), self._connect_timeout))
            except ConnectionClosed as exc:
                raise _refusal(exc.rcvd.code if exc.rcvd else None, None) from None
            if not isinstance(frame, dict) or frame.get("type") != "ready":
                # The server explains, then closes; the close code says how final it is.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), 2.0)
                raise _refusal(ws.close_code, frame if isinstance(frame, dict) else None)
        except BaseException:
            await ws.close()
            raise
        self.ready = frame
        self.device_id = str(frame["device_id"])
        if self.pos is None or frame.get("resync"):
            self.pos = int(frame["pos"])
        self._ws = ws
        self._opened.set()
        log.info("event stream connected (device %s)", self.device_id)
        return ws, frame

    async def _run(self, ws: ClientConnection) -> None:
        initial, ceiling = self._backoff
        try:
            while True:
                await self._read(ws)
                code = ws.close_code
                self._ws = None
                self._opened.clear()
                self._fail_sends()
                if code in _FATAL_CLOSE:
                    self._finish(EventStreamClosed(_FATAL_CLOSE[code], fatal=True))
                    return
                delay, why = initial, f"close code {code}"
                while True:
                    wait = delay * random.uniform(0.5, 1.0)
                    log.info("event stream lost (%s); reconnecting in %.1fs", why, wait)
                    await asyncio.sleep(wait)
                    delay = min(delay * 2, ceiling)
                    try:
                        ws, ready = await self._open()
                    except RingfenceError as exc:
                        if exc.status in (400, 401):
                            self._finish(EventStreamClosed(exc.detail, fatal=True))
                            return
                        why = exc.code
                    except (
                        OSError,
                        TimeoutError,
                        InvalidHandshake,
                        ConnectionClosed,
                        ValueError,  # a garbled reply to the auth frame
                    ) as exc:
                        why = type(exc).__name__
                    else:
                        break
                self.reconnects += 1
                self._inbox.put(ready)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave readers hanging forever
            log.exception("event stream failed")
            self._finish(
                EventStreamClosed(f"event stream failed: {type(exc).__name__}", fatal=True)
            )

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    frame = json.loads(raw)
                except ValueError:
                    log.warning("ignoring a frame that is not JSON")
                    continue
                if isinstance(frame, dict) and isinstance(frame.get("type"), str):
                    self._dispatch(frame)
        except ConnectionClosed:
            pass

    def _dispatch(self, frame: Event) -> None:
        kind = frame["type"]
        if kind in ("message.ack", "error") and isinstance(frame.get("txn_id"), str):
            waiting = self._sends.get(frame["txn_id"])
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)
            return  # an answer to a send, not an event (a late one: HTTP had it)
        pos = frame.get("pos")
        if isinstance(pos, int) and kind != "ready":
            if self.pos is not None and pos <= self.pos:
                return  # already seen (a replay overlapping live delivery)
            self.pos = pos
        for sub in self._subs:
            if sub.predicate(frame):
                sub._put(frame)
                return
        self._inbox.put(frame)

    def _finish(self, error: EventStreamClosed) -> None:
        if self._closed is not None:
            return
        self._closed = error
        self._ws = None
        self._opened.set()  # wake senders so they see the error
        self._fail_sends()
        self._inbox.close(error)
        for sub in list(self._subs):
            sub._close(error)
        if error.fatal:
            log.warning("event stream closed: %s", error.reason)

    async def close(self) -> None:
        """Close the stream; readers stop, senders get :class:`EventStreamClosed`."""
        ws = self._ws
        self._finish(EventStreamClosed("the event stream was closed", fatal=False))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if ws is not None:
            await ws.close()

    # --- sending ------------------------------------------------------------------

    async def send(self, frame: Event) -> None:
        """Send one frame, waiting (up to ``send_timeout_s``) for a reconnection if the
        socket is down; raises ``TimeoutError`` then. A frame is never sent twice."""
        if self._task is None and self._closed is None:
            raise RuntimeError("connect() the event stream before sending")
        data = json.dumps(frame)
        async with asyncio.timeout(self._send_timeout):
            while True:
                if self._closed is not None:
                    raise self._closed
                ws = self._ws
                if ws is None:
                    await self._opened.wait()
                    continue
                try:
                    await ws.send(data)
                    return
                except ConnectionClosed:
                    if self._ws is ws:
                        self._ws = None
                        self._opened.clear()

    async def send_message(
        self,
        to: str,
        text: str,
        txn_id: str,
        *,
        timeout: float = 15.0,  # noqa: ASYNC109 - a bound on the answer, not a deadline
    ) -> Message:
        """Send a DM over this socket (``message.send``); the stored message once the
        server has committed it. Raises :class:`RingfenceError` with the HTTP route's
        status, code and words when the server refuses it, and
        :class:`~ringfence.client.api.MessageNotSent` when the socket is not connected,
        drops, or gives no answer within ``timeout``: then send the same txn_id again
        (``RingfenceClient.send_message`` does, over HTTP)."""
        ws = self._ws
        if ws is None or self._closed is not None:
            raise MessageNotSent("the event stream is not connected")
        if txn_id in self._sends:
            raise ValueError(f"a send with txn_id {txn_id!r} is already waiting")
        answer: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._sends[txn_id] = answer
        frame = {"type": "message.send", "to": to, "text": text, "txn_id": txn_id}
        try:
            await ws.send(json.dumps(frame))
            async with asyncio.timeout(timeout):
                reply = await answer
        except ConnectionClosed:
            raise MessageNotSent("the event stream dropped before the server answered") from None
        except TimeoutError:
            raise MessageNotSent(f"no answer from the server within {timeout:g} s") from None
        finally:
            self._sends.pop(txn_id, None)
        if reply["type"] == "message.ack":
            return cast(Message, reply["message"])
        retry = reply.get("retry_after")
        raise RingfenceError(
            int(reply.get("status") or 400),
            str(reply.get("error")),
            str(reply.get("detail")),
            retry_after_s=float(retry) if isinstance(retry, int | float) else None,
        )

    def _fail_sends(self) -> None:
        """The socket is gone: every send still waiting is not answered here."""
        for waiting in self._sends.values():
            if not waiting.done():
                waiting.set_exception(MessageNotSent("the event stream dropped"))

    # --- receiving ----------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self._inbox.get()
            except EventStreamClosed as exc:
                if exc.fatal:
                    raise
                return

    async def next_event(
        self,
        type_: str,
        call_id: str | None = None,
        timeout: float | None = 10.0,  # noqa: ASYNC109 - the common case, kept short
    ) -> Event:
        """The first inbox event of this type (and call), waiting up to ``timeout``
        seconds for it. Other events stay in the inbox for later readers."""

        def matches(event: Event) -> bool:
            return event.get("type") == type_ and (
                call_id is None or event.get("call_id") == call_id
            )

        async with asyncio.timeout(timeout):
            return await self._inbox.get(matches)

    def subscribe(self, predicate: Predicate, *, maxlen: int = 1000) -> Subscription:
        """Route matching frames to a new subscription, starting with any already
        waiting in the inbox."""
        sub = Subscription(self, predicate, maxlen)
        for event in self._inbox.take_all(predicate):
            sub._put(event)
        if self._closed is not None:
            sub._close(self._closed)
        else:
            self._subs.append(sub)
        return sub

    def subscribe_call(self, call_id: str) -> Subscription:
        """Every frame about one call (signaling, its end, and errors naming it)."""
        return self.subscribe(lambda event: event.get("call_id") == call_id)

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)


def _refusal(code: int | None, frame: Event | None) -> RingfenceError:
    """Turn the server's refusal of an auth frame into the HTTP-style error."""
    error = str(frame.get("error", "refused")) if frame else "refused"
    detail = str(frame.get("detail", "")) if frame else ""
    if code == CLOSE_UNAUTHORIZED or error in ("unauthorized", "invalid_token"):
        return RingfenceError(401, error if frame else "unauthorized", detail or "invalid token")
    if code == CLOSE_POLICY:
        return RingfenceError(400, error, detail or "the server refused the auth frame")
    return RingfenceError(502, error, detail or f"unexpected reply (close code {code})")
