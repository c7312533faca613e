"""Follows and blocks.

Blocking is symmetric in effect: it stops DMs (and calls) in both directions and
removes any follow between the two users, so a blocked user keeps no standing such as
"the callee follows me" that could be used to reach the blocker later.
"""

from __future__ import annotations

from ringfence.clock import Clock
from ringfence.services.accounts import AuthContext, is_username
from ringfence.services.errors import InvalidInput, NotFound
from ringfence.services.views import UserView
from ringfence.storage.database import Database
from ringfence.storage.repositories import Store, User


async def find_user(store: Store, username: str) -> User:
    user = await store.users.by_username(username) if is_username(username) else None
    if user is None:
        raise NotFound("user_not_found", "no such user")
    return user


def _not_self(me: User, other: User, action: str) -> None:
    if me.id == other.id:
        raise InvalidInput(f"cannot_{action}_self", f"you cannot {action} yourself")


class Social:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def follow(self, auth: AuthContext, username: str) -> None:
        async with self._db.write() as store:
            other = await find_user(store, username)
            _not_self(auth.user, other, "follow")
            if await store.social.blocked_either_way(auth.user.id, other.id):
                # Following someone you blocked (or who blocked you) would quietly
                # re-grant "following" standing; refuse without saying who blocked.
                raise InvalidInput("cannot_follow", "you cannot follow this user")
            await store.social.follow(auth.user.id, other.id, self._clock.now())

    async def unfollow(self, auth: AuthContext, username: str) -> None:
        async with self._db.write() as store:
            other = await find_user(store, username)
            await store.social.unfollow(auth.user.id, other.id)

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
            return [UserView.of(u) for u in await store.social.following(auth.user.id)]

    async def followers(self, auth: AuthContext) -> list[UserView]:
        async with self._db.read() as store:
            return [UserView.of(u) for u in await store.social.followers(auth.user.id)]

    async def blocked(self, auth: AuthContext) -> list[UserView]:
        async with self._db.read() as store:
            return [UserView.of(u) for u in await store.social.blocked_by(auth.user.id)]
