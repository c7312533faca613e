"""This node's live connections, their subscriptions on the Bus, and the presence
registry they are recorded in (which devices are connected, on any node)."""

from __future__ import annotations

import abc

from ringfence.realtime.bus import Bus, device_topic, user_topic
from ringfence.realtime.connection import Connection


class Presence(abc.ABC):
    """Which devices of a user are connected, on any node."""

    @abc.abstractmethod
    async def devices(self, user_id: int) -> list[str]: ...

    @abc.abstractmethod
    async def is_connected(self, user_id: int, device_id: str) -> bool: ...


class PresenceRegistry(Presence):
    """Where a node records the devices connected to it (the Hub does, as they come
    and go), and where every node reads who is connected anywhere."""

    async def start(self) -> None:
        """Begin announcing this node, if the backend needs it."""

    async def close(self) -> None:
        """Withdraw this node and its devices, if the backend needs it."""

    @abc.abstractmethod
    async def add(self, user_id: int, device_id: str) -> None:
        """This node now holds a connection of the device."""

    @abc.abstractmethod
    async def remove(self, user_id: int, device_id: str) -> None:
        """This node no longer holds a connection of the device."""


class Hub(Presence):
    """Registry of local connections, recorded in the presence registry every node reads.

    A device id can be resumed by a new connection (a client reconnecting after a
    network change keeps its calls). The newer connection then owns the id, and the
    older one's late clean-up must not unregister it.
    """

    def __init__(self, bus: Bus, presence: PresenceRegistry) -> None:
        self._bus = bus
        self._presence = presence
        self._by_user: dict[int, dict[str, Connection]] = {}
        self._count = 0  # connections holding subscriptions
        # After a Bus outage, live events may have been lost: each connection reads
        # back from the database whatever durable events it has not sent.
        bus.on_resync(self._resync)

    async def attach(self, conn: Connection) -> Connection | None:
        """Subscribe the connection; events published after this returns reach it.
        Returns the older connection that held the same device id, if any."""
        deliver = conn.deliver  # one bound method for both subscriptions
        user_sub = await self._bus.subscribe(user_topic(conn.user_id), deliver)
        device_sub = await self._bus.subscribe(device_topic(conn.user_id, conn.device_id), deliver)
        conn.subscriptions = (user_sub, device_sub)
        self._count += 1
        devices = self._by_user.setdefault(conn.user_id, {})
        previous = devices.get(conn.device_id)
        devices[conn.device_id] = conn
        await self._presence.add(conn.user_id, conn.device_id)
        # A client the connection gives up on (too slow) leaves at once, even while
        # its socket lingers behind unread data.
        conn.on_give_up(self.detach)
        return previous

    async def detach(self, conn: Connection) -> None:
        subs, conn.subscriptions = conn.subscriptions, ()
        if subs:
            self._count -= 1
            for sub in subs:
                await self._bus.unsubscribe(sub)
        devices = self._by_user.get(conn.user_id)
        if devices is not None and devices.get(conn.device_id) is conn:
            del devices[conn.device_id]
            if not devices:
                del self._by_user[conn.user_id]
            await self._presence.remove(conn.user_id, conn.device_id)

    def local_devices(self, user_id: int) -> list[Connection]:
        return list(self._by_user.get(user_id, {}).values())

    def local_users(self) -> list[int]:
        """The users with a connection on this node."""
        return list(self._by_user)

    def end_sessions(self, user_id: int, session_id: int | None = None) -> int:
        """Close this node's sockets of a revoked session (None: of every session of
        the user), with CLOSE_SESSION_ENDED. Returns how many were closed."""
        closed = 0
        for conn in self.local_devices(user_id):
            if not conn.closed and (session_id is None or conn.session_id == session_id):
                conn.end_session()
                closed += 1
        return closed

    async def devices(self, user_id: int) -> list[str]:
        return await self._presence.devices(user_id)

    async def is_connected(self, user_id: int, device_id: str) -> bool:
        return await self._presence.is_connected(user_id, device_id)

    def _resync(self) -> None:
        for devices in self._by_user.values():
            for conn in devices.values():
                conn.resync()

    def connection_count(self) -> int:
        return self._count

    async def close_all(self) -> None:
        for devices in list(self._by_user.values()):
            for conn in list(devices.values()):
                await conn.stop()
                await self.detach(conn)
