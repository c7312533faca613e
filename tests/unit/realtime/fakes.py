"""Paired fakes for Connection: a transport standing in for the client's socket, and
a history standing in for the database's event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ringfence.realtime.bus import Envelope


class SocketGone(Exception):
    """What a server raises when the peer has gone (each server has its own name)."""


class FakeTransport:
    """The client's end of a socket. ``reading`` cleared means the client stopped
    reading: sends (and the close frame behind them) block, as on a full TCP buffer."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closes: list[tuple[int, str]] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.gone = False
        self._changed = asyncio.Event()

    async def send_text(self, data: str) -> None:
        await self.reading.wait()
        if self.gone:
            raise SocketGone
        self.sent.append(json.loads(data))
        self._changed.set()

    async def close(self, code: int, reason: str) -> None:
        await self.reading.wait()
        if self.gone:
            raise SocketGone
        self.closes.append((code, reason))
        self._changed.set()

    def positions(self) -> list[int]:
        return [event["pos"] for event in self.sent if "pos" in event]

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition`` holds; the timeout only stops a broken test hanging."""

        async def watch() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(watch(), timeout)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition`` holds, letting other tasks run; the timeout only stops
    a broken test from hanging."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


def event(pos: int | None, **extra: Any) -> Envelope:
    body: dict[str, Any] = {"type": "test", **extra}
    if pos is not None:
        body["pos"] = pos
    return Envelope(json.dumps(body), pos=pos)


class FakeHistory:
    """A user's durable events, as EventStream.history would read them back."""

    def __init__(self, upto: int = 0) -> None:
        self.events: dict[int, Envelope] = {}
        self.reads: list[tuple[int, int | None, int]] = []
        self.add(upto)

    def add(self, upto: int) -> None:
        for pos in range(len(self.events) + 1, upto + 1):
            self.events[pos] = event(pos)

    async def __call__(
        self, user_id: int, *, after: int, upto: int | None, limit: int
    ) -> list[Envelope]:
        self.reads.append((after, upto, limit))
        await asyncio.sleep(0)  # a real read yields to the loop
        last = max(self.events, default=0) if upto is None else upto
        return [self.events[p] for p in range(after + 1, last + 1) if p in self.events][:limit]
