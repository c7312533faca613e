"""Follows, blocks and looking people up.

Blocking is symmetric in effect: it stops DMs (and calls) in both directions and
removes any follow between the two users, so a blocked user keeps no standing such as
"the callee follows me" that could be used to reach the blocker later.

A block is never revealed to the person blocked. They may still follow the one who
blocked them, with the same 204 as anyone, and see it in their own following list; it
gives them no standing (every rule that could use it, calls and messages, refuses a
blocked pair first, and a follow *by* them only ever widens what reaches *them*), and
the one who blocked them does not see them among their followers. The one who
blocked is told so when they try to follow or message.

A deleted account is, for all of this, a name nobody has (:func:`find_user`).

Follows, unfollows and profile lookups are limited per account
(:mod:`ringfence.services.limits`): following and unfollowing in a loop is a way to
nag, and looking names up in bulk is a way to list who is here.
"""

from __future__ import annotations

from ringfence.clock import Clock
from ringfence.services.accounts import AuthContext, is_username
from ringfence.services.errors import Forbidden, InvalidInput, NotFound
from ringfence.services.limits import ActionLimits
from ringfence.services.views import user_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import Store, User
from ringfence.wire.models import UserView


async def find_user(store: Store, username: str, *, deleted: bool = False) -> User:
    """The user of that name, or 404. A deleted account is 404 too, exactly like a
    name nobody has, unless ``deleted``: only reading (and marking read, accepting,
    declining) the conversation one had with it may still find it."""
    user = await store.users.by_username(username) if is_username(username) else None
    if user is None or (user.deleted_at is not None and not deleted):
        raise NotFound("user_not_found", "no such user")
    return user


def _not_self(me: User, other: User, action: str) -> None:
    if me.id == other.id:
        raise InvalidInput(f"cannot_{action}_self", f"you cannot {action} yourself")


class Social:
    def __init__(self, db: Database, clock: Clock, limits: ActionLimits) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits

    async def follow(self, auth: AuthContext, username: str) -> None:
        await self._limits.count(self._limits.follows, auth.user.id)
        async with self._db.write() as store:
            other = await find_user(store, username)
            _not_self(auth.user, other, "follow")
            if await store.social.blocks(auth.user.id, other.id):
                # My own block: following would quietly re-grant "following" standing.
                raise Forbidden("you_blocked", "you blocked this user; unblock them to follow")
            # Blocked by them or not, the same: see the module's docstring.
            await store.social.follow(auth.user.id, other.id, self._clock.now())

    async def unfollow(self, auth: AuthContext, username: str) -> None:
        await self._limits.count(self._limits.follows, auth.user.id)
        async with self._db.write() as store:
            other = await find_user(store, username)
            await store.social.unfollow(auth.user.id, other.id)

    async def profile(self, auth: AuthContext, username: str) -> UserView:
        """Look someone up by username (404 when there is no one by that name)."""
        await self._limits.count(self._limits.lookups, auth.user.id)
        async with self._db.read() as store:
            return user_view(await find_user(store, username))

    async def block(self, auth: AuthContext, username: str) -> None:
        async with self._db.write() as store:
            other = await find_user(store, username)
            _not_self(auth.user, other, "block")
            await store.social.block(auth.user.id, other.id, self._clock.now())
            await store.social.unfollow(auth.user.id, other.id)
            await store.social.unfollow(other.id, auth.user.id)

    async def unblock(self, auth: AuthContext, username: str) -> None:
        async with self._db.write() as store:
            other = await find_user(store, username)
            await store.social.unblock(auth.user.id, other.id)

    async def following(self, auth: AuthContext) -> list[UserView]:
        async with self._db.read() as store:
            return [user_view(u) for u in await store.social.following(auth.user.id)]

    async def followers(self, auth: AuthContext) -> list[UserView]:
        async with self._db.read() as store:
            return [user_view(u) for u in await store.social.followers(auth.user.id)]

    async def blocked(self, auth: AuthContext) -> list[UserView]:
        async with self._db.read() as store:
            return [user_view(u) for u in await store.social.blocked_by(auth.user.id)]
