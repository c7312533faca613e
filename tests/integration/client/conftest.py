"""Shared fixtures for real calls between Python clients (in-process server, embedded
coturn): two people who may call each other, and ringing one from the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ringfence.client import (
    EventStream,
    IncomingCall,
    OutgoingCall,
    RingfenceClient,
    ToneTrack,
    place_call,
    wait_for_incoming,
)
from tests.conftest import LiveServer, make_settings

PASSWORD = "correct horse 1"
TIMEOUT = 30


@dataclass
class Person:
    client: RingfenceClient
    events: EventStream

    @property
    def name(self) -> str:
        return str(self.events.user["username"])

    async def second_device(self, server: LiveServer) -> EventStream:
        assert self.client.token is not None
        events = EventStream(server.url, self.client.token, backoff_initial_s=0.05)
        await events.connect()
        return events


@pytest.fixture
async def relay_server(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[LiveServer]:
    """A live server with the embedded coturn (no external TURN configured).
    ``@pytest.mark.server_settings(...)`` overrides settings."""
    marker = request.node.get_closest_marker("server_settings")
    overrides = dict(marker.kwargs) if marker else {}
    settings = make_settings(
        tmp_path, database_url, turn_urls=[], turn_secret=None, turn_port=0, **overrides
    )
    async with LiveServer(settings) as server:
        yield server


async def person(server: LiveServer, username: str) -> Person:
    client = RingfenceClient(server.url)
    session = await client.register(username, PASSWORD)
    events = EventStream(server.url, session["token"], backoff_initial_s=0.05)
    await events.connect()
    return Person(client, events)


@pytest.fixture
async def alice_bob(relay_server: LiveServer) -> AsyncIterator[tuple[Person, Person]]:
    """Alice may call Bob: he follows her and their conversation is accepted."""
    alice = await person(relay_server, "alice")
    bob = await person(relay_server, "bob")
    await bob.client.follow("alice")
    await alice.client.send_message("bob", "hi")
    yield alice, bob
    for p in (alice, bob):
        await p.events.close()
        await p.client.aclose()


async def ring(alice: Person, bob: Person) -> tuple[OutgoingCall, IncomingCall]:
    call = await place_call(alice.client, alice.events, "bob", tracks=[ToneTrack(440)])
    async with asyncio.timeout(TIMEOUT):
        incoming = await wait_for_incoming(bob.events)
    return call, incoming
