"""This node's live connections, and their subscriptions on the Bus."""

from __future__ import annotations

from ringfence.realtime.bus import Bus, Subscription, device_topic, user_topic
from ringfence.realtime.connection import Connection


class Hub:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._by_user: dict[int, dict[str, Connection]] = {}
        self._subs: dict[str, tuple[Subscription, Subscription]] = {}

    async def attach(self, conn: Connection) -> None:
        """Subscribe the connection; events published after this returns reach it."""
        user_sub = await self._bus.subscribe(user_topic(conn.user_id), conn.deliver)
        device_sub = await self._bus.subscribe(device_topic(conn.device_id), conn.deliver)
        self._subs[conn.device_id] = (user_sub, device_sub)
        self._by_user.setdefault(conn.user_id, {})[conn.device_id] = conn

    async def detach(self, conn: Connection) -> None:
        subs = self._subs.pop(conn.device_id, None)
        if subs is not None:
            for sub in subs:
                await self._bus.unsubscribe(sub)
        devices = self._by_user.get(conn.user_id)
        if devices is not None:
            devices.pop(conn.device_id, None)
            if not devices:
                del self._by_user[conn.user_id]

    def local_devices(self, user_id: int) -> list[Connection]:
        return list(self._by_user.get(user_id, {}).values())

    def connection_count(self) -> int:
        return len(self._subs)

    async def close_all(self) -> None:
        for devices in list(self._by_user.values()):
            for conn in list(devices.values()):
                await conn.stop()
                await self.detach(conn)
