"""Bounded request bodies: refused before they are read, and never waited on for ever.

A body is read and parsed before the route runs, and so before authentication: without
a bound, anyone could make the server hold a 250 MB body in memory just to answer 401.
:class:`BodyLimit` sits in front of every HTTP route and

- refuses a body whose ``Content-Length`` exceeds the cap with 413 before reading a
  byte of it (the route never runs);
- counts the bytes of a body that has no ``Content-Length`` (chunked) as the route
  reads them, and refuses it with 413 at the first chunk past the cap;
- gives the body ``read_timeout_s`` from the moment the headers were complete to
  arrive in full, then answers 408.

Every refusal is JSON, like any other error, and closes the connection, so that the
rest of an unwanted body is never read. WebSockets are not HTTP requests here: their
frames are capped by ``ws_max_frame_bytes``. Slow or oversized request *headers* are
bounded earlier, in the HTTP protocol (:mod:`ringfence.api.connections`).
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringfence.api.errors import error_body, error_code

CLOSE = {"Connection": "close"}


class BodyRefused(HTTPException):
    """Raised from ``receive`` while a route reads its body. An HTTPException, so that
    FastAPI passes it on rather than calling it a parse error, and the API's handler
    answers it as JSON (with ``Connection: close`` from its headers)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(CLOSE))


def too_large(max_bytes: int) -> BodyRefused:
    return BodyRefused(413, f"the request body is larger than {max_bytes} bytes")


def too_slow() -> BodyRefused:
    return BodyRefused(408, "the request body did not arrive in time")


def declared_length(scope: Scope) -> int | None:
    """The Content-Length the client declared; None without one. Raises ValueError for
    one that is not a plain non-negative number (several values included)."""
    values = [value for name, value in scope["headers"] if name == b"content-length"]
    if not values:
        return None
    if len(values) > 1 or not values[0].strip().isdigit():
        raise ValueError("not a length")
    return int(values[0])


class BodyLimit:
    """ASGI middleware: the cap and the read deadline described in the module doc."""

    __slots__ = ("app", "max_bytes", "read_timeout_s")

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = declared_length(scope)
        except ValueError:
            await _refuse(scope, send, BodyRefused(400, "Content-Length is not a valid length"))
            return
        if declared is not None and declared > self.max_bytes:
            await _refuse(scope, send, too_large(self.max_bytes))
            return
        reader = _BodyReader(receive, self.max_bytes, self.read_timeout_s)
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, reader.receive, watched_send)
        except BodyRefused as exc:
            # Reached here only when no exception handler answered it (a route that
            # reads its body outside FastAPI's parsing). Too late once answering began.
            if started:
                raise
            await _refuse(scope, send, exc)


class _BodyReader:
    """``receive`` for one request, counting body bytes against the cap and the
    deadline. Once the body is complete, messages (a disconnect) pass untouched."""

    __slots__ = ("_deadline", "_done", "_max", "_read", "_receive")

    def __init__(self, receive: Receive, max_bytes: int, timeout_s: float) -> None:
        self._receive = receive
        self._max = max_bytes
        self._read = 0
        self._done = False
        self._deadline = asyncio.get_running_loop().time() + timeout_s

    async def receive(self) -> Message:
        if self._done:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise too_slow() from None
        if message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if self._read > self._max:
                raise too_large(self._max)
            self._done = not message.get("more_body", False)
        else:
            self._done = True
        return message


async def _refuse(scope: Scope, send: Send, exc: BodyRefused) -> None:
    response = JSONResponse(
        error_body(error_code(exc.status_code), exc.detail), exc.status_code, headers=exc.headers
    )

    async def no_body() -> Message:  # the body is deliberately never read
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
