"""Accounts and sessions: registration, login, logout, bearer-token authentication.

Tokens are 256-bit random values. Only their SHA-256 is stored, so a copy of the
database cannot be replayed as a login; a session row per device makes logins on
several devices independent and individually revocable.

Every HTTP request and socket authenticates, so a token that checked out is kept for a
few seconds in an :class:`AuthCache` (keyed by the token's hash) instead of costing a
read transaction each time. Revocations reach it at once: a logout or a suspension is
announced on the Bus (``SessionEnd``), and every node drops the session from its cache
and closes its sockets. What is announced nowhere (``ringfence admin suspend`` without
Redis) is found by :meth:`Accounts.check_sockets`, which re-reads the users behind
this node's sockets every few seconds; the cache forgets everything within its TTL.

Sessions end (:class:`SessionLifetime`): after ``session_idle_days`` without use and
``session_max_days`` after their login, however much they are used; then only the
password starts a new one. An ended session is refused when it is next presented (and
deleted then), and :meth:`Accounts.sweep_sessions` deletes the others once a minute
and closes their sockets on every node. An open WebSocket counts as use. Nothing but
the two timestamps the session row always had is needed: no address is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import make_transient_to_detached

from ringfence.clock import Clock
from ringfence.realtime.bus import Subscription
from ringfence.services.devices import UNKNOWN as UNKNOWN_DEVICE
from ringfence.services.devices import describe_user_agent
from ringfence.services.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ringfence.services.limits import ActionLimits
from ringfence.services.passwords import Passwords
from ringfence.services.stream import EventStream, SessionEnd, UserChanged
from ringfence.services.throttle import AccountThrottle
from ringfence.services.views import user_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import NEVER, IntegrityError, LiveSession, Store, User
from ringfence.tasks import raise_if_cancelled, stop
from ringfence.wire.events import UserUpdated
from ringfence.wire.models import DELETED_ACCOUNT_NAME, SessionView, UserView
from ringfence.wire.text import is_visible_line

if TYPE_CHECKING:
    from ringfence.realtime.hub import Hub

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"[a-z0-9_]{3,32}")
PASSWORD_MIN = 10
PASSWORD_MAX = 1024
DISPLAY_NAME_MAX = 64
TOKEN_PREFIX = "rf_"  # noqa: S105 - a prefix, not a secret
# What a deleted account is renamed to: "deleted_account_" and 10 random hex digits,
# so that even where a client shows only the username it says what it is. Nobody can
# sign up with a name that starts with "deleted_": it never collides, and nobody can
# pass for a deleted account.
DELETED_PREFIX = "deleted_"
_TOMBSTONE_PREFIX = DELETED_PREFIX + "account_"
# How long a deleted account's username stays taken (deleted_username_hold_days).
USERNAME_HOLD = timedelta(days=30)
# Writing last_seen on every request would turn every read into a write.
_TOUCH_EVERY = timedelta(minutes=5)


# Users looked up per query when re-checking this node's sockets.
CHECK_BATCH = 500
# How often (at most) a node looks for ended sessions, and how many it ends per round.
SWEEP_EVERY_S = 60.0
SWEEP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class SessionLifetime:
    """How long a session lasts: ``idle`` since it was last used, and ``max_age``
    since its login, whichever ends first."""

    idle: timedelta
    max_age: timedelta

    @classmethod
    def days(cls, idle: float, max_age: float) -> SessionLifetime:
        return cls(timedelta(days=idle), timedelta(days=max_age))

    def ends(self, created_at: datetime, last_seen_at: datetime) -> datetime:
        return min(last_seen_at + self.idle, created_at + self.max_age)


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who is calling: the user and the session (device login) the token belongs to."""

    user: User
    session_id: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Every column of a user but the password hash, which has no business in a cache.
_USER_COLUMNS = tuple(
    attr.key for attr in sa_inspect(User).column_attrs if attr.key != "password_hash"
)
_ID = _USER_COLUMNS.index("id")
_USERNAME = _USER_COLUMNS.index("username")


class Party(Protocol):
    """Who sends: all a message's rules need of its sender (a ``User``, or an open
    socket's ``UserSnapshot`` without building one)."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


class UserSnapshot:
    """A user's columns without the ORM object (its ``InstanceState``, ~1 KiB) and
    without the password hash: what a cache entry or an open socket keeps."""

    __slots__ = ("_values",)

    def __init__(self, user: User) -> None:
        self._values = tuple(getattr(user, key) for key in _USER_COLUMNS)

    @property
    def id(self) -> int:
        user_id: int = self._values[_ID]
        return user_id

    @property
    def username(self) -> str:
        username: str = self._values[_USERNAME]
        return username

    def user(self) -> User:
        """A fresh detached ``User``, as a finished read transaction leaves one; its
        password hash is not loaded, and reading it raises."""
        user = User(**dict(zip(_USER_COLUMNS, self._values, strict=True)))
        make_transient_to_detached(user)
        return user


@dataclass(frozen=True, slots=True)
class _Cached:
    expires: float  # monotonic
    session_id: int
    user: UserSnapshot


class AuthCache:
    """Token hash -> the session and user it authenticates, for ``ttl_s`` seconds.

    Bounded: beyond ``max_entries`` the oldest entries go. Only successful lookups are
    kept, so a revoked or unknown token is never answered from here. A lookup that
    raced with a revocation is not stored: every drop moves the epoch on, and
    :meth:`put` refuses an entry read under an older epoch.
    """

    def __init__(self, ttl_s: float, max_entries: int, monotonic: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str) -> _Cached | None:
        entry = self._entries.get(token_hash)
        if entry is not None and entry.expires <= self._monotonic():
            del self._entries[token_hash]
            return None
        return entry

    def put(
        self,
        token_hash: str,
        session_id: int,
        user: User,
        *,
        since: float,
        epoch: int,
        lasts_s: float | None = None,
    ) -> None:
        """Keep a lookup that started at ``since`` (monotonic) under ``epoch``; never
        beyond ``lasts_s`` from now, the time its session has left."""
        if self._ttl_s <= 0 or epoch != self.epoch:
            return
        expires = since + self._ttl_s
        if lasts_s is not None:
            expires = min(expires, self._monotonic() + lasts_s)
        self._entries.pop(token_hash, None)
        self._entries[token_hash] = _Cached(expires, session_id, UserSnapshot(user))
        self.purge_expired()
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def purge_expired(self) -> None:
        now = self._monotonic()
        while self._entries:
            token_hash, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                return
            del self._entries[token_hash]

    def drop_session(self, session_id: int) -> None:
        self._drop(lambda entry: entry.session_id == session_id)

    def drop_user(self, user_id: int) -> None:
        self._drop(lambda entry: entry.user.id == user_id)

    def clear(self) -> None:
        self._drop(lambda _entry: True)

    def _drop(self, matches: Callable[[_Cached], bool]) -> None:
        # Revocations are rare next to lookups: a scan is cheaper than an index.
        self.epoch += 1
        for token_hash in [key for key, entry in self._entries.items() if matches(entry)]:
            del self._entries[token_hash]


def validate_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "invalid_username",
            "username must be 3-32 characters of lowercase letters, digits and _",
        )
    return username


def is_username(name: str) -> bool:
    """Whether ``name`` could be a username. Lookups check this first: no account can
    have any other name, and some strings (NUL) cannot even be sent to PostgreSQL."""
    return USERNAME_RE.fullmatch(name) is not None


def validate_display_name(name: str) -> str:
    name = name.strip()
    if len(name) > DISPLAY_NAME_MAX or not is_visible_line(name):
        raise InvalidInput(
            "invalid_display_name",
            f"display_name must be one line of 1-{DISPLAY_NAME_MAX} characters, not only spaces",
        )
    return name


class Accounts:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        clock: Clock,
        throttle: AccountThrottle | None = None,
        stream: EventStream | None = None,
        cache: AuthCache | None = None,
        *,
        sessions: SessionLifetime | None = None,
        limits: ActionLimits | None = None,
        username_hold: timedelta = USERNAME_HOLD,
    ) -> None:
        self._stream = stream
        self._username_hold = username_hold
        self._limits = limits
        self._lifetime = sessions  # None: sessions last until logout (admin tools)
        self._next_sweep = 0.0  # monotonic
        self._db = db
        self._passwords = passwords
        self._clock = clock
        self._throttle = throttle
        self._cache = cache
        self._hub: Hub | None = None
        self._watch: Subscription | None = None
        self._checker: asyncio.Task[None] | None = None
        self._check_now: asyncio.Future[None] | None = None  # wakes the checker early

    async def register(
        self,
        username: str,
        password: str,
        display_name: str | None,
        *,
        client: str | None = None,
        user_agent: str | None = None,
    ) -> tuple[UserView, str]:
        if self._throttle is not None:
            await self._throttle.register(client)
        validate_username(username)
        if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            raise InvalidInput(
                "invalid_password",
                f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long",
            )
        name = validate_display_name(display_name if display_name is not None else username)
        password_hash = await self._passwords.hash(password)
        token = _new_token()
        now = self._clock.now()
        try:
            async with self._db.write() as store:
                if await self._unavailable(store, username, now):
                    raise Conflict("username_taken", "that username is taken")
                user = await store.users.add(
                    username=username, display_name=name, password_hash=password_hash, now=now
                )
                await store.settings.create(user.id, now)
                await store.sessions.add(
                    user_id=user.id,
                    token_hash=hash_token(token),
                    now=now,
                    device=describe_user_agent(user_agent),
                )
        except IntegrityError as exc:  # lost a race for the same username
            raise Conflict("username_taken", "that username is taken") from exc
        return user_view(user), token

    async def _unavailable(self, store: Store, username: str, now: datetime) -> bool:
        """Someone has this name, or had it and deleted their account less than the
        hold ago, or it is a deleted account's kind of name: all three are answered
        "taken", alike. A hold that is over is forgotten here."""
        if username.startswith(DELETED_PREFIX):
            return True
        if await store.users.by_username(username) is not None:
            return True
        held_at = await store.users.username_held_since(username)
        if held_at is None:
            return False
        if held_at > now - self._username_hold:
            return True
        await store.users.release_holds(held_before=now - self._username_hold)
        return False

    async def login(
        self,
        username: str,
        password: str,
        *,
        client: str | None = None,
        user_agent: str | None = None,
    ) -> tuple[UserView, str]:
        """Same error, and the same hashing work, for an unknown user and a wrong password."""
        if self._throttle is not None:
            await self._throttle.login(username, client)
        user = None
        if is_username(username):
            async with self._db.read() as store:
                user = await store.users.by_username(username)
        if user is not None and user.deleted_at is not None:
            user = None  # a deleted account is answered as a name nobody has
        ok = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Unauthorized("invalid_credentials", "wrong username or password")
        if user.suspended:
            raise Forbidden("account_suspended", "this account is suspended")
        token = _new_token()
        now = self._clock.now()
        rehash = self._passwords.needs_rehash(user.password_hash)
        new_hash = await self._passwords.hash(password) if rehash else None
        async with self._db.write() as store:
            await store.sessions.add(
                user_id=user.id,
                token_hash=hash_token(token),
                now=now,
                device=describe_user_agent(user_agent),
            )
            if new_hash is not None:
                await store.users.set_password_hash(user.id, new_hash)
        return user_view(user), token

    async def authenticate(self, token: str | None) -> AuthContext:
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise Unauthorized("unauthorized", "a valid bearer token is required")
        token_hash = hash_token(token)  # the only key: the token itself is never kept
        cache = self._cache
        epoch, started = 0, 0.0
        if cache is not None:
            hit = cache.get(token_hash)
            if hit is not None:
                return AuthContext(user=hit.user.user(), session_id=hit.session_id)
            epoch, started = cache.epoch, self._clock.monotonic()
        async with self._db.read() as store:
            found = await store.sessions.user_for_token(token_hash)
        if found is None:
            raise Unauthorized("unauthorized", "a valid bearer token is required")
        session, user = found
        now = self._clock.now()
        lifetime = self._lifetime
        if lifetime is not None and lifetime.ends(session.created_at, session.last_seen_at) <= now:
            await self._end_expired(session.id, user.id)
            raise Unauthorized("session_expired", "this session has expired; sign in again")
        if user.suspended:
            raise Unauthorized("unauthorized", "this account is suspended")
        last_seen = session.last_seen_at
        if now - last_seen > _TOUCH_EVERY:
            async with self._db.write() as store:
                await store.sessions.touch(session.id, now)
            last_seen = now
        if cache is not None:
            lasts_s = None
            if lifetime is not None:
                lasts_s = (lifetime.ends(session.created_at, last_seen) - now).total_seconds()
            cache.put(token_hash, session.id, user, since=started, epoch=epoch, lasts_s=lasts_s)
        return AuthContext(user=user, session_id=session.id)

    async def still_valid(self, auth: AuthContext) -> bool:
        """Is this session still signed in and its account not suspended? For long-lived
        connections, which authenticated once, before they act on the user's behalf."""
        return await self.session_active(auth.session_id)

    async def session_active(self, session_id: int) -> bool:
        """:meth:`still_valid` by session id. Always read from the database, in one
        statement that is its own unit of work (a call frame's check: one round trip)."""
        async with self._db.read_one() as store:
            return await store.sessions.is_active(self.live_session(session_id))

    def live_session(self, session_id: int) -> LiveSession:
        """What a statement must find for ``session_id`` to be live now: for a check
        read inside another statement (:meth:`Messaging.send` from a socket)."""
        if self._lifetime is None:
            return LiveSession(session_id, NEVER, NEVER)
        now = self._clock.now()
        return LiveSession(session_id, now - self._lifetime.idle, now - self._lifetime.max_age)

    async def logout(self, auth: AuthContext) -> None:
        async with self._db.write() as store:
            await store.sessions.revoke(auth.session_id)
        # This node at once, whatever becomes of the announcement; then every node
        # (this one again, harmlessly) forgets the token and closes its sockets.
        self._session_ended(SessionEnd(auth.user.id, auth.session_id))
        if self._stream is not None:
            await self._stream.end_session(auth.user.id, auth.session_id)

    # --- revoked sessions on this node ----------------------------------------------

    async def watch_sessions(self, hub: Hub, *, check_every_s: float) -> None:
        """Follow the session ends every node announces (dropping them from the cache,
        closing their sockets on this node), and every ``check_every_s`` seconds close
        the sockets of users suspended without an announcement (``ringfence admin``
        without Redis). Stopped by :meth:`close`."""
        if self._stream is None:
            raise RuntimeError("watching sessions needs the event stream")
        self._hub = hub
        self._watch = await self._stream.watch_session_ends(self._session_ended, self._missed)
        self._checker = asyncio.get_running_loop().create_task(
            self._check_loop(check_every_s), name="session-checks"
        )

    async def close(self) -> None:
        await stop(self._checker)
        self._checker = None
        if self._watch is not None and self._stream is not None:
            await self._stream.unwatch(self._watch)
            self._watch = None

    async def sweep_sessions(self) -> int:
        """End the sessions that have expired, everywhere: delete them, drop them from
        the token caches and close their sockets on every node. First mark the sessions
        behind this node's open sockets as used (an open socket is use). Returns how
        many sessions ended."""
        lifetime = self._lifetime
        if lifetime is None:
            return 0
        now = self._clock.now()
        hub = self._hub
        if hub is not None:
            open_sessions = sorted(
                {
                    conn.session_id
                    for user_id in hub.local_users()
                    for conn in hub.local_devices(user_id)
                    if conn.session_id is not None and not conn.closed
                }
            )
            for at in range(0, len(open_sessions), CHECK_BATCH):
                async with self._db.write() as store:
                    await store.sessions.touch_many(
                        open_sessions[at : at + CHECK_BATCH], now, before=now - _TOUCH_EVERY
                    )
        ended = 0
        while True:
            async with self._db.write() as store:
                expired = await store.sessions.delete_expired(
                    seen_before=now - lifetime.idle,
                    created_before=now - lifetime.max_age,
                    limit=SWEEP_BATCH,
                )
            for session_id, user_id in expired:
                await self._announce_end(session_id, user_id)
            ended += len(expired)
            if len(expired) < SWEEP_BATCH:
                break
        if ended:
            log.info("ended %d expired sessions", ended)
        return ended

    async def _end_expired(self, session_id: int, user_id: int) -> None:
        """A session found expired when presented: delete it, and tell every node."""
        async with self._db.write() as store:
            await store.sessions.revoke(session_id)
        await self._announce_end(session_id, user_id)

    async def _announce_end(self, session_id: int, user_id: int) -> None:
        self._session_ended(SessionEnd(user_id, session_id))
        if self._stream is not None:
            await self._stream.end_session(user_id, session_id)

    async def check_sockets(self) -> int:
        """Close this node's sockets of users who are suspended (or gone) and drop them
        from the cache; returns how many sockets were closed. One query per
        CHECK_BATCH users with a socket here, not one per socket."""
        if self._cache is not None:
            self._cache.purge_expired()
        hub = self._hub
        if hub is None:
            return 0
        users = hub.local_users()
        closed = 0
        for at in range(0, len(users), CHECK_BATCH):
            batch = users[at : at + CHECK_BATCH]
            async with self._db.read() as store:
                active = await store.users.active_among(batch)
            for user_id in batch:
                if user_id not in active:
                    if self._cache is not None:
                        self._cache.drop_user(user_id)
                    closed += hub.end_sessions(user_id)
        if closed:
            log.info("closed %d sockets of suspended accounts", closed)
        return closed

    async def _check_loop(self, every_s: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # A bare future, not wait_for(): on Python 3.11 wait_for() swallows a
            # cancellation that arrives as the awaited thing completes.
            wake = self._check_now = loop.create_future()
            timer = loop.call_later(every_s, _resolve, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._check_now = None
            try:
                await self.check_sockets()
            except Exception:
                log.exception("checking the sessions of open sockets failed")
                raise_if_cancelled()
            if self._lifetime is not None and self._clock.monotonic() >= self._next_sweep:
                self._next_sweep = self._clock.monotonic() + SWEEP_EVERY_S
                try:
                    await self.sweep_sessions()
                except Exception:
                    log.exception("ending expired sessions failed")
                    raise_if_cancelled()

    def _session_ended(self, notice: SessionEnd | UserChanged) -> None:
        if isinstance(notice, UserChanged):
            if self._cache is not None:
                self._cache.drop_user(notice.user_id)
            return
        if self._cache is not None:
            if notice.session_id is None:
                self._cache.drop_user(notice.user_id)
            else:
                self._cache.drop_session(notice.session_id)
        if self._hub is not None:
            self._hub.end_sessions(notice.user_id, notice.session_id)

    def _missed(self) -> None:
        """The Bus may have lost session ends: forget every cached token, and re-check
        this node's sockets now rather than at the next round."""
        if self._cache is not None:
            self._cache.clear()
        if self._check_now is not None:
            _resolve(self._check_now)

    # --- the account page ---------------------------------------------------------

    async def sessions(self, auth: AuthContext) -> list[SessionView]:
        """My signed-in devices, oldest first (those expired but not yet swept are
        left out: they cannot be used)."""
        now = self._clock.now()
        async with self._db.read() as store:
            rows = await store.sessions.for_user(auth.user.id)
        lifetime = self._lifetime
        return [
            SessionView(
                id=row.id,
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                device=row.device or UNKNOWN_DEVICE,
                current=row.id == auth.session_id,
            )
            for row in rows
            if lifetime is None or lifetime.ends(row.created_at, row.last_seen_at) > now
        ]

    async def end_session(self, auth: AuthContext, session_id: int) -> None:
        """Sign one of my sessions out at once: its token stops working and its
        sockets close, on every node. Another person's session id is "not found"."""
        async with self._db.write() as store:
            ended = await store.sessions.revoke_of(auth.user.id, session_id)
        if not ended:
            raise NotFound("session_not_found", "no such session")
        await self._announce_end(session_id, auth.user.id)

    async def change_password(
        self, auth: AuthContext, current: str, new: str, *, client: str | None = None
    ) -> None:
        """Check the current password (as a login attempt would be counted), set the
        new one, and sign out every other session."""
        me = auth.user
        if self._throttle is not None:
            await self._throttle.login(me.username, client)
        if not PASSWORD_MIN <= len(new) <= PASSWORD_MAX:
            raise InvalidInput(
                "invalid_password",
                f"the new password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long",
            )
        async with self._db.read() as store:
            user = await store.users.by_id(me.id)
        ok = await self._passwords.verify(user.password_hash if user else None, current)
        if user is None or not ok:
            raise Forbidden("wrong_password", "the current password is not right")
        new_hash = await self._passwords.hash(new)
        async with self._db.write() as store:
            await store.users.set_password_hash(me.id, new_hash)
            ended = await store.sessions.revoke_others(me.id, keep=auth.session_id)
        for session_id in ended:
            await self._announce_end(session_id, me.id)

    async def delete_account(
        self, auth: AuthContext, password: str, *, client: str | None = None
    ) -> None:
        """Delete my account, after checking my password (counted as a sign-in
        attempt would be; a wrong one is 403 ``wrong_password``).

        Everyone I have a conversation with hears first (``user.updated``, my old
        username with the name "Deleted account"), in the same transaction as:
        the account's row becomes a deleted one (a random ``deleted_...`` username,
        no password hash, suspended, ``deleted_at``), my old username is held for
        ``deleted_username_hold_days``, and my sessions, settings, follows, blocks,
        event stream, read positions and undelivered messages are deleted
        (:meth:`Users.forget`). Then every node forgets my tokens and closes my
        sockets. The messages I sent stay with the people who received them, shown
        as from "Deleted account"; those I received stay with their senders.
        """
        me = auth.user
        if self._throttle is not None:
            await self._throttle.login(me.username, client)
        async with self._db.read() as store:
            user = await store.users.by_id(me.id)
        if user is not None and user.deleted_at is not None:
            user = None
        ok = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Forbidden("wrong_password", "the password is not right")
        now = self._clock.now()
        envelopes = {}
        async with self._db.write() as store:
            tombstone = _TOMBSTONE_PREFIX + secrets.token_hex(5)
            while await store.users.by_username(tombstone) is not None:  # 2^-40: rare
                tombstone = _TOMBSTONE_PREFIX + secrets.token_hex(5)
            partners = await store.conversations.partners(me.id)
            if self._stream is not None and partners:
                # My row and my partners' streams in one statement, in id order, as a
                # send, a read or a rename locks them; mine after theirs would deadlock
                # with a partner's read receipt to me. (The position this reserves on my
                # own stream goes unused: that stream is forgotten below.)
                positions = await store.users.next_stream_positions([me.id, *partners])
                del positions[me.id]
                gone = UserUpdated(user=UserView.gone(me.id, user.username))
                envelopes = await self._stream.append_reserved(
                    store, dict.fromkeys(positions, gone), positions
                )
            await store.users.mark_deleted(
                me.id, username=tombstone, display_name=DELETED_ACCOUNT_NAME, now=now
            )
            await store.users.forget(me.id)
            await store.users.release_holds(held_before=now - self._username_hold)
            if self._username_hold > timedelta(0):
                await store.users.hold_username(user.username, now)
        log.info("account %d deleted", me.id)
        # This node at once; then every node forgets the tokens and closes the sockets.
        self._session_ended(SessionEnd(me.id))
        if self._stream is not None:
            await self._stream.end_sessions(me.id)
            for user_id, envelope in sorted(envelopes.items()):
                await self._stream.publish(user_id, envelope)

    async def rename(self, auth: AuthContext, display_name: str) -> UserView:
        """Change my display name. Everyone I have a conversation with, and my own
        devices, hear of it (``user.updated``), so their screens change without a
        reload."""
        me = auth.user
        name = validate_display_name(display_name)
        if self._limits is not None:
            await self._limits.count(self._limits.renames, me.id)
        envelopes = {}
        async with self._db.write() as store:
            positions = {}
            if self._stream is not None:
                # The streams' rows first, mine among them, all in one statement in id
                # order (as a send, a read or a delivery locks them): renaming my row
                # first would hold it while waiting for a partner's, and a partner's
                # read receipt to me holds theirs while waiting for mine: a deadlock.
                told = [me.id, *await store.conversations.partners(me.id)]
                positions = await store.users.next_stream_positions(told)
            await store.users.set_display_name(me.id, name)
            user = await store.users.by_id(me.id)
            if user is None:
                raise Unauthorized("unauthorized", "a valid bearer token is required")
            view = user_view(user)
            if self._stream is not None:
                updated = UserUpdated(user=view)
                envelopes = await self._stream.append_reserved(
                    store, dict.fromkeys(positions, updated), positions
                )
        await self._changed(me.id)
        if self._stream is not None:
            for user_id, envelope in sorted(envelopes.items()):
                await self._stream.publish(user_id, envelope)
        return view

    async def _changed(self, user_id: int) -> None:
        """A user's row changed: this node forgets them at once, and so does every
        other (a node that can't be told forgets within ``auth_cache_ttl_s``)."""
        if self._cache is not None:
            self._cache.drop_user(user_id)
        if self._stream is not None:
            try:
                await self._stream.user_changed(user_id)
            except Exception:
                log.warning("other nodes could not be told of a changed user", exc_info=True)

    async def profile(self, username: str) -> UserView:
        if not is_username(username):
            raise NotFound("user_not_found", "no such user")
        async with self._db.read() as store:
            user = await store.users.by_username(username)
        if user is None or user.deleted_at is not None:
            raise NotFound("user_not_found", "no such user")
        return user_view(user)

    async def set_verified(self, username: str, verified: bool) -> UserView:
        """Admin action: grant or remove the verified badge."""
        if not is_username(username):
            raise NotFound("user_not_found", f"no user named {username!r}")
        async with self._db.write() as store:
            user = await store.users.by_username(username)
            if user is None:
                raise NotFound("user_not_found", f"no user named {username!r}")
            await store.users.set_verified(user.id, verified)
        await self._changed(user.id)
        return user_view(user)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
