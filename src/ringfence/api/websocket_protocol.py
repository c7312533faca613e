"""The WebSocket protocol uvicorn runs for Ringfence's sockets: small per connection.

A server holds thousands of idle sockets, so what each one keeps is the server's
memory. uvicorn's own protocols keep, per socket, an ``asyncio.Queue`` (three deques),
an ``asyncio.Event``, a forty-attribute instance dict, the handshake's request and
response with their header maps, and one more coroutine frame: about 10 KiB of an
idle socket's 21 KiB of Python allocations (``python -m bench memory``).

:class:`LeanWebSocketProtocol` is the same ASGI WebSocket interface over the same
sans-I/O parser (``websockets.server.ServerProtocol``, which validates the handshake,
the frames, UTF-8 and ``ws_max_size``), holding only what a socket needs:

- ``__slots__``, no instance dict;
- received messages in a list that exists only while one is waiting to be read, and
  one future only while the app waits in ``receive``; reading pauses while a message
  is unread, as uvicorn's does (a slow app is not buffered into);
- a future for write flow control only while the transport is paused;
- one timer for the keepalive, never cancelled while the socket is open: the next
  ping, or the pong's deadline. The first ping comes at a random point in the second
  half of the interval (:func:`first_ping_delay`), so that sockets opened together
  (every client reconnecting after a restart) do not ping together ever after;
- the handshake's request and response dropped once answered (the request's headers
  emptied: websockets' parser keeps the request object itself);
- the app called as the task's own coroutine, without a wrapper frame.

What it leaves out, on purpose: ``permessage-deflate`` (about 100 KiB of zlib state
per socket; Ringfence turns it off) and the ``websocket.http.response`` extension
(Ringfence refuses before the upgrade with a plain 403, as ASGI's ``websocket.close``
before ``websocket.accept`` asks). Like uvicorn's, it logs no client addresses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_local_addr,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

Event = dict[str, Any]

logger = logging.getLogger("uvicorn.error")  # uvicorn's: Ringfence's log filter is on it

# Every scope's "asgi" entry; nothing writes to it.
_ASGI = {"version": "3.0", "spec_version": "2.4"}
CLOSE_TIMEOUT_S = 10.0  # for the peer's answer to our close frame
SERVICE_RESTART = 1012  # the server is shutting down


def first_ping_delay(interval: float, draw: Callable[[], float] = random.random) -> float:
    """When a new socket's first keepalive ping is due: spread over the second half of
    ``interval``, never later than it (a proxy's idle timeout is set against it).
    Sockets opened in a burst then ping spread out, each ``interval`` after its last,
    instead of as one wave every ``interval``. ``draw``: a number in [0, 1)."""
    return interval * (0.5 + draw() / 2)


class LeanWebSocketProtocol(asyncio.Protocol):
    """uvicorn's ``ws`` protocol class for Ringfence (``uvicorn.Config(ws=...)``)."""

    __slots__ = (
        "_app",
        "_app_state",
        "_client",
        "_close_sent",
        "_closing_timer",
        "_connections",
        "_default_headers",
        "_disconnect",
        "_drained",
        "_fragments",
        "_inbox",
        "_loop",
        "_open",
        "_ping_interval",
        "_ping_payload",
        "_ping_timeout",
        "_read_paused",
        "_request",
        "_response",
        "_root_path",
        "_scheme",
        "_server",
        "_tasks",
        "_text",
        "_timer",
        "_transport",
        "_waiter",
        "_ws",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self._app = config.loaded_app
        self._loop = _loop or asyncio.get_running_loop()
        self._root_path: str = config.root_path
        self._app_state = app_state
        self._connections = server_state.connections
        self._tasks = server_state.tasks
        self._default_headers = server_state.default_headers
        self._ping_interval: float | None = config.ws_ping_interval
        self._ping_timeout: float | None = config.ws_ping_timeout
        self._ws = ServerProtocol(max_size=config.ws_max_size, logger=logger)
        self._transport: asyncio.Transport | None = None
        self._server: tuple[str, int | None] | None = None
        self._client: tuple[str, int] | None = None
        self._scheme = "ws"
        self._request: Request | None = None  # until the app answers the handshake
        self._response: Response | None = None
        self._open = False  # the 101 (or a refusal) was sent
        self._close_sent = False  # our close frame, or a refusal, went out
        self._disconnect: Event | None = None  # set once the socket is gone for the app
        self._inbox: list[Event] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._read_paused = False
        self._fragments: list[bytes] | None = None
        self._text = False
        self._timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._closing_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._connections.add(cast(Any, self))
        self._transport = transport
        self._server = get_local_addr(transport)
        self._client = get_remote_addr(transport)
        self._scheme = "wss" if is_ssl(transport) else "ws"

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._cancel_closing_timer()
        self._connections.discard(cast(Any, self))
        self._gone(1006)  # no close frame came (else _gone already has its code)
        self._open = True  # nothing more is answered
        self._close_sent = True
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)  # a paused transport that is lost never resumes
        if exc is None and self._transport is not None:
            self._transport.close()

    def eof_received(self) -> None:
        return None  # close the transport

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        if ws.parser_exc is not None:
            self._parser_failed()
            return
        if ws.handshake_exc is not None and self._request is None and not self._open:
            self._handshake_failed()
            return
        for event in ws.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()

    # --- uvicorn's server calls this on shutdown -----------------------------------

    def shutdown(self) -> None:
        self._cancel_timer()
        transport = self._transport
        if transport is None:
            return
        if self._close_sent:
            self._cancel_closing_timer()
        elif self._open:
            self._gone(SERVICE_RESTART)
            self._ws.send_close(SERVICE_RESTART)
            self._close_sent = True
            self._flush()
        else:
            self._send_500()
        transport.close()

    # --- incoming ------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        ws = self._ws
        response = ws.accept(request)
        if response.status_code != 101:  # not a valid WebSocket handshake
            self._open = self._close_sent = True
            ws.send_response(response)
            self._flush()
            self._close_transport()
            return
        self._request, self._response = request, response
        raw_path, _, query = request.path.partition("?")
        subprotocols = [
            token.strip()
            for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for token in header.split(",")
        ]
        scope = {
            "type": "websocket",
            "asgi": _ASGI,
            "http_version": "1.1",
            "scheme": self._scheme,
            "server": self._server,
            "client": self._client,
            "root_path": self._root_path,
            "path": self._root_path + unquote(raw_path),
            "raw_path": (self._root_path + raw_path).encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": [
                (name.lower().encode("ascii"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
        }
        self._deliver({"type": "websocket.connect"}, pause=False)
        task = self._loop.create_task(self._app(scope, self.receive, self.send))
        task.add_done_callback(self._app_done)
        self._tasks.add(task)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragments = [bytes(frame.data)]
                self._text = opcode is Opcode.TEXT
            elif self._fragments is not None:
                self._fragments.append(bytes(frame.data))
            if frame.fin and self._fragments is not None:
                parts, self._fragments = self._fragments, None
                self._message(parts[0] if len(parts) == 1 else b"".join(parts))
        elif opcode is Opcode.PONG:
            if self._ping_payload is not None and bytes(frame.data) == self._ping_payload:
                self._ping_payload = None  # answered: the deadline check finds it so
        elif opcode is Opcode.CLOSE:
            if self._close_sent:  # the peer answered our close: the handshake is done
                self._close_transport()
                return
            close = self._ws.close_rcvd
            if close is not None:
                self._gone(close.code, close.reason)
            self._close_sent = True
            self._flush()  # websockets queued the echo of the peer's close
            self._close_transport()
        # PING: websockets queued the pong; data_received flushes it.

    def _message(self, data: bytes) -> None:
        if self._close_sent:
            return  # past our close frame: read on until the peer's close
        if self._text:
            try:
                self._deliver({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:  # websockets checks UTF-8 first; kept as a guard
                self._ws.fail(1007)
                self._parser_failed()
        else:
            self._deliver({"type": "websocket.receive", "bytes": data})

    def _deliver(self, event: Event, *, pause: bool = True) -> None:
        if self._inbox is None:
            self._inbox = [event]
        else:
            self._inbox.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if pause and not self._read_paused and self._transport is not None:
            self._read_paused = True  # until the app has read it
            self._transport.pause_reading()

    def _gone(self, code: int, reason: str = "") -> None:
        """The socket is over for the app: its next reads see this disconnect."""
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._deliver(self._disconnect, pause=False)

    def _parser_failed(self) -> None:
        # websockets failed the connection and queued the close frame (1002, 1007, 1009...).
        sent = self._ws.close_sent
        self._gone(sent.code if sent is not None else 1006, sent.reason if sent is not None else "")
        self._close_sent = self._open = True
        self._flush()
        self._close_transport()

    def _handshake_failed(self) -> None:
        # websockets could not parse the request. It queues a 414 or 431 for a limit and
        # nothing otherwise, which gets a 400.
        self._open = self._close_sent = True
        output = b"".join(self._ws.data_to_send())
        if not output:
            output = self._ws.reject(
                400, "Failed to open a WebSocket connection: invalid request.\n"
            ).serialize()
        self._write(output)
        self._close_transport()

    # --- the app's side ------------------------------------------------------------

    async def receive(self) -> Event:
        if not self._inbox:
            if self._waiter is not None:
                raise RuntimeError("receive() is already being awaited")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        inbox = self._inbox
        assert inbox
        event = inbox.pop(0)
        if not inbox:
            self._inbox = None
            if self._disconnect is not None:
                self._inbox = [self._disconnect]  # every later read sees it again
            elif self._read_paused and self._transport is not None:
                self._read_paused = False
                self._transport.resume_reading()
        return event

    async def send(self, message: Event) -> None:
        if self._drained is not None:
            await asyncio.shield(self._drained)
        kind = message["type"]
        if not self._open:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse()
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept' or 'websocket.close', "
                    f"but got {kind!r}."
                )
            return
        if self._close_sent:
            if self._transport_gone():
                raise ClientDisconnected()
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r}, after sending 'websocket.close'."
            )
        try:
            if kind == "websocket.send":
                data: bytes | None = message.get("bytes")
                text: str | None = message.get("text")
                if data is not None:
                    self._ws.send_binary(data)
                elif text is not None:
                    self._ws.send_text(text.encode())
                self._flush()
            elif kind == "websocket.close":
                code: int = message.get("code", 1000)
                reason: str = message.get("reason") or ""
                self._gone(code, reason)
                self._ws.send_close(code, reason)
                self._flush()
                self._close_sent = True
                self._cancel_timer()
                if self._read_paused and self._transport is not None:
                    self._read_paused = False  # read on, for the peer's close
                    self._transport.resume_reading()
                self._closing_timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._close_transport)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got {kind!r}."
                )
        except InvalidState:
            raise ClientDisconnected() from None

    def _accept(self, message: Event) -> None:
        response = self._response
        assert response is not None
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in [*self._default_headers, *message.get("headers", [])]
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        del response.headers["Date"]
        response.headers.update(headers)
        self._forget_handshake()
        self._open = True
        if self._transport_gone():
            return
        self._ws.send_response(response)
        self._flush()
        if self._ping_interval is not None and self._ping_interval > 0:
            self._schedule_ping(first_ping_delay(self._ping_interval))

    def _refuse(self) -> None:
        # websocket.close before websocket.accept: a 403, and no socket.
        self._gone(1006)
        self._forget_handshake()
        self._open = self._close_sent = True
        response = self._ws.reject(HTTPStatus.FORBIDDEN, "")
        self._ws.send_response(response)
        self._flush()
        self._close_transport()

    def _forget_handshake(self) -> None:
        # websockets' parser keeps the request alive in its generator's frame for the
        # socket's whole life; its headers (the scope has its own copy) need not be.
        if self._request is not None:
            self._request.headers.clear()
        self._request = self._response = None

    def _app_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, ClientDisconnected):
                logger.error("Exception in ASGI application\n", exc_info=exc)
                self._send_500()
            elif not self._open:
                logger.error("ASGI callable returned without completing handshake.")
                self._send_500()
        if self._closing_timer is None:
            self._close_transport()

    def _send_500(self) -> None:
        if self._open:
            return
        self._open = self._close_sent = True
        self._forget_handshake()
        self._ws.send_response(self._ws.reject(500, "Internal Server Error"))
        self._flush()

    # --- keepalive -----------------------------------------------------------------

    # One timer per socket, re-armed and never cancelled while the socket is open (a
    # cancelled TimerHandle stays in the loop's heap until its time): ping, then at the
    # deadline either fail the connection (no pong) or wait out the rest of the interval.

    def _schedule_ping(self, delay: float | None = None) -> None:
        interval = self._ping_interval
        if interval is not None and interval > 0:
            self._timer = self._loop.call_later(interval if delay is None else delay, self._ping)

    def _ping(self) -> None:
        self._timer = None
        if self._close_sent or self._transport_gone():
            return
        self._ping_payload = os.urandom(4)
        self._ws.send_ping(self._ping_payload)
        self._flush()
        timeout = self._ping_timeout
        if timeout is None:
            self._schedule_ping()
            return
        self._timer = self._loop.call_later(timeout, self._ping_deadline, self._loop.time())

    def _ping_deadline(self, sent_at: float) -> None:
        self._timer = None
        if self._close_sent or self._transport_gone():
            return
        if self._ping_payload is None:  # the pong came
            assert self._ping_interval is not None
            self._schedule_ping(max(0.0, sent_at + self._ping_interval - self._loop.time()))
            return
        self._ping_payload = None
        self._ws.fail(1011, "keepalive ping timeout")
        self._gone(1011, "keepalive ping timeout")
        self._close_sent = True
        self._flush()
        self._close_transport()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- the transport -------------------------------------------------------------

    def _flush(self) -> None:
        output = self._ws.data_to_send()
        if output:
            self._write(b"".join(output))

    def _write(self, data: bytes) -> None:
        if data and not self._transport_gone():
            assert self._transport is not None
            self._transport.write(data)

    def _transport_gone(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def _cancel_closing_timer(self) -> None:
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None

    def _close_transport(self) -> None:
        self._cancel_closing_timer()
        if self._transport is not None:
            self._transport.close()
