"""The transport switch of the Python client (client/switch.py) between two real aiortc
connections on this machine. Each device's call is a small :class:`Device` that gives
its switch what :class:`SwitchHost` asks for, and the server's part of a switch is
played in-process: it hands ``call.transport`` to both devices (the one that asked
makes the offer) and forwards the offer and the answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Literal

import pytest
from aiortc.mediastreams import MediaStreamTrack

from ringfence.calls.verification import fingerprints
from ringfence.client.api import IceServer
from ringfence.client.call_types import TransportSwitchFailed
from ringfence.client.media import ToneTrack
from ringfence.client.peer import LocalMedia, PeerConnection, Policy
from ringfence.client.switch import SwitchController
from ringfence.wire.call_states import CallState
from ringfence.wire.calls import ClientCallFrame, ReanswerFrame, ReofferFrame, TransportFrame

Server = Literal["switches", "refuses", "silent"]


class Device:
    """One side of a call, as its switch sees it."""

    call_id = "a-switch-test-call"
    ice_transport_policy: Policy = "all"
    connect_timeout_s = 30.0

    def __init__(self, frequency: float) -> None:
        self.state = CallState.CONNECTED
        self.ice_servers: list[IceServer] = []
        self.connection: PeerConnection | None = None
        self.local_media = LocalMedia()
        self.local_media.tracks = [ToneTrack(frequency)]
        self.switch = SwitchController(self)
        self.other: Device
        self.server: Server = "switches"
        self.adopted: list[tuple[PeerConnection, list[MediaStreamTrack]]] = []
        self.failures: list[str] = []
        self.tasks: set[asyncio.Future[None]] = set()
        self._changed = asyncio.Event()

    async def send(self, frame: ClientCallFrame) -> None:
        if isinstance(frame, TransportFrame):
            if self.server == "refuses":
                self.spawn(self._refuse())
            elif self.server == "switches":
                self.spawn(self.other.switch.on_transport(frame.transport, restart=False))
                self.spawn(self.switch.on_transport(frame.transport, restart=True))
        elif isinstance(frame, ReofferFrame):
            self.spawn(self.other.switch.on_reoffer(frame.sdp))
        elif isinstance(frame, ReanswerFrame):
            self.spawn(self.other.switch.on_reanswer(frame.sdp))

    async def _refuse(self) -> None:
        assert self.switch.refused("direct_not_allowed", "not allowed by the settings")

    def spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        return task

    def adopt(self, connection: PeerConnection, tracks: list[MediaStreamTrack]) -> None:
        old, self.connection = self.connection, connection
        self.adopted.append((connection, tracks))
        if old is not None:
            self.spawn(old.close())
        self._changed.set()

    async def fail(self, detail: str) -> None:
        self.failures.append(detail)
        self.state = CallState.ENDED
        self.switch.drop()

    async def wait_adopted(self) -> None:
        async with asyncio.timeout(30):  # a bound against hanging, not a measurement
            while not self.adopted:
                assert not self.failures, self.failures
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self.switch.drop()
        if self.connection is not None:
            await self.connection.close()
        for task in self.tasks:
            task.cancel()  # what is left sleeps until a replacement's connect deadline
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.local_media.stop()


def ignore_track(connection: PeerConnection, track: MediaStreamTrack) -> None:
    pass


def ignore_state(connection: PeerConnection, state: str) -> None:
    pass


@contextlib.asynccontextmanager
async def connected_call() -> AsyncIterator[tuple[Device, Device]]:
    """Two devices whose first connection is set up (ICE need not have finished: a
    switch replaces it whatever it does), closed again at the end."""
    caller, callee = Device(440), Device(880)
    caller.other, callee.other = callee, caller
    try:
        for device in (caller, callee):
            device.connection = PeerConnection(
                [], "all", on_track=ignore_track, on_state=ignore_state
            )
        assert caller.connection is not None
        assert callee.connection is not None
        caller.connection.add_media(caller.local_media, receive=["audio"])
        offer = await caller.connection.make_offer()
        await callee.connection.take_offer(offer, callee.local_media)
        await caller.connection.take_answer(await callee.connection.make_answer())
        yield caller, callee
    finally:
        await caller.close()
        await callee.close()


async def test_a_switch_moves_both_devices_to_new_connections_with_the_same_words() -> None:
    async with connected_call() as (caller, callee):
        firsts = [caller.connection, callee.connection]
        words = [fingerprints(first.local_sdp) for first in firsts if first is not None]
        await caller.switch.request("direct", timeout_s=30)
        await callee.wait_adopted()
        for device, first, before in zip((caller, callee), firsts, words, strict=True):
            [(connection, tracks)] = device.adopted
            assert device.connection is connection
            assert connection is not first
            assert fingerprints(connection.local_sdp) == before  # the same words
            assert [track.kind for track in tracks] == ["audio"]  # the sink moves over
            assert not device.switch.in_flight()
            assert not device.failures


async def test_a_refused_switch_leaves_the_call_as_it_was() -> None:
    async with connected_call() as (caller, _):
        caller.server = "refuses"
        first = caller.connection
        with pytest.raises(TransportSwitchFailed) as refused:
            await caller.switch.request("direct", timeout_s=30)
        assert refused.value.code == "direct_not_allowed"
        assert caller.connection is first
        assert not caller.failures
        assert not caller.switch.in_flight()


async def test_only_a_connected_call_can_be_switched_and_only_once_at_a_time() -> None:
    async with connected_call() as (caller, _):
        caller.server = "silent"
        caller.state = CallState.RECONNECTING
        with pytest.raises(TransportSwitchFailed, match="reconnecting"):
            await caller.switch.request("relay", timeout_s=30)
        caller.state = CallState.CONNECTING
        with pytest.raises(TransportSwitchFailed, match="not connected"):
            await caller.switch.request("relay", timeout_s=30)
        caller.state = CallState.CONNECTED
        asking = asyncio.ensure_future(caller.switch.request("relay", timeout_s=30))
        await asyncio.sleep(0)  # the request is sent and waits for the server
        assert caller.switch.in_flight()
        with pytest.raises(TransportSwitchFailed, match="already under way"):
            await caller.switch.request("relay", timeout_s=30)
        caller.switch.settle(TransportSwitchFailed("call_state", "the call ended"))
        with pytest.raises(TransportSwitchFailed, match="the call ended"):
            await asking


async def test_waiting_for_the_other_sides_offer_counts_as_a_switch_under_way() -> None:
    async with connected_call() as (_, callee):
        assert not callee.switch.in_flight()
        await callee.switch.on_transport("relay", restart=False)
        assert callee.switch.in_flight()  # a restart of a dropped call waits for it
        assert not callee.switch.replacing


@pytest.mark.parametrize(
    ("state", "detail"),
    [
        (CallState.CONNECTED, "the switch of the connection failed: "),
        (
            CallState.RECONNECTING,
            "the connection dropped and restarting it through the relay failed: ",
        ),
    ],
)
async def test_an_offer_that_cannot_be_answered_ends_the_call(
    state: CallState, detail: str
) -> None:
    async with connected_call() as (_, callee):
        callee.state = state
        await callee.switch.on_reoffer("v=0\r\nnot a description\r\n")
        [failure] = callee.failures
        assert failure.startswith(detail)
        assert not callee.switch.replacing  # closed with the call
