"""A person's own data, as one JSON document they can keep (issue 12, the account
page): their account, settings, follows, blocks and every message they can see,
including call records.

It is streamed a page of messages at a time, each page read in its own short
transaction, so a long history costs the server neither a long transaction nor its
size in memory. Counted against ``exports_per_day``: each export reads everything.

Not in it: password hash, session tokens, addresses (never stored), and messages
withheld from this person (they never saw them). SDP and candidates are never stored,
so they cannot be exported either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ringfence.clock import Clock
from ringfence.services.accounts import AuthContext
from ringfence.services.limits import ActionLimits
from ringfence.services.settings import load_settings
from ringfence.services.views import message_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import User

EXPORT_FORMAT = "ringfence-export/1"
PAGE = 500


class AccountExport:
    def __init__(self, db: Database, clock: Clock, limits: ActionLimits) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits

    async def start(self, auth: AuthContext) -> AsyncIterator[bytes]:
        """Count the export (raising RateLimited before anything is sent), then
        return the document's chunks."""
        await self._limits.count(self._limits.exports, auth.user.id)
        return self._chunks(auth.user)

    async def _chunks(self, me: User) -> AsyncIterator[bytes]:
        async with self._db.read() as store:
            user = await store.users.by_id(me.id)
            if user is None:
                return
            settings = await load_settings(store, me.id)
            following = [u.username for u in await store.social.following(me.id)]
            followers = [u.username for u in await store.social.followers(me.id)]
            blocked = [u.username for u in await store.social.blocked_by(me.id)]
            memberships = await store.conversations.memberships(me.id)
            others = await store.users.by_ids([other for _, other, _ in memberships])
        head: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "exported_at": self._clock.now().isoformat(),
            "account": {
                "id": user.id,
                "username": user.username,
                "display_name": user.display_name,
                "verified": user.verified,
                "created_at": user.created_at.isoformat(),
            },
            "settings": settings.model_dump(mode="json"),
            "following": following,
            "followers": followers,
            "blocked": blocked,
        }
        yield _encode(head)[:-1].encode() + b', "conversations": ['
        for index, (conversation_id, other_id, state) in enumerate(memberships):
            other = others.get(other_id)
            if other is None:
                continue
            names = {user.id: user.username, other.id: other.username}
            opening = {"with": other.username, "state": state}
            yield (b"," if index else b"") + _encode(opening)[:-1].encode() + b', "messages": ['
            after, first = 0, True
            while True:
                async with self._db.read() as store:
                    page = await store.messages.after(
                        conversation_id, viewer_id=user.id, after=after, limit=PAGE
                    )
                if page:
                    views = [
                        message_view(m, names, viewer_id=user.id).model_dump_json() for m in page
                    ]
                    yield ("" if first else ",").encode() + ",".join(views).encode()
                    first = False
                    after = page[-1].id
                if len(page) < PAGE:
                    break
            yield b"]}"
        yield b"]}\n"


def _encode(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
