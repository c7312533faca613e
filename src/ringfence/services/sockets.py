"""One real-time socket's rules: who may open one, how many a user may hold, resuming
a device, the resync decision, flood control, and where each client frame goes.

The WebSocket route (``api/events.py``) only moves text and maps what this service
decides (:class:`Refused`, :class:`CloseReason`) to close codes. The client
authenticates with its first frame, so the token never appears in a URL or an access
log, and no frame is ever logged: call frames may hold SDP or candidates (privacy
invariant 2).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from ringfence.calls.session import CallError
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.realtime.connection import Connection, Transport
from ringfence.realtime.hub import Hub
from ringfence.realtime.throttle import TokenBucket
from ringfence.services.accounts import Accounts, UserSnapshot
from ringfence.services.calls import Calls, Device
from ringfence.services.errors import (
    REDIS_ERRORS,
    DatabaseBusy,
    Refusal,
    ServiceError,
    SessionEnded,
    refusal_of,
)
from ringfence.services.messaging import Messaging
from ringfence.services.stream import EventStream
from ringfence.services.views import user_view
from ringfence.wire.calls import CALL_CLIENT_TYPES, CodecError, parse_client_frame
from ringfence.wire.frames import (
    PONG,
    FrameError,
    error_event,
    frame_txn_id,
    message_ack,
    origin_allowed,
    parse_auth,
    parse_delivered,
    parse_frame,
    parse_message_send,
    ready_event,
)

log = logging.getLogger(__name__)

# A client refused this many frames in a row is flooding, not bursting: disconnect it.
FLOOD_LIMIT = 200
# message.send frames of all sockets in the database at once; the rest wait their turn
# here, not in the connection pool. Every socket may have one send under way, and with
# hundreds of senders a call frame's read queued behind all of them in the pool: ring
# latency p99 went from 14 ms to 0.3-4.7 s (bench, dm-postgres at 200-500 DMs/s). HTTP
# sends were bounded by their connections. 16 still gives SQLite's group commit
# batches, and leaves PostgreSQL's pool (30 connections) room for everything else.
SEND_CONCURRENCY = 16


class CloseReason(enum.Enum):
    """Why a socket is refused or closed; the route maps each to a close code."""

    POLICY = "policy"  # a frame it must not send, or flooding
    UNAUTHORIZED = "unauthorized"  # a bad token, or its session ended
    TRY_AGAIN_LATER = "try_again_later"  # the database is momentarily overloaded
    TOO_MANY = "too_many"  # the user holds too many sockets already


@dataclass(frozen=True, slots=True)
class Refused:
    reason: CloseReason
    error: str  # the error event's code, sent before closing
    detail: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket now (no error event first)."""

    reason: CloseReason
    text: str


class Sockets:
    def __init__(
        self,
        *,
        accounts: Accounts,
        hub: Hub,
        stream: EventStream,
        calls: Calls,
        messaging: Messaging,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._hub = hub
        self._stream = stream
        self._calls = calls
        self._messaging = messaging
        self._cfg = settings
        self._clock = clock
        self._send_slots = asyncio.Semaphore(SEND_CONCURRENCY)

    @property
    def auth_timeout_s(self) -> float:
        return self._cfg.ws_auth_timeout_s

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Cross-site WebSocket hijacking is refused before the upgrade (see
        :func:`ringfence.wire.frames.origin_allowed`)."""
        return origin_allowed(origin, host, self._cfg.public_urls)

    async def open(self, first_frame: str, transport: Transport) -> Socket | Refused:
        """Authenticate the socket with its first frame, admit it as a device (a new
        one, or one resumed within its calls' grace period), send ``ready``, and start
        delivering its events."""
        try:
            frame = parse_auth(parse_frame(first_frame))
            auth = await self._accounts.authenticate(frame.token)
        except FrameError as exc:
            return Refused(CloseReason.POLICY, exc.code, exc.detail)
        except DatabaseBusy as exc:
            # Not "session ended": the client keeps its token and reconnects later.
            return Refused(CloseReason.TRY_AGAIN_LATER, exc.code, exc.detail)
        except ServiceError as exc:
            return Refused(CloseReason.UNAUTHORIZED, exc.code, exc.detail)
        user_id = auth.user.id
        resuming = frame.device_id is not None and await self._hub.is_connected(
            user_id, frame.device_id
        )
        if not resuming and (
            len(await self._hub.devices(user_id)) >= self._cfg.ws_max_connections_per_user
        ):
            return Refused(
                CloseReason.TOO_MANY, "too_many_connections", "too many open connections"
            )
        conn = Connection(
            user_id=user_id,
            device_id=frame.device_id or secrets.token_urlsafe(12),
            transport=transport,
            history=self._stream.history,
            queue_size=self._cfg.ws_send_queue,
            session_id=auth.session_id,
        )
        # Subscribe before reading the position: nothing can fall between the two.
        previous = await self._hub.attach(conn)
        if previous is not None:
            previous.replaced()
        try:
            current = await self._stream.position(user_id)
            since = frame.since
            # The client holds positions this server never issued (a reset database):
            # it must drop its state and reload instead of waiting for what won't come.
            resync = since is not None and since > current
            if resync:
                since = None
            ready = ready_event(user_view(auth.user), conn.device_id, current, resync=resync)
            await transport.send_text(ready)
        except BaseException:
            # The client left (or the database failed) before it was ready: it must not
            # go on counting as a connected device.
            await self._hub.detach(conn)
            raise
        conn.start(since=since, current=current)
        socket = Socket(self, conn, UserSnapshot(auth.user))
        await self._calls.device_connected(socket.device())
        return socket

    async def closed(self, socket: Socket) -> None:
        """The socket is gone: stop its sender, and give its calls their grace period."""
        await socket.conn.stop()
        await self._hub.detach(socket.conn)
        await self._calls.device_disconnected(socket.device())


class Socket:
    """One open socket: its connection, who it is, and its flood control."""

    __slots__ = ("_bucket", "_sockets", "conn", "user")

    def __init__(self, sockets: Sockets, conn: Connection, user: UserSnapshot) -> None:
        self._sockets = sockets
        self.conn = conn
        self.user = user
        # Made at the first frame: it starts full either way, and idle sockets need none.
        self._bucket: TokenBucket | None = None

    def device(self) -> Device:
        """The Device the call service wants, built when needed rather than kept."""
        return Device(user=self.user.user(), device_id=self.conn.device_id)

    async def receive(self, text: str | None) -> Close | None:
        """Act on one client frame (``None``: a binary one). Every refusal is answered
        with an error event; returns a :class:`Close` when the socket must go."""
        sockets = self._sockets
        if self._bucket is None:
            self._bucket = TokenBucket(
                rate=sockets._cfg.ws_messages_per_second,
                burst=sockets._cfg.ws_message_burst,
                now=sockets._clock.monotonic,
            )
        if not self._bucket.take():
            if self._bucket.refused_in_a_row >= FLOOD_LIMIT:
                return Close(CloseReason.POLICY, "flooding")
            if self._bucket.refused_in_a_row == 1:
                self.conn.reply(error_event("rate_limited", "too many frames; slow down"))
            return None
        if text is None:
            self.conn.reply(error_event("malformed", "binary frames are not supported"))
            return None
        try:
            frame = parse_frame(text)
        except FrameError as exc:
            self.conn.reply(error_event(exc.code, exc.detail))
            return None
        kind = frame["type"]
        if kind in CALL_CLIENT_TYPES:
            return await self._call_frame(frame)
        if kind == "message.send":
            return await self._send_message(frame)
        if kind == "typing":
            to = frame.get("to")
            if not isinstance(to, str):
                self.conn.reply(error_event("malformed", "typing needs a 'to' username"))
            else:
                await self._typing(to)
        elif kind == "message.delivered":
            try:
                receipt = parse_delivered(frame)
            except FrameError as exc:
                self.conn.reply(error_event(exc.code, exc.detail))
            else:
                await self._delivered(receipt.user, receipt.up_to)
        elif kind == "ping":
            self.conn.reply(PONG)
        elif kind == "auth":
            self.conn.reply(
                error_event("already_authenticated", "this connection is authenticated")
            )
        else:
            self.conn.reply(error_event("unknown_type", f"unknown frame type {kind[:40]!r}"))
        return None

    async def _call_frame(self, frame: dict[str, Any]) -> Close | None:
        sockets = self._sockets
        call_id = frame.get("call_id") if isinstance(frame.get("call_id"), str) else None
        ref: dict[str, Any] = {"call_id": call_id[:64]} if call_id else {}
        # A socket authenticated once; a session logged out or an account suspended
        # since must not go on signaling calls through it, even before it is closed.
        assert self.conn.session_id is not None
        if not await sockets._accounts.session_active(self.conn.session_id):
            return Close(CloseReason.UNAUTHORIZED, "session ended")
        try:
            await sockets._calls.handle(self.device(), parse_client_frame(frame))
        except CodecError as exc:
            self.conn.reply(error_event("malformed", exc.detail, **ref))
        except CallError as exc:
            self.conn.reply(error_event(exc.code, exc.detail, **ref))
        except Exception:
            # A bug must cost this frame, not the user's connection. The frame itself
            # is not logged: it may hold SDP or candidates (privacy invariant 2).
            log.exception("call frame %s failed", frame["type"])
            self.conn.reply(
                error_event("internal", "the server could not handle this frame", **ref)
            )
        return None

    async def _send_message(self, frame: dict[str, Any]) -> Close | None:
        """``POST /api/v1/conversations/{to}/messages`` over the socket: the same
        service call, so the same idempotency, rules, limits and errors. The ack is
        queued only once the message is committed (the service returns after the
        COMMIT), behind the events queued before it. Neither the frame nor the text is
        ever logged."""
        sockets = self._sockets
        txn_id = frame_txn_id(frame)
        try:
            send = parse_message_send(frame)
        except FrameError as exc:
            self._refuse_send(exc.code, exc.detail, txn_id, exc.status, fields=exc.fields)
            return None
        async with sockets._send_slots:
            return await self._send_checked(send.to, send.text, send.txn_id)

    async def _send_checked(self, to: str, text: str, txn_id: str) -> Close | None:
        sockets = self._sockets
        if self.conn.closed:
            return None  # signed out or given up on meanwhile: it closes; nothing is sent
        session_id = self.conn.session_id
        assert session_id is not None  # every socket authenticated with a session
        try:
            # The session is read with the send, in its one SELECT: a session signed
            # out, revoked or expired, or an account suspended, without this node
            # being told (the announcement lost) sends nothing more through the socket.
            message = await sockets._messaging.send(
                self.user, to, text, txn_id, session=sockets._accounts.live_session(session_id)
            )
        except SessionEnded:
            return Close(CloseReason.UNAUTHORIZED, "session ended")
        except Exception as exc:
            # Answered as the HTTP route answers it (api/errors.py).
            refusal = refusal_of(exc)
            if refusal is None:
                # A bug costs this send, not the connection; as HTTP's 500.
                log.exception("message.send failed")
                refusal = Refusal(500, "internal", "internal server error")
            elif isinstance(exc, REDIS_ERRORS):
                log.warning("message.send: Redis unreachable (%s)", type(exc).__name__)
            self._refuse_send(
                refusal.code, refusal.detail, txn_id, refusal.status, refusal.retry_after_s
            )
            return None
        self.conn.reply(message_ack(txn_id, message))
        return None

    def _refuse_send(
        self,
        code: str,
        detail: str,
        txn_id: str | None,
        status: int | None,
        retry_after: int | None = None,
        *,
        fields: list[str] | None = None,
    ) -> None:
        self.conn.reply(
            error_event(
                code, detail, txn_id=txn_id, status=status, retry_after=retry_after, fields=fields
            )
        )

    async def _delivered(self, user: str, up_to: int) -> None:
        # Answered with nothing: the sender is told, where it may be told, and a
        # receipt that can't be recorded now is only a receipt.
        try:
            await self._sockets._messaging.mark_delivered(self.user, user, up_to)
        except ServiceError:
            pass  # no conversation with them (or no such person): nothing to record
        except Exception:
            log.warning("a delivery receipt could not be recorded", exc_info=True)

    async def _typing(self, to: str) -> None:
        # Answered with nothing, whatever happens (see Messaging.typing); a notice that
        # cannot be sent now is simply not sent.
        try:
            await self._sockets._messaging.typing(self.user, to)
        except Exception:
            log.warning("a typing notice could not be sent", exc_info=True)
