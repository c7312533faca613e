"""Per-user privacy and call settings.

Every read goes to the database (no per-node cache), so a change takes effect for the
very next call on every node, whichever client made it. Withdrawing direct connections
also moves a direct call in progress behind the relay at once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from ringfence.clock import Clock
from ringfence.services.accounts import AuthContext
from ringfence.services.views import DEFAULT_SETTINGS, settings_view
from ringfence.storage.database import Database
from ringfence.storage.repositories import Store
from ringfence.wire.models import SettingsView


async def load_settings(store: Store, user_id: int) -> SettingsView:
    row = await store.settings.get(user_id)
    return DEFAULT_SETTINGS if row is None else settings_view(row)


class SettingsService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        direct_connections_changed: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """``direct_connections_changed(user_id)`` runs after a committed change of
        ``direct_connections``, so that calls in progress obey it too."""
        self._db = db
        self._clock = clock
        self._direct_connections_changed = direct_connections_changed

    async def get(self, auth: AuthContext) -> SettingsView:
        async with self._db.read() as store:
            return await load_settings(store, auth.user.id)

    async def update(self, auth: AuthContext, changes: dict[str, object]) -> SettingsView:
        """Apply an already-validated partial update atomically; returns the stored result."""
        values = dict(changes)
        if "call_audience" in values:
            # Store a canonical, de-duplicated list so equal settings compare equal.
            audience = values["call_audience"]
            assert isinstance(audience, list)
            values["call_audience"] = json.dumps(sorted(set(audience)))
        now = self._clock.now()
        async with self._db.write() as store:
            if await store.settings.get(auth.user.id) is None:
                await store.settings.create(auth.user.id, now)
            if values:
                await store.settings.update(auth.user.id, values, now)
            updated = await load_settings(store, auth.user.id)
        if "direct_connections" in values and self._direct_connections_changed is not None:
            await self._direct_connections_changed(auth.user.id)
        return updated
