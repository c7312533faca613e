"""Sending a DM over the socket that is already open (issue 14).

``{"type": "message.send", "to", "text", "txn_id"}`` is answered by ``{"type":
"message.ack", "txn_id", "message"}`` or by an ``error`` carrying the txn_id. It is the
HTTP route by another door: the same service call, so the same idempotency (one
txn_id is one message, whichever door each try used), the same rules and limits, and
the same error codes, words and statuses. The ack is sent only after the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from ringfence.services.sockets import SEND_CONCURRENCY
from tests.conftest import (
    Api,
    LiveServer,
    Socket,
    behind_the_servers_back,
    make_settings,
    open_socket,
)
from tests.unit.api.test_read_state import friends


async def serve(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[LiveServer, Api]]:
    settings = make_settings(tmp_path, database_url, **overrides)
    async with (
        LiveServer(settings) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        yield live_server, Api(client)


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    async for served in serve(tmp_path, database_url):
        yield served


@pytest.fixture
async def limited(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    async for served in serve(tmp_path, database_url, messages_per_minute=6):
        yield served


async def ws_send(sock: Socket, **frame: Any) -> dict[str, Any]:
    """Send a message.send frame; its answer (an ack or an error), skipping events."""
    await sock.send({"type": "message.send", **frame})
    while True:
        answer = await sock.recv()
        if answer["type"] in ("message.ack", "error"):
            return answer


async def no_ack(sock: Socket, frame: dict[str, Any]) -> None:
    """Send ``frame`` and read until the socket closes, failing on an ack."""
    await sock.send(frame)
    while True:
        assert (await sock.recv())["type"] != "message.ack"


async def history(api: Api, token: str, user: str) -> list[dict[str, Any]]:
    resp = await api.call("GET", f"/api/v1/conversations/{user}/messages", token)
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, Any]] = resp.json()["messages"]
    return messages


async def test_a_send_is_acked_after_its_commit_and_reaches_the_recipient(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    a_ws = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)

    ack = await ws_send(a_ws, to="bob", text="over the socket", txn_id="t-1")
    assert (ack["type"], ack["txn_id"]) == ("message.ack", "t-1")
    message = ack["message"]
    assert (message["text"], message["sender"], message["txn_id"]) == (
        "over the socket",
        "alice",
        "t-1",
    )
    # Committed before the ack: it is in the history, exactly as the ack gave it.
    assert (await history(api, alice, "bob"))[-1] == message
    new = await b_ws.recv_type("message.new")
    assert (new["message"]["id"], new["message"]["text"]) == (message["id"], message["text"])
    assert new["is_request"] is False


async def test_one_txn_id_is_one_message_whichever_door_each_try_used(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, _bob = await friends(api, "alice", "bob")
    a_ws = await open_socket(live_server.ws_url, alice)

    first = await ws_send(a_ws, to="bob", text="once", txn_id="same")
    again = await ws_send(a_ws, to="bob", text="once", txn_id="same")
    assert again["message"] == first["message"]
    # A client whose socket dropped before the ack retries over HTTP: still one message.
    resp = await api.send(alice, "bob", "once", txn_id="same")
    assert (resp.status_code, resp.json()["message"]) == (201, first["message"])
    # And the other way round.
    resp = await api.send(alice, "bob", "twice", txn_id="http-first")
    by_ws = await ws_send(a_ws, to="bob", text="twice", txn_id="http-first")
    assert by_ws["message"] == resp.json()["message"]
    assert [m["text"] for m in await history(api, alice, "bob")] == ["once", "twice"]


async def test_refusals_match_the_http_route_code_words_and_status(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, _bob = await friends(api, "alice", "bob")
    carol = await api.register("carol")
    a_ws = await open_socket(live_server.ws_url, alice)
    resp = await api.call("PUT", "/api/v1/me/blocked/carol", alice)
    assert resp.status_code == 204

    cases: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
        ({"to": "nobody_here", "text": "hi"}, "nobody_here", {"text": "hi"}),
        ({"to": "alice", "text": "me"}, "alice", {"text": "me"}),
        ({"to": "carol", "text": "blocked"}, "carol", {"text": "blocked"}),
        ({"to": "bob", "text": "   "}, "bob", {"text": "   "}),
        ({"to": "bob", "text": "x" * 10_001}, "bob", {"text": "x" * 10_001}),
        ({"to": "bob", "text": "hi", "extra": 1}, "bob", {"text": "hi", "extra": 1}),
        ({"to": "Not A Name!", "text": "hi"}, "Not A Name!", {"text": "hi"}),
    ]
    for n, (frame, to, body) in enumerate(cases):
        txn = f"bad-{n}"
        answer = await ws_send(a_ws, txn_id=txn, **frame)
        resp = await api.call(
            "POST", f"/api/v1/conversations/{to}/messages", alice, json={**body, "txn_id": txn}
        )
        expected = resp.json()
        assert answer["type"] == "error", (frame, answer)
        assert answer["txn_id"] == txn
        assert answer["status"] == resp.status_code, (frame, answer, expected)
        assert (answer["error"], answer["detail"]) == (expected["error"], expected["detail"])
        assert answer.get("fields") == expected.get("fields")
    # A frame without a usable txn_id is refused too, naming the field.
    answer = await ws_send(a_ws, to="bob", text="hi")
    assert (answer["error"], answer["status"], answer["fields"]) == (
        "invalid_request",
        422,
        ["txn_id"],
    )
    assert "txn_id" not in answer
    answer = await ws_send(a_ws, to="bob", text="hi", txn_id="no spaces allowed")
    assert (answer["error"], answer.get("txn_id")) == ("invalid_request", None)
    # Nothing refused was stored, and carol never heard of any of it.
    assert await history(api, alice, "bob") == []
    assert (await api.call("GET", "/api/v1/conversations", carol)).json()["conversations"] == []
    # The socket is still good.
    assert (await ws_send(a_ws, to="bob", text="fine", txn_id="ok"))["type"] == "message.ack"


async def test_a_block_by_the_recipient_is_not_revealed_by_the_ack(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    resp = await api.call("PUT", "/api/v1/me/blocked/alice", bob)
    assert resp.status_code == 204
    b_ws = await open_socket(live_server.ws_url, bob)
    a_ws = await open_socket(live_server.ws_url, alice)
    ack = await ws_send(a_ws, to="bob", text="still there?", txn_id="w-1")
    assert ack["type"] == "message.ack"
    assert set(ack["message"]) == set((await history(api, alice, "bob"))[-1])
    await b_ws.nothing_within(0.3)


async def test_the_message_limit_counts_both_doors_and_says_when_to_retry(
    limited: tuple[LiveServer, Api],
) -> None:
    live_server, api = limited
    alice, _bob = await friends(api, "alice", "bob")
    a_ws = await open_socket(live_server.ws_url, alice)
    for n in range(3):
        assert (await api.send(alice, "bob", f"http {n}")).status_code == 201
    for n in range(3):
        assert (await ws_send(a_ws, to="bob", text=f"ws {n}", txn_id=f"l-{n}"))["type"] == (
            "message.ack"
        )
    answer = await ws_send(a_ws, to="bob", text="one too many", txn_id="l-over")
    resp = await api.send(alice, "bob", "one too many")
    assert resp.status_code == 429
    assert (answer["error"], answer["status"]) == (resp.json()["error"], 429)
    assert 1 <= answer["retry_after"] <= 60
    assert "try again in" in answer["detail"]


async def test_a_signed_out_session_sends_nothing_more(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    a_ws = await open_socket(live_server.ws_url, alice)
    resp = await api.call("DELETE", "/api/v1/sessions/current", alice)
    assert resp.status_code == 204, resp.text
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await no_ack(a_ws, {"type": "message.send", "to": "bob", "text": "late", "txn_id": "x"})
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert await history(api, bob, "alice") == []


# Each way a session ends without this node being told (another node's announcement
# lost, `ringfence admin` without Redis), as the database then has it.
LONG_AGO = "2000-01-01 00:00:00"
ALICES_SESSIONS = "(SELECT id FROM users WHERE username = 'alice')"
ENDINGS = {
    "revoked": f"DELETE FROM sessions WHERE user_id = {ALICES_SESSIONS}",
    "idle": f"UPDATE sessions SET last_seen_at = '{LONG_AGO}' WHERE user_id = {ALICES_SESSIONS}",
    "too old": f"UPDATE sessions SET created_at = '{LONG_AGO}' WHERE user_id = {ALICES_SESSIONS}",
    "suspended": "UPDATE users SET suspended = true WHERE username = 'alice'",
}


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_session_ended_unannounced_sends_nothing_more_through_its_sockets(
    tmp_path: Path, database_url: str, ending: str
) -> None:
    # Read with the send itself: not trusted for a while after the last check, as a
    # cached HTTP token is. Before, each of these went through for up to 5 s.
    settings = make_settings(tmp_path, database_url)
    async with (
        LiveServer(settings) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        api = Api(client)
        alice, bob = await friends(api, "alice", "bob")
        new, retry, to_nobody = [await open_socket(live_server.ws_url, alice) for _ in range(3)]
        assert (await ws_send(new, to="bob", text="before", txn_id="t-1"))["type"] == "message.ack"

        await behind_the_servers_back(settings, (ENDINGS[ending], {}))

        frames = {
            new: {"to": "bob", "text": "after", "txn_id": "t-2"},
            retry: {"to": "bob", "text": "before", "txn_id": "t-1"},  # a replay, too
            to_nobody: {"to": "nobody", "text": "who is there?", "txn_id": "t-3"},
        }
        for sock, frame in frames.items():
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await no_ack(sock, {"type": "message.send", **frame})
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "session ended")
        assert [m["text"] for m in await history(api, bob, "alice")] == ["before"]


async def test_socket_sends_wait_for_a_bounded_number_of_database_slots(
    server: tuple[LiveServer, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of sockets may each have a send under way; only SEND_CONCURRENCY of
    them are in the database at once, so a call frame's read is not queued behind
    them all in the connection pool. The others wait, and are then sent."""
    live_server, api = server
    extra = 3
    names = [f"sender{n}" for n in range(SEND_CONCURRENCY + extra)]
    bob = await api.register("bob")
    tokens = [await api.register(name) for name in names]
    for name in names:
        assert (await api.call("PUT", f"/api/v1/me/following/{name}", bob)).status_code == 204
    messaging = live_server.services.messaging
    real_send = messaging.send
    inside = most = 0
    release = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await release.wait()
        inside -= 1
        return await real_send(*args, **kwargs)

    monkeypatch.setattr(messaging, "send", held)
    sockets = [await open_socket(live_server.ws_url, token) for token in tokens]
    for n, sock in enumerate(sockets):
        await sock.send({"type": "message.send", "to": "bob", "text": f"hi {n}", "txn_id": f"c{n}"})
    slots = live_server.services.sockets._send_slots
    async with asyncio.timeout(10):
        while inside < SEND_CONCURRENCY or len(getattr(slots, "_waiters", None) or ()) < extra:
            await asyncio.sleep(0.01)
    assert (inside, most) == (SEND_CONCURRENCY, SEND_CONCURRENCY)
    release.set()
    for sock in sockets:
        assert (await sock.recv_type("message.ack"))["message"]["recipient"] == "bob"
    assert most == SEND_CONCURRENCY
    resp = await api.call("GET", "/api/v1/conversations", bob)
    assert len(resp.json()["conversations"]) == len(names)
