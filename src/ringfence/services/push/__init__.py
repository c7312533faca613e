"""Web Push: a closed tab still rings, and a background one hears of new messages.

A browser subscribes (``POST /api/v1/me/push-subscriptions``) with the endpoint its
push service gave it and its keys; the subscription belongs to the session that made
it and goes away with it (ON DELETE CASCADE). The server then pushes:

- ``{"type": "call.incoming", "call_id": ...}`` to each of the callee's subscriptions
  when a call first rings (TTL about the ring timeout, ``Urgency: high``);
- ``{"type": "call.ended", "call_id": ...}`` when a call whose callee was rung ends;
- ``{"type": "message.new", "from": USERNAME, "message_id": ..., "show": ...}`` for a
  new message, unless the recipient's ``message_notifications`` is ``off``.

Each body is encrypted for the browser (RFC 8291), so the push service learns only
that something was pushed at that time, and how big it was. The service worker asks
this server, with the session it holds, for anything else it shows (a caller's name,
a message's text).

Pushing never holds up a call or a send: :class:`Push` only puts a job on a bounded
queue; a few workers send them with short timeouts. A full queue drops the job and
counts it. Outcomes are counted in :attr:`Push.counts` and logged by subscription id,
never with the endpoint URL (a capability).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from ringfence.calls.state import CallState
from ringfence.clock import Clock
from ringfence.config import Settings
from ringfence.services.accounts import AuthContext
from ringfence.services.calls.store import CallStore
from ringfence.services.errors import InvalidInput, NotFound, RateLimited
from ringfence.services.push.endpoints import RefusedEndpoint, resolve
from ringfence.services.push.sender import Outcome, Sender
from ringfence.services.push.vapid import VapidKey
from ringfence.services.ratelimit import RateLimiter, retry_after
from ringfence.services.settings import load_settings
from ringfence.services.views import user_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import IntegrityError
from ringfence.tasks import raise_if_cancelled, stop
from ringfence.wire.models import UserView
from ringfence.wire.responses import PushSubscriptionView

__all__ = ["CallStoreLookup", "Push", "RefusedEndpoint", "VapidKey"]

log = logging.getLogger(__name__)

# Subscriptions one account may register (or re-register) per hour.
SUBSCRIBES_PER_HOUR = 30


@dataclass(frozen=True, slots=True)
class _Job:
    user_id: int
    kind: str  # "call.incoming", "call.ended", "message.new"
    call_id: str | None = None
    sender: str | None = None
    message_id: int | None = None
    request: bool = False


class LiveCalls(Protocol):
    """What the push service needs to know of a ringing call."""

    async def ringing_for(self, call_id: str, user_id: int) -> int | None:
        """The caller's id if ``call_id`` is ringing for ``user_id``, else None."""


class CallStoreLookup:
    """:class:`LiveCalls` over the calls' shared store (read only)."""

    def __init__(self, store: CallStore) -> None:
        self._store = store

    async def ringing_for(self, call_id: str, user_id: int) -> int | None:
        live = await self._store.get(call_id)
        if live is None or live.silenced:
            return None
        call = live.call
        if call.callee_id != user_id or call.state is not CallState.RINGING:
            return None
        return call.caller_id


def _b64url(value: str, *, field: str) -> bytes:
    try:
        if not value.isascii() or "=" in value.rstrip("="):
            raise ValueError
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (ValueError, binascii.Error):
        raise InvalidInput("invalid_push_keys", f"keys.{field} is not base64url") from None


def check_keys(p256dh: str, auth: str) -> None:
    """The subscription's keys are what a browser makes: a P-256 public key (65-byte
    uncompressed point on the curve) and a 16-byte auth secret."""
    point = _b64url(p256dh, field="p256dh")
    if len(point) != 65 or point[0] != 4:
        raise InvalidInput("invalid_push_keys", "keys.p256dh is not an uncompressed P-256 point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise InvalidInput("invalid_push_keys", "keys.p256dh is not a P-256 public key") from None
    if len(_b64url(auth, field="auth")) != 16:
        raise InvalidInput("invalid_push_keys", "keys.auth must be 16 bytes")


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


class Push:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        limiter: RateLimiter,
        key: VapidKey,
    ) -> None:
        self._db = db
        self._clock = clock
        self._cfg = settings
        self._limiter = limiter
        self.key = key
        self._allow_insecure = settings.push_allow_insecure_endpoints
        self._sender = Sender(
            key, timeout_s=settings.push_timeout_s, allow_insecure=self._allow_insecure
        )
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=settings.push_queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self.calls: LiveCalls | None = None  # set once Calls is built (app.py)
        # sent, gone, refused, failed, dropped (queue full), skipped (setting off)
        self.counts: collections.Counter[str] = collections.Counter()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self._allow_insecure:
            log.warning(
                "push_allow_insecure_endpoints is on: users can make this server send "
                "requests to http:// and private addresses (for tests only)"
            )
        for n in range(self._cfg.push_workers):
            self._workers.append(asyncio.create_task(self._work(), name=f"push-worker-{n}"))

    async def close(self) -> None:
        for task in self._workers:
            await stop(task)
        self._workers.clear()
        await self._sender.close()

    async def drained(self) -> None:
        """Wait until every queued push has been handled (tests, shutdown)."""
        await self._queue.join()

    # --- subscriptions -------------------------------------------------------------

    async def subscribe(self, auth: AuthContext, endpoint: str, p256dh: str, secret: str) -> int:
        """Register this session's subscription, or update it when the endpoint is
        known (a browser has one endpoint per origin; it moves to this session)."""
        wait = await self._limiter.hit(
            f"limit:push-subscribe:{auth.user.id}", limit=SUBSCRIBES_PER_HOUR, window_s=3600.0
        )
        if wait is not None:
            after = retry_after(wait)
            raise RateLimited(
                "push_subscribe_rate_limited",
                f"too many push subscriptions; try again in {after} seconds",
                after,
            )
        check_keys(p256dh, secret)
        await resolve(endpoint, allow_insecure=self._allow_insecure)
        digest = endpoint_hash(endpoint)
        try:
            return await self._register(auth, endpoint, digest, p256dh, secret)
        except IntegrityError:
            # The same endpoint registered at the same moment (two tabs): it is there
            # now, so this becomes an update.
            return await self._register(auth, endpoint, digest, p256dh, secret)

    async def _register(
        self, auth: AuthContext, endpoint: str, digest: str, p256dh: str, secret: str
    ) -> int:
        now = self._clock.now()
        async with self._db.write() as store:
            found = await store.push.by_endpoint(digest)
            if found is not None:
                await store.push.replace(
                    found.id,
                    user_id=auth.user.id,
                    session_id=auth.session_id,
                    p256dh=p256dh,
                    auth=secret,
                    now=now,
                )
                return found.id
            if await store.push.count_for_user(auth.user.id) >= (
                self._cfg.push_subscriptions_per_account
            ):
                raise InvalidInput(
                    "too_many_push_subscriptions",
                    f"an account may have {self._cfg.push_subscriptions_per_account} push "
                    "subscriptions; remove one, or sign out on a browser you no longer use",
                )
            row = await store.push.add(
                user_id=auth.user.id,
                session_id=auth.session_id,
                endpoint=endpoint,
                endpoint_hash=digest,
                p256dh=p256dh,
                auth=secret,
                now=now,
            )
            return row.id

    async def subscriptions(self, auth: AuthContext) -> list[PushSubscriptionView]:
        async with self._db.read() as store:
            rows = await store.push.for_user(auth.user.id)
        return [
            PushSubscriptionView(
                id=row.id,
                created_at=row.created_at,
                push_service=urlsplit(row.endpoint).hostname or "",
                current=row.session_id == auth.session_id,
            )
            for row in rows
        ]

    async def unsubscribe(self, auth: AuthContext, sub_id: int) -> None:
        async with self._db.write() as store:
            if not await store.push.delete_of(auth.user.id, sub_id):
                raise NotFound("push_subscription_not_found", "no such push subscription")

    async def ringing_caller(self, auth: AuthContext, call_id: str) -> UserView:
        """Who is calling me on ``call_id``, for the notification a push wakes the
        service worker to show. 404 unless that call is ringing for me now."""
        caller_id = (
            None if self.calls is None else await self.calls.ringing_for(call_id, auth.user.id)
        )
        if caller_id is not None:
            async with self._db.read() as store:
                caller = (await store.users.by_ids([caller_id])).get(caller_id)
            if caller is not None:
                return user_view(caller)
        raise NotFound("call_not_found", "no such call")

    # --- what gets pushed (CallNotifier, and messaging) ----------------------------

    async def call_incoming(self, user_id: int, call_id: str) -> None:
        self._enqueue(_Job(user_id, "call.incoming", call_id=call_id))

    async def call_ended(self, user_id: int, call_id: str) -> None:
        self._enqueue(_Job(user_id, "call.ended", call_id=call_id))

    async def message_new(
        self, user_id: int, sender: str, message_id: int, *, request: bool
    ) -> None:
        self._enqueue(
            _Job(user_id, "message.new", sender=sender, message_id=message_id, request=request)
        )

    def _enqueue(self, job: _Job) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.warning("push queue full: a %s push dropped", job.kind)

    # --- the workers ---------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._deliver(job)
            except Exception:
                raise_if_cancelled()
                self.counts["failed"] += 1
                log.exception("a %s push failed", job.kind)
            finally:
                self._queue.task_done()

    async def _deliver(self, job: _Job) -> None:
        async with self._db.read() as store:
            subs = await store.push.for_user(job.user_id)
            if not subs:
                return
            payload: dict[str, Any]
            if job.kind == "message.new":
                show = (await load_settings(store, job.user_id)).message_notifications
                if show == "off":
                    self.counts["skipped"] += 1
                    return
                payload = {
                    "type": "message.new",
                    "from": job.sender,
                    "message_id": job.message_id,
                    "request": job.request,
                    "show": show,
                }
            else:
                payload = {"type": job.kind, "call_id": job.call_id}
        if job.kind == "call.incoming" or job.kind == "call.ended":
            ttl, urgency = self._cfg.ring_timeout_s, "high"
        else:
            ttl, urgency = 24 * 3600, "normal"
        for sub in subs:
            outcome = await self._sender.send(
                sub.endpoint, sub.p256dh, sub.auth, payload, ttl_s=ttl, urgency=urgency
            )
            self.counts[outcome.value] += 1
            if outcome is Outcome.GONE:
                async with self._db.write() as store:
                    await store.push.delete(sub.id, sub.endpoint_hash)
                log.info("push subscription %d is gone; deleted", sub.id)
            elif outcome is not Outcome.SENT:
                log.info("a %s push to subscription %d: %s", job.kind, sub.id, outcome.value)
