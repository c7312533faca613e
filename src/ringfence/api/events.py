"""``GET /api/v1/events``: the real-time WebSocket, as transport only.

The route reads the first frame (the client authenticates with it, so the token never
appears in a URL or an access log), hands it and every later frame to the socket
service (``services/sockets.py``), and maps what the service decides to close codes.
The Hub and Connection deliver events.

A server holds thousands of these sockets, so each keeps little. uvicorn hands them to
:class:`EventsFirst` ahead of FastAPI's middleware stack and router; an app served any
other way reaches the same handler through a plain Starlette ``WebSocketRoute`` (not
FastAPI's, which keeps two exit stacks per socket for dependencies this route does not
have). A socket keeps its user's id, session id and a ``UserSnapshot``, not the ORM
``User``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ringfence.realtime.connection import CLOSE_SESSION_ENDED
from ringfence.services.sockets import CloseReason, Refused, Sockets
from ringfence.wire.frames import error_event

CLOSE_POLICY = 1008
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_CODES = {
    CloseReason.POLICY: CLOSE_POLICY,
    CloseReason.UNAUTHORIZED: CLOSE_SESSION_ENDED,  # 4401: a bad token, or its session ended
    CloseReason.TRY_AGAIN_LATER: 1013,  # the database is momentarily overloaded
    CloseReason.TOO_MANY: 4429,
}

PATH = "/api/v1/events"


async def events(ws: WebSocket) -> None:
    """The route's endpoint, for an app served without :class:`EventsFirst`."""
    await serve_socket(ws, ws.app.state.services.sockets)


async def serve_socket(ws: WebSocket, sockets: Sockets) -> None:
    if not sockets.origin_allowed(ws.headers.get("origin"), ws.headers.get("host")):
        # Refused before the upgrade: the browser sees a 403 and no socket opens.
        await ws.close(CLOSE_POLICY)
        return
    # Nothing reads the handshake's headers again; an idle socket need not keep them.
    ws.scope["headers"].clear()
    await ws.accept()
    try:
        first = await asyncio.wait_for(ws.receive_text(), sockets.auth_timeout_s)
    except TimeoutError:
        await _refuse(
            ws,
            Refused(CloseReason.POLICY, "auth_timeout", "no auth frame was received in time"),
            CLOSE_AUTH_TIMEOUT,
        )
        return
    except KeyError:  # a binary frame
        await _refuse(
            ws, Refused(CloseReason.POLICY, "auth_required", "the first frame must be a text frame")
        )
        return
    except WebSocketDisconnect:
        return
    try:
        socket = await sockets.open(first, ws)
    except WebSocketDisconnect:
        return
    if isinstance(socket, Refused):
        await _refuse(ws, socket)
        return
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            close = await socket.receive(message.get("text"))
            if close is not None:
                await ws.close(CLOSE_CODES[close.reason], close.text)
                return
    except WebSocketDisconnect:
        pass
    finally:
        await sockets.closed(socket)


# Starlette's own route: FastAPI's would hold dependency machinery for each socket.
router = APIRouter()
router.routes.append(WebSocketRoute(PATH, events, name="events"))


class EventsFirst:
    """ASGI wrapper around the whole app that hands ``/api/v1/events`` sockets to
    :func:`serve_socket` before FastAPI's middleware stack and router see them.

    Those layers do nothing for this socket (no dependencies, no HTTP errors, no
    headers to add) but keep coroutine frames, an exit stack and exception-handling
    closures alive for the socket's whole life: ~7 KiB per idle socket (tracemalloc,
    ``python -m bench memory``). The route above stays, for an app served without
    this wrapper; both check the origin and everything else the same way.
    """

    __slots__ = ("app",)

    def __init__(self, app: Starlette) -> None:
        self.app = app

    # A plain function returning the awaitable (an ASGI 3 app; server_config says so):
    # as a coroutine it would keep one more frame alive for each socket's whole life.
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            sockets: Sockets = self.app.state.services.sockets
            return serve_socket(WebSocket(scope, receive, send), sockets)
        return self.app(scope, receive, send)


async def _refuse(ws: WebSocket, refused: Refused, code: int | None = None) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        try:
            await ws.send_text(error_event(refused.error, refused.detail))
            await ws.close(code if code is not None else CLOSE_CODES[refused.reason], refused.error)
        except (RuntimeError, WebSocketDisconnect, OSError):
            pass
