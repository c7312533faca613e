"""``GET /api/v1/events``: the real-time WebSocket.

The client authenticates with its first frame, so the token never appears in a URL or
an access log. Everything after that is delegated: the Hub and Connection deliver
events, services handle the client's frames.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from ringfence.calls.codec import CALL_CLIENT_TYPES, CodecError, parse_client_frame
from ringfence.realtime.connection import Connection
from ringfence.realtime.protocol import (
    FrameError,
    error_event,
    origin_allowed,
    parse_auth,
    parse_frame,
)
from ringfence.realtime.throttle import TokenBucket
from ringfence.services.accounts import AuthContext
from ringfence.services.calls import CallError, Device
from ringfence.services.container import Services
from ringfence.services.errors import ServiceError
from ringfence.services.stream import encode
from ringfence.services.views import UserView
from ringfence.storage.repositories import User

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4401
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_TOO_MANY = 4429
# A client refused this many frames in a row is flooding, not bursting: disconnect it.
FLOOD_LIMIT = 200


@router.websocket("/api/v1/events")
async def events(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    origin, host = ws.headers.get("origin"), ws.headers.get("host")
    if not origin_allowed(origin, host, services.settings.public_urls):
        # Refused before the upgrade: the browser sees a 403 and no socket opens.
        await ws.close(CLOSE_POLICY)
        return
    await ws.accept()
    try:
        conn = await _authenticate(ws, services)
    except WebSocketDisconnect:
        return
    if conn is None:
        return
    device = Device(user=conn_user(ws), device_id=conn.device_id)
    await services.calls.device_connected(device)
    try:
        await _receive_loop(ws, conn, device, services)
    except WebSocketDisconnect:
        pass
    finally:
        await conn.stop()
        await services.hub.detach(conn)
        await services.calls.device_disconnected(device)


async def _authenticate(ws: WebSocket, services: Services) -> Connection | None:
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
    except ServiceError as exc:
        await _refuse(ws, CLOSE_UNAUTHORIZED, exc.code, exc.detail)
        return None
    user = auth.user
    resuming = frame.device_id is not None and await services.hub.is_connected(
        user.id, frame.device_id
    )
    if not resuming and (
        len(await services.hub.devices(user.id)) >= services.settings.ws_max_connections_per_user
    ):
        await _refuse(ws, CLOSE_TOO_MANY, "too_many_connections", "too many open connections")
        return None
    ws.state.user = user
    ws.state.auth = auth
    conn = Connection(
        user_id=user.id,
        device_id=frame.device_id or secrets.token_urlsafe(12),
        transport=ws,
        history=lambda *, after, upto, limit: services.stream.history(
            user.id, after=after, upto=upto, limit=limit
        ),
        queue_size=services.settings.ws_send_queue,
        session_id=auth.session_id,
    )
    # Subscribe before reading the position: nothing can fall between the two.
    previous = await services.hub.attach(conn)
    if previous is not None:
        previous.replaced()
    try:
        current = await services.stream.position(user.id)
        since = frame.since
        ready: dict[str, object] = {
            "type": "ready",
            "user": UserView.of(user).model_dump(mode="json"),
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
    return conn


def conn_user(ws: WebSocket) -> User:
    user: User = ws.state.user
    return user


async def _receive_loop(
    ws: WebSocket, conn: Connection, device: Device, services: Services
) -> None:
    settings = services.settings
    bucket = TokenBucket(
        rate=settings.ws_messages_per_second,
        burst=settings.ws_message_burst,
        now=services.clock.monotonic,
    )
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
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
            await _call_frame(ws, conn, device, frame, services)
        elif kind == "ping":
            conn.reply(encode({"type": "pong"}))
        elif kind == "auth":
            conn.reply(error_event("already_authenticated", "this connection is authenticated"))
        else:
            conn.reply(error_event("unknown_type", f"unknown frame type {kind[:40]!r}"))


def ws_auth(ws: WebSocket) -> AuthContext:
    auth: AuthContext = ws.state.auth
    return auth


async def _call_frame(
    conn_ws: WebSocket,
    conn: Connection,
    device: Device,
    frame: dict[str, Any],
    services: Services,
) -> None:
    call_id = frame.get("call_id") if isinstance(frame.get("call_id"), str) else None
    ref: dict[str, Any] = {"call_id": call_id[:64]} if call_id else {}
    # A socket authenticated once; a session logged out or an account suspended since
    # must not go on signaling calls through it.
    if not await services.accounts.still_valid(ws_auth(conn_ws)):
        await conn_ws.close(CLOSE_UNAUTHORIZED, "session ended")
        return
    try:
        await services.calls.handle(device, parse_client_frame(frame))
    except CodecError as exc:
        conn.reply(error_event("malformed", exc.detail, **ref))
    except CallError as exc:
        conn.reply(error_event(exc.code, exc.detail, **ref))
    except Exception:
        # A bug must cost this frame, not the user's connection. The frame itself is
        # not logged: it may hold SDP or candidates (privacy invariant 2).
        log.exception("call frame %s failed", frame["type"])
        conn.reply(error_event("internal", "the server could not handle this frame", **ref))


async def _refuse(ws: WebSocket, code: int, error: str, detail: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        try:
            await ws.send_text(error_event(error, detail))
            await ws.close(code, error)
        except (RuntimeError, WebSocketDisconnect, OSError):
            pass
