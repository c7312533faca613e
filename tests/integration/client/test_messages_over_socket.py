"""The Python client sends DMs over its open event stream (issue 14): one
``message.send`` frame and no HTTP request each, the server's refusals as the same
:class:`RingfenceError` the HTTP route gives, and HTTP with the same txn_id whenever
the stream cannot carry a send, so a message is never lost and never doubled.

Against a live server (uvicorn, real sockets), not the ASGI transport: the point is
which requests actually cross the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ringfence.client import EventStream, RingfenceClient, RingfenceError
from ringfence.client.api import MessageNotSent
from tests.conftest import LiveServer, make_settings

PASSWORD = "correct horse 1"


class CountingTransport(httpx.AsyncHTTPTransport):
    """A real HTTP transport that notes the path of every POST it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts.append(request.url.path)
        return await super().handle_async_request(request)


@dataclass
class Sender:
    client: RingfenceClient
    events: EventStream
    transport: CountingTransport

    def message_posts(self) -> list[str]:
        return [path for path in self.transport.posts if path.endswith("/messages")]


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[LiveServer]:
    async with LiveServer(make_settings(tmp_path, database_url)) as live_server:
        yield live_server


@pytest.fixture
async def people(server: LiveServer) -> AsyncIterator[tuple[Sender, RingfenceClient]]:
    """Alice (with her stream attached to her client) and Bob, who follows her."""
    transport = CountingTransport()
    alice = RingfenceClient(server.url, transport=transport)
    session = await alice.register("alice", PASSWORD)
    events = EventStream(server.url, session["token"], backoff_initial_s=0.05)
    await events.connect()
    alice.events = events
    bob = RingfenceClient(server.url)
    await bob.register("bob", PASSWORD)
    await bob.follow("alice")
    yield Sender(alice, events, transport), bob
    await events.close()
    await alice.aclose()
    await bob.aclose()


async def test_a_connected_client_sends_over_its_stream(
    server: LiveServer, people: tuple[Sender, RingfenceClient]
) -> None:
    alice, bob = people
    assert bob.token is not None
    async with EventStream(server.url, bob.token) as bob_events:
        message = await alice.client.send_message("bob", "no request per message", "tx-1")
        assert (message["text"], message["sender"], message["txn_id"]) == (
            "no request per message",
            "alice",
            "tx-1",
        )
        new = await bob_events.next_event("message.new")
        assert new["message"]["id"] == message["id"]
    assert alice.message_posts() == []
    # The same txn_id again, either way, is the same message.
    assert await alice.client.send_message("bob", "no request per message", "tx-1") == message
    assert [m["id"] for m in await bob.history("alice")] == [message["id"]]


async def test_a_refusal_is_the_same_error_as_over_http(
    people: tuple[Sender, RingfenceClient],
) -> None:
    alice, _bob = people
    with pytest.raises(RingfenceError) as over_socket:
        await alice.client.send_message("nobody_here", "hello?", "tx-2")
    assert alice.message_posts() == []
    alice.client.events = None
    with pytest.raises(RingfenceError) as over_http:
        await alice.client.send_message("nobody_here", "hello?", "tx-3")
    assert alice.message_posts() == ["/api/v1/conversations/nobody_here/messages"]
    socket_error, http_error = over_socket.value, over_http.value
    assert (socket_error.status, socket_error.code, socket_error.detail) == (
        http_error.status,
        http_error.code,
        http_error.detail,
    )
    assert socket_error.status == 404


async def test_an_unanswered_send_goes_over_http_with_its_txn_id_and_stays_one_message(
    people: tuple[Sender, RingfenceClient],
) -> None:
    alice, bob = people
    # The frame leaves, but the answer is not waited for (a stalled network).
    with pytest.raises(MessageNotSent):
        await alice.events.send_message("bob", "did it arrive?", "tx-4", timeout=0)
    # Sent again with its txn_id (here over the stream, which is still up): the server
    # stored the first and answers with it.
    message = await alice.client.send_message("bob", "did it arrive?", "tx-4")
    assert alice.message_posts() == []
    texts = [m["text"] for m in await bob.history("alice")]
    assert texts == ["did it arrive?"]
    assert message["txn_id"] == "tx-4"
    # The late ack is nobody's event.
    with pytest.raises(TimeoutError):
        await alice.events.next_event("message.ack", timeout=0.5)

    # A closed stream: every send goes over HTTP.
    await alice.events.close()
    sent = await alice.client.send_message("bob", "after the stream closed", "tx-5")
    assert alice.message_posts()[-1] == "/api/v1/conversations/bob/messages"
    assert sent["text"] == "after the stream closed"
    with pytest.raises(MessageNotSent):
        await alice.events.send_message("bob", "nothing to carry it", "tx-6")
