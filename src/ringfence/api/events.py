"""``GET /api/v1/events``: the real-time WebSocket.

The client authenticates with its first frame, so the token never appears in a URL or
an access log. Everything after that is delegated: the Hub and Connection deliver
events, services handle the client's frames.

A server holds thousands of these sockets, so each keeps little. uvicorn hands them to
:class:`EventsFirst` ahead of FastAPI's middleware stack and router; an app served any
other way reaches the same handler through a plain Starlette ``WebSocketRoute`` (not
FastAPI's, which keeps two exit stacks per socket for dependencies this route does not
have). A socket keeps its user's id, session id and a :class:`UserSnapshot`, not the
ORM ``User``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ringfence.calls.codec import CALL_CLIENT_TYPES, CodecError, parse_client_frame
from ringfence.realtime.connection import CLOSE_SESSION_ENDED, Connection
from ringfence.realtime.protocol import (
    FrameError,
    error_event,
    origin_allowed,
    parse_auth,
    parse_frame,
)
from ringfence.realtime.throttle import TokenBucket
from ringfence.services.accounts import UserSnapshot
from ringfence.services.calls import CallError, Device
from ringfence.services.container import Services
from ringfence.services.errors import DatabaseBusy, ServiceError
from ringfence.services.stream import encode
from ringfence.services.views import UserView

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = CLOSE_SESSION_ENDED  # 4401: a bad token, or its session ended
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_TOO_MANY = 4429
CLOSE_TRY_AGAIN_LATER = 1013  # the database is momentarily overloaded
# A client refused this many frames in a row is flooding, not bursting: disconnect it.
FLOOD_LIMIT = 200


PATH = "/api/v1/events"


async def events(ws: WebSocket) -> None:
    """The route's endpoint, for an app served without :class:`EventsFirst`."""
    services: Services = ws.app.state.services
    await serve_socket(ws, services)


async def serve_socket(ws: WebSocket, services: Services) -> None:
    origin, host = ws.headers.get("origin"), ws.headers.get("host")
    if not origin_allowed(origin, host, services.settings.public_urls):
        # Refused before the upgrade: the browser sees a 403 and no socket opens.
        await ws.close(CLOSE_POLICY)
        return
    await ws.accept()
    try:
        authenticated = await _authenticate(ws, services)
    except WebSocketDisconnect:
        return
    if authenticated is None:
        return
    conn, user = authenticated
    await services.calls.device_connected(_device(conn, user))
    try:
        await _receive_loop(ws, conn, user, services)
    except WebSocketDisconnect:
        pass
    finally:
        await conn.stop()
        await services.hub.detach(conn)
        await services.calls.device_disconnected(_device(conn, user))


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            services: Services = self.app.state.services
            await serve_socket(WebSocket(scope, receive, send), services)
            return
        await self.app(scope, receive, send)


def _device(conn: Connection, user: UserSnapshot) -> Device:
    """The Device the call service wants, built when needed rather than kept."""
    return Device(user=user.user(), device_id=conn.device_id)


async def _authenticate(
    ws: WebSocket, services: Services
) -> tuple[Connection, UserSnapshot] | None:
    timeout = services.settings.ws_auth_timeout_s
    try:
        text = await asyncio.wait_for(ws.receive_text(), timeout)
    except TimeoutError:
        await _refuse(ws, CLOSE_AUTH_TIMEOUT, "auth_timeout", "no auth frame was received in time")
        return None
    except KeyError:  # a binary frame
        await _refuse(ws, CLOSE_POLICY, "auth_required", "the first frame must be a text frame")
        return None
    try:
        frame = parse_auth(parse_frame(text))
        auth = await services.accounts.authenticate(frame.token)
    except FrameError as exc:
        await _refuse(ws, CLOSE_POLICY, exc.code, exc.detail)
        return None
    except DatabaseBusy as exc:
        # Not "session ended": the client keeps its token and reconnects later.
        await _refuse(ws, CLOSE_TRY_AGAIN_LATER, exc.code, exc.detail)
        return None
    except ServiceError as exc:
        await _refuse(ws, CLOSE_UNAUTHORIZED, exc.code, exc.detail)
        return None
    user_id = auth.user.id
    resuming = frame.device_id is not None and await services.hub.is_connected(
        user_id, frame.device_id
    )
    if not resuming and (
        len(await services.hub.devices(user_id)) >= services.settings.ws_max_connections_per_user
    ):
        await _refuse(ws, CLOSE_TOO_MANY, "too_many_connections", "too many open connections")
        return None
    conn = Connection(
        user_id=user_id,
        device_id=frame.device_id or secrets.token_urlsafe(12),
        transport=ws,
        history=services.stream.history,
        queue_size=services.settings.ws_send_queue,
        session_id=auth.session_id,
    )
    # Subscribe before reading the position: nothing can fall between the two.
    previous = await services.hub.attach(conn)
    if previous is not None:
        previous.replaced()
    try:
        current = await services.stream.position(user_id)
        since = frame.since
        ready: dict[str, object] = {
            "type": "ready",
            "user": UserView.of(auth.user).model_dump(mode="json"),
            "device_id": conn.device_id,
            "pos": current,
        }
        if since is not None and since > current:
            # The client holds positions this server never issued (a reset database):
            # it must drop its state and reload instead of waiting for what won't come.
            ready["resync"] = True
            since = None
        await ws.send_text(encode(ready))
    except BaseException:
        # The client left (or the database failed) before it was ready: it must not
        # go on counting as a connected device.
        await services.hub.detach(conn)
        raise
    conn.start(since=since, current=current)
    return conn, UserSnapshot(auth.user)


async def _receive_loop(
    ws: WebSocket, conn: Connection, user: UserSnapshot, services: Services
) -> None:
    settings = services.settings
    # Made at the first frame: it starts full either way, and idle sockets need none.
    bucket: TokenBucket | None = None
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if bucket is None:
            bucket = TokenBucket(
                rate=settings.ws_messages_per_second,
                burst=settings.ws_message_burst,
                now=services.clock.monotonic,
            )
        if not bucket.take():
            if bucket.refused_in_a_row >= FLOOD_LIMIT:
                await ws.close(CLOSE_POLICY, "flooding")
                return
            if bucket.refused_in_a_row == 1:
                conn.reply(error_event("rate_limited", "too many frames; slow down"))
            continue
        text = message.get("text")
        if text is None:
            conn.reply(error_event("malformed", "binary frames are not supported"))
            continue
        try:
            frame = parse_frame(text)
        except FrameError as exc:
            conn.reply(error_event(exc.code, exc.detail))
            continue
        kind = frame["type"]
        if kind in CALL_CLIENT_TYPES:
            await _call_frame(ws, conn, user, frame, services)
        elif kind == "typing":
            to = frame.get("to")
            if not isinstance(to, str):
                conn.reply(error_event("malformed", "typing needs a 'to' username"))
            else:
                await _typing_frame(user, to, services)
        elif kind == "ping":
            conn.reply(encode({"type": "pong"}))
        elif kind == "auth":
            conn.reply(error_event("already_authenticated", "this connection is authenticated"))
        else:
            conn.reply(error_event("unknown_type", f"unknown frame type {kind[:40]!r}"))


async def _call_frame(
    ws: WebSocket,
    conn: Connection,
    user: UserSnapshot,
    frame: dict[str, Any],
    services: Services,
) -> None:
    call_id = frame.get("call_id") if isinstance(frame.get("call_id"), str) else None
    ref: dict[str, Any] = {"call_id": call_id[:64]} if call_id else {}
    # A socket authenticated once; a session logged out or an account suspended since
    # must not go on signaling calls through it, even before its socket is closed.
    assert conn.session_id is not None
    if not await services.accounts.session_active(conn.session_id):
        await ws.close(CLOSE_UNAUTHORIZED, "session ended")
        return
    try:
        await services.calls.handle(_device(conn, user), parse_client_frame(frame))
    except CodecError as exc:
        conn.reply(error_event("malformed", exc.detail, **ref))
    except CallError as exc:
        conn.reply(error_event(exc.code, exc.detail, **ref))
    except Exception:
        # A bug must cost this frame, not the user's connection. The frame itself is
        # not logged: it may hold SDP or candidates (privacy invariant 2).
        log.exception("call frame %s failed", frame["type"])
        conn.reply(error_event("internal", "the server could not handle this frame", **ref))


async def _typing_frame(user: UserSnapshot, to: str, services: Services) -> None:
    # Answered with nothing, whatever happens (see Messaging.typing); a notice that
    # cannot be sent now is simply not sent.
    try:
        await services.messaging.typing(user.user(), to)
    except Exception:
        log.warning("a typing notice could not be sent", exc_info=True)


async def _refuse(ws: WebSocket, code: int, error: str, detail: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        try:
            await ws.send_text(error_event(error, detail))
            await ws.close(code, error)
        except (RuntimeError, WebSocketDisconnect, OSError):
            pass
