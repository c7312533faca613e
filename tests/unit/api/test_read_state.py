"""Unread counts, read positions, read receipts and typing notices (issue 12, part 1).

Read receipts and typing notices are reciprocal settings, both on by default; a
request's sender is not told it was opened; and a block stops both silently, so the
blocked person sees exactly what they would see if the other had switched them off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api, LiveServer, Socket, make_settings, open_socket


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    settings = make_settings(tmp_path, database_url, typing_notices_per_minute=5)
    async with (
        LiveServer(settings) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        yield live_server, Api(client)


async def friends(api: Api, a: str, b: str) -> tuple[str, str]:
    """Two users whose conversation is accepted on both sides."""
    ta, tb = await api.register(a), await api.register(b)
    for token, other in ((ta, b), (tb, a)):
        resp = await api.call("PUT", f"/api/v1/me/following/{other}", token)
        assert resp.status_code == 204
    return ta, tb


async def send(api: Api, token: str, to: str, text: str) -> int:
    resp = await api.send(token, to, text)
    assert resp.status_code == 201, resp.text
    message_id: int = resp.json()["message"]["id"]
    return message_id


async def unread(api: Api, token: str) -> dict[str, int]:
    resp = await api.call("GET", "/api/v1/conversations", token)
    assert resp.status_code == 200
    return {c["user"]["username"]: c["unread"] for c in resp.json()["conversations"]}


async def read(api: Api, token: str, user: str, up_to: Any) -> int:
    resp = await api.call(
        "POST", f"/api/v1/conversations/{user}/read", token, json={"up_to": up_to}
    )
    return resp.status_code


async def set_settings(api: Api, token: str, **values: Any) -> None:
    resp = await api.call("PATCH", "/api/v1/me/settings", token, json=values)
    assert resp.status_code == 200, resp.text


async def test_unread_counts_fall_as_messages_are_read_on_every_device(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    ids = [await send(api, alice, "bob", f"hello {n}") for n in range(3)]
    await send(api, bob, "alice", "hi")
    assert await unread(api, bob) == {"alice": 3}
    assert await unread(api, alice) == {"bob": 1}

    phone = await open_socket(live_server.ws_url, bob)
    laptop = await open_socket(live_server.ws_url, bob)
    a_ws = await open_socket(live_server.ws_url, alice)
    assert await read(api, bob, "alice", ids[1]) == 204
    for sock in (phone, laptop):
        event = await sock.recv_type("conversation.read")
        assert (event["user"], event["up_to"]) == ("alice", ids[1])
    receipt = await a_ws.recv_type("message.read")
    assert (receipt["user"], receipt["up_to"]) == ("bob", ids[1])
    assert await unread(api, bob) == {"alice": 1}

    # Positions only move forward: an older or equal one changes nothing, says nothing.
    assert await read(api, bob, "alice", ids[0]) == 204
    assert await read(api, bob, "alice", ids[1]) == 204
    await phone.nothing_within(0.3)
    await a_ws.nothing_within(0.1)

    # A position past the last message stops at the last one: later messages arrive unread.
    assert await read(api, bob, "alice", 2**62) == 204
    last = (await phone.recv_type("conversation.read"))["up_to"]
    assert last > ids[2]  # bob's own reply, the conversation's last message
    assert await unread(api, bob) == {"alice": 0}
    await send(api, alice, "bob", "one more")
    assert await unread(api, bob) == {"alice": 1}

    # A device that catches up later reads both events from the stream.
    late = await open_socket(live_server.ws_url, bob, since=0)
    assert [(await late.recv_type("conversation.read"))["up_to"] for _ in range(2)] == [
        ids[1],
        last,
    ]
    for sock in (phone, laptop, a_ws, late):
        await sock.close()


@pytest.mark.parametrize("who_turns_it_off", ["reader", "sender"])
async def test_read_receipts_are_reciprocal(
    server: tuple[LiveServer, Api], who_turns_it_off: str
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    await set_settings(api, bob if who_turns_it_off == "reader" else alice, read_receipts=False)
    message = await send(api, alice, "bob", "did you read this?")
    a_ws = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)
    assert await read(api, bob, "alice", message) == 204
    assert (await b_ws.recv_type("conversation.read"))["up_to"] == message
    await a_ws.nothing_within(0.5)
    for sock in (a_ws, b_ws):
        await sock.close()


async def test_a_request_is_not_reported_read_until_it_is_accepted(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, carol = await api.register("alice"), await api.register("carol")
    first = await send(api, alice, "carol", "hello stranger")
    a_ws = await open_socket(live_server.ws_url, alice)
    assert await unread(api, carol) == {"alice": 1}
    assert await read(api, carol, "alice", first) == 204
    assert await unread(api, carol) == {"alice": 0}
    await a_ws.nothing_within(0.5)  # carol peeked at the request: alice is not told

    resp = await api.call("POST", "/api/v1/conversations/alice/accept", carol)
    assert resp.status_code == 200
    second = await send(api, alice, "carol", "thanks")
    assert await read(api, carol, "alice", second) == 204
    assert (await a_ws.recv_type("message.read"))["up_to"] == second
    await a_ws.close()


async def test_a_block_stops_receipts_and_withheld_messages_never_count(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    before = await send(api, alice, "bob", "before the block")
    resp = await api.call("PUT", "/api/v1/me/blocked/alice", bob)
    assert resp.status_code == 204, resp.text
    withheld = await send(api, alice, "bob", "after the block")  # answered as usual
    assert await unread(api, bob) == {"alice": 1}  # the withheld one is not there

    a_ws = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)
    assert await read(api, bob, "alice", withheld) == 204
    # Bob's position stops at what he could see; alice hears nothing, as if receipts
    # were off (test_read_receipts_are_reciprocal): the block is not revealed.
    assert (await b_ws.recv_type("conversation.read"))["up_to"] == before
    await a_ws.nothing_within(0.5)
    for sock in (a_ws, b_ws):
        await sock.close()


async def test_bad_read_requests_are_refused_clearly(server: tuple[LiveServer, Api]) -> None:
    _, api = server
    alice, _bob = await friends(api, "alice", "bob")
    await api.register("dave")
    message = await send(api, alice, "bob", "hi")
    for bad in (0, -1, "12", 1.5, None, 2**63):
        assert await read(api, alice, "bob", bad) == 422, bad
    resp = await api.call("POST", "/api/v1/conversations/bob/read", alice, json={})
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid_request"
    resp = await api.call(
        "POST", "/api/v1/conversations/nobody/read", alice, json={"up_to": message}
    )
    assert (resp.status_code, resp.json()["error"]) == (404, "user_not_found")
    resp = await api.call("POST", "/api/v1/conversations/dave/read", alice, json={"up_to": 1})
    assert (resp.status_code, resp.json()["error"]) == (404, "conversation_not_found")
    resp = await api.call("POST", "/api/v1/conversations/bob/read", None, json={"up_to": 1})
    assert resp.status_code == 401


async def typing_reaches(sender: Socket, receiver: Socket, to: str, user: str) -> bool:
    await sender.send({"type": "typing", "to": to})
    try:
        event = await receiver.recv_type("typing", timeout=0.5)
    except TimeoutError:
        return False
    assert event == {"type": "typing", "user": user}
    return True


async def test_typing_notices_reach_the_other_person_only_when_both_allow_them(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    await send(api, alice, "bob", "hi")
    a_ws = await open_socket(live_server.ws_url, alice)
    a_other = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)
    assert await typing_reaches(a_ws, b_ws, "bob", "alice")
    await a_other.nothing_within(0.2)  # not echoed to the typist's own devices

    await set_settings(api, bob, typing_indicators=False)
    assert not await typing_reaches(a_ws, b_ws, "bob", "alice")
    assert not await typing_reaches(b_ws, a_ws, "alice", "bob")  # reciprocal
    await set_settings(api, bob, typing_indicators=True)
    assert await typing_reaches(b_ws, a_ws, "alice", "bob")

    # Never stored: a device catching up from the start reads no typing event.
    late = await open_socket(live_server.ws_url, bob, since=0)
    await late.recv_type("message.new")
    await late.nothing_within(0.3)

    # The sender is never answered, whatever stopped the notice.
    for to in ("nobody", "bad name!", "alice"):
        await a_ws.send({"type": "typing", "to": to})
    await a_ws.nothing_within(0.3)
    await a_ws.send({"type": "typing"})
    assert (await a_ws.recv_type("error"))["error"] == "malformed"
    for sock in (a_ws, a_other, b_ws, late):
        await sock.close()


async def test_no_typing_notice_into_a_request_or_through_a_block(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    mallory, carol = await api.register("mallory"), await api.register("carol")
    await send(api, mallory, "carol", "hello")  # a request carol never accepted
    m_ws = await open_socket(live_server.ws_url, mallory)
    c_ws = await open_socket(live_server.ws_url, carol)
    assert not await typing_reaches(m_ws, c_ws, "carol", "mallory")

    resp = await api.call("POST", "/api/v1/conversations/mallory/accept", carol)
    assert resp.status_code == 200
    assert await typing_reaches(m_ws, c_ws, "carol", "mallory")
    resp = await api.call("PUT", "/api/v1/me/blocked/mallory", carol)
    assert resp.status_code == 204
    assert not await typing_reaches(m_ws, c_ws, "carol", "mallory")
    await m_ws.nothing_within(0.2)
    for sock in (m_ws, c_ws):
        await sock.close()


async def test_typing_notices_are_rate_limited_silently(server: tuple[LiveServer, Api]) -> None:
    live_server, api = server
    alice, bob = await friends(api, "alice", "bob")
    await send(api, alice, "bob", "hi")
    a_ws = await open_socket(live_server.ws_url, alice)
    b_ws = await open_socket(live_server.ws_url, bob)
    for _ in range(8):  # the fixture allows 5 a minute
        await a_ws.send({"type": "typing", "to": "bob"})
    got = []
    try:
        while True:
            got.append(await b_ws.recv_type("typing", timeout=0.5))
    except TimeoutError:
        pass
    assert len(got) == 5
    await a_ws.nothing_within(0.2)
    for sock in (a_ws, b_ws):
        await sock.close()


async def test_the_new_settings_default_to_on_and_refuse_null(
    server: tuple[LiveServer, Api],
) -> None:
    _, api = server
    alice = await api.register("alice")
    body = (await api.call("GET", "/api/v1/me", alice)).json()["settings"]
    assert (body["read_receipts"], body["typing_indicators"]) == (True, True)
    resp = await api.call("PATCH", "/api/v1/me/settings", alice, json={"read_receipts": None})
    assert resp.status_code == 422
    assert "read_receipts" in resp.json()["detail"]
    await set_settings(api, alice, read_receipts=False, typing_indicators=False)
    body = (await api.call("GET", "/api/v1/me", alice)).json()["settings"]
    assert (body["read_receipts"], body["typing_indicators"]) == (False, False)
