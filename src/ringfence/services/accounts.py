"""Accounts and sessions: registration, login, logout, bearer-token authentication.

Tokens are 256-bit random values. Only their SHA-256 is stored, so a copy of the
database cannot be replayed as a login; a session row per device makes logins on
several devices independent and individually revocable.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from ringfence.clock import Clock
from ringfence.services.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ringfence.services.passwords import Passwords
from ringfence.services.stream import EventStream
from ringfence.services.text import is_visible_line
from ringfence.services.throttle import AccountThrottle
from ringfence.services.views import UserView
from ringfence.storage.database import Database
from ringfence.storage.repositories import IntegrityError, User

USERNAME_RE = re.compile(r"[a-z0-9_]{3,32}")
PASSWORD_MIN = 10
PASSWORD_MAX = 1024
DISPLAY_NAME_MAX = 64
TOKEN_PREFIX = "rf_"  # noqa: S105 - a prefix, not a secret
# Writing last_seen on every request would turn every read into a write.
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who is calling: the user and the session (device login) the token belongs to."""

    user: User
    session_id: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
    ) -> None:
        self._stream = stream
        self._db = db
        self._passwords = passwords
        self._clock = clock
        self._throttle = throttle

    async def register(
        self,
        username: str,
        password: str,
        display_name: str | None,
        *,
        client: str | None = None,
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
                if await store.users.by_username(username) is not None:
                    raise Conflict("username_taken", "that username is taken")
                user = await store.users.add(
                    username=username, display_name=name, password_hash=password_hash, now=now
                )
                await store.settings.create(user.id, now)
                await store.sessions.add(user_id=user.id, token_hash=hash_token(token), now=now)
        except IntegrityError as exc:  # lost a race for the same username
            raise Conflict("username_taken", "that username is taken") from exc
        return UserView.of(user), token

    async def login(
        self, username: str, password: str, *, client: str | None = None
    ) -> tuple[UserView, str]:
        """Same error, and the same hashing work, for an unknown user and a wrong password."""
        if self._throttle is not None:
            await self._throttle.login(username, client)
        user = None
        if is_username(username):
            async with self._db.read() as store:
                user = await store.users.by_username(username)
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
            await store.sessions.add(user_id=user.id, token_hash=hash_token(token), now=now)
            if new_hash is not None:
                await store.users.set_password_hash(user.id, new_hash)
        return UserView.of(user), token

    async def authenticate(self, token: str | None) -> AuthContext:
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise Unauthorized("unauthorized", "a valid bearer token is required")
        async with self._db.read() as store:
            found = await store.sessions.user_for_token(hash_token(token))
        if found is None:
            raise Unauthorized("unauthorized", "a valid bearer token is required")
        session, user = found
        if user.suspended:
            raise Unauthorized("unauthorized", "this account is suspended")
        now = self._clock.now()
        if now - session.last_seen_at > _TOUCH_EVERY:
            async with self._db.write() as store:
                await store.sessions.touch(session.id, now)
        return AuthContext(user=user, session_id=session.id)

    async def still_valid(self, auth: AuthContext) -> bool:
        """Is this session still signed in and its account not suspended? For long-lived
        connections, which authenticated once, before they act on the user's behalf."""
        async with self._db.read() as store:
            return await store.sessions.is_active(auth.session_id)

    async def logout(self, auth: AuthContext) -> None:
        async with self._db.write() as store:
            await store.sessions.revoke(auth.session_id)
        if self._stream is not None:
            # A revoked token's open sockets close too, instead of going on receiving.
            await self._stream.end_session(auth.user.id, auth.session_id)

    async def profile(self, username: str) -> UserView:
        if not is_username(username):
            raise NotFound("user_not_found", "no such user")
        async with self._db.read() as store:
            user = await store.users.by_username(username)
        if user is None:
            raise NotFound("user_not_found", "no such user")
        return UserView.of(user)

    async def set_verified(self, username: str, verified: bool) -> UserView:
        """Admin action: grant or remove the verified badge."""
        if not is_username(username):
            raise NotFound("user_not_found", f"no user named {username!r}")
        async with self._db.write() as store:
            user = await store.users.by_username(username)
            if user is None:
                raise NotFound("user_not_found", f"no user named {username!r}")
            await store.users.set_verified(user.id, verified)
        return UserView.of(user)


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
