"""The account page's API (issue 12, part 2): display name, password, sessions.

A new display name reaches everyone the person talks with at once; changing the
password signs out every other session; sessions are listed with a device
description and no address, and any of them can be signed out on the spot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import Api, LiveServer, make_settings, open_socket
from tests.unit.api.test_events_ws import close_code

PASSWORD = "correct horse 1"
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Api]]:
    settings = make_settings(tmp_path, database_url, display_name_changes_per_day=3)
    async with (
        LiveServer(settings) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        yield live_server, Api(client)


async def login(api: Api, username: str, password: str = PASSWORD, agent: str = "") -> str:
    resp = await api.client.post(
        "/api/v1/sessions",
        json={"username": username, "password": password},
        headers={"User-Agent": agent} if agent else {},
    )
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token


async def test_a_new_display_name_reaches_everyone_i_talk_with_at_once(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    alice, bob = await api.register("alice"), await api.register("bob")
    carol = await api.register("carol")  # has never talked with alice
    assert (await api.send(bob, "alice", "hi alice")).status_code == 201
    b_ws = await open_socket(live_server.ws_url, bob)
    c_ws = await open_socket(live_server.ws_url, carol)
    a_other = await open_socket(live_server.ws_url, alice)

    resp = await api.call("PATCH", "/api/v1/me", alice, json={"display_name": "Alice L."})
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["display_name"] == "Alice L."
    for sock in (b_ws, a_other):
        event = await sock.recv_type("user.updated")
        assert event["user"]["username"] == "alice"
        assert event["user"]["display_name"] == "Alice L."
    await c_ws.nothing_within(0.3)
    me = (await api.call("GET", "/api/v1/me", alice)).json()["user"]
    assert me["display_name"] == "Alice L."  # no stale cached name
    listed = (await api.call("GET", "/api/v1/conversations", bob)).json()["conversations"]
    assert listed[0]["user"]["display_name"] == "Alice L."
    for sock in (b_ws, c_ws, a_other):
        await sock.close()


async def test_bad_display_names_are_refused_and_renaming_is_limited(
    server: tuple[LiveServer, Api],
) -> None:
    _, api = server
    alice = await api.register("alice")
    for bad in ("", "   ", "a\nb", "evil\u202eexe", "x" * 65, None, 5):
        resp = await api.call("PATCH", "/api/v1/me", alice, json={"display_name": bad})
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["error"] == "invalid_request"
    resp = await api.call("PATCH", "/api/v1/me", alice, json={"username": "mallory"})
    assert resp.status_code == 422
    for n in range(3):  # the fixture allows 3 a day
        resp = await api.call("PATCH", "/api/v1/me", alice, json={"display_name": f"A {n}"})
        assert resp.status_code == 200
    resp = await api.call("PATCH", "/api/v1/me", alice, json={"display_name": "A 4"})
    assert resp.status_code == 429
    assert resp.json()["error"] == "rename_rate_limited"
    assert int(resp.headers["Retry-After"]) > 0
    me = (await api.call("GET", "/api/v1/me", alice)).json()["user"]
    assert me["display_name"] == "A 2"


async def test_changing_the_password_signs_out_every_other_session(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    laptop = await api.register("alice")
    phone = await login(api, "alice")
    phone_ws = await websockets.connect(live_server.ws_url)
    await phone_ws.send(json.dumps({"type": "auth", "token": phone}))
    assert json.loads(await phone_ws.recv())["type"] == "ready"

    wrong = await api.call(
        "POST",
        "/api/v1/me/password",
        laptop,
        json={"current_password": "not my password", "new_password": "a brand new one"},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (403, "wrong_password")
    short = await api.call(
        "POST",
        "/api/v1/me/password",
        laptop,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert short.status_code == 422
    assert "new_password" in short.json()["detail"]
    # Nothing changed: the phone is still signed in.
    assert (await api.call("GET", "/api/v1/me", phone)).status_code == 200

    resp = await api.call(
        "POST",
        "/api/v1/me/password",
        laptop,
        json={"current_password": PASSWORD, "new_password": "a brand new one"},
    )
    assert resp.status_code == 204
    assert await close_code(phone_ws) == 4401
    assert (await api.call("GET", "/api/v1/me", phone)).status_code == 401
    assert (await api.call("GET", "/api/v1/me", laptop)).status_code == 200
    old = await api.client.post(
        "/api/v1/sessions", json={"username": "alice", "password": PASSWORD}
    )
    assert old.status_code == 401
    await login(api, "alice", "a brand new one")


async def test_sessions_are_listed_without_addresses_and_can_be_signed_out(
    server: tuple[LiveServer, Api],
) -> None:
    live_server, api = server
    first = await api.register("alice")
    phone = await login(api, "alice", agent=FIREFOX_ANDROID)
    cli = await login(api, "alice", agent="ringfence-client/0.1.0")
    bob = await api.register("bob")

    resp = await api.call("GET", "/api/v1/me/sessions", cli)
    assert resp.status_code == 200
    sessions = resp.json()["sessions"]
    assert [(s["device"], s["current"]) for s in sessions] == [
        ("A script or API client", False),  # httpx's own User-Agent, at sign-up
        ("Firefox on Android", False),
        ("Ringfence terminal client 0.1.0", True),
    ]
    assert set(sessions[0]) == {"id", "created_at", "last_seen_at", "device", "current"}
    assert "127.0.0.1" not in resp.text

    phone_ws = await websockets.connect(live_server.ws_url)
    await phone_ws.send(json.dumps({"type": "auth", "token": phone}))
    assert json.loads(await phone_ws.recv())["type"] == "ready"
    phone_id = sessions[1]["id"]
    # Someone else's session is "not found", exactly like one that never existed.
    for token, session_id in ((bob, phone_id), (cli, 2**40)):
        resp = await api.call("DELETE", f"/api/v1/me/sessions/{session_id}", token)
        assert (resp.status_code, resp.json()["error"]) == (404, "session_not_found")
    assert (await api.call("DELETE", "/api/v1/me/sessions/abc", cli)).status_code == 422
    assert (await api.call("DELETE", "/api/v1/me/sessions/0", cli)).status_code == 422

    resp = await api.call("DELETE", f"/api/v1/me/sessions/{phone_id}", cli)
    assert resp.status_code == 204
    assert await close_code(phone_ws) == 4401
    assert (await api.call("GET", "/api/v1/me", phone)).status_code == 401
    left = (await api.call("GET", "/api/v1/me/sessions", cli)).json()["sessions"]
    assert [s["device"] for s in left] == [
        "A script or API client",
        "Ringfence terminal client 0.1.0",
    ]

    # Signing out the current session from the list works like logging out.
    resp = await api.call("DELETE", f"/api/v1/me/sessions/{left[1]['id']}", cli)
    assert resp.status_code == 204
    assert (await api.call("GET", "/api/v1/me", cli)).status_code == 401
    assert (await api.call("GET", "/api/v1/me", first)).status_code == 200


async def test_the_export_holds_what_i_can_see_and_nothing_secret(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, exports_per_day=2, messages_per_minute=100_000)
    async with (
        LiveServer(settings) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        api = Api(client)
        alice, bob = await api.register("alice"), await api.register("bob")
        await api.register("carol")
        for token, path in ((alice, "following/bob"), (bob, "following/alice")):
            assert (await api.call("PUT", f"/api/v1/me/{path}", token)).status_code == 204
        assert (await api.call("PUT", "/api/v1/me/blocked/carol", alice)).status_code == 204
        # Enough messages for several pages of the stream.
        texts = [f"message {n}" for n in range(1203)]
        for n, text in enumerate(texts):
            sender, to = (alice, "bob") if n % 2 else (bob, "alice")
            assert (await api.send(sender, to, text)).status_code == 201
        # A message carol sent after alice blocked her is withheld from alice.
        carol = await login(api, "carol")
        assert (await api.send(carol, "alice", "you can't see this")).status_code == 201

        resp = await api.call("GET", "/api/v1/me/export", alice)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("application/json")
        assert 'filename="ringfence-alice.json"' in resp.headers["content-disposition"]
        assert resp.headers["cache-control"] == "no-store"
        data = resp.json()
        assert data["format"] == "ringfence-export/1"
        assert data["account"]["username"] == "alice"
        assert data["settings"]["read_receipts"] is True
        assert (data["following"], data["followers"], data["blocked"]) == (
            ["bob"],
            ["bob"],
            ["carol"],
        )
        (conversation,) = data["conversations"]
        assert (conversation["with"], conversation["state"]) == ("bob", "accepted")
        assert [m["text"] for m in conversation["messages"]] == texts
        assert "you can't see this" not in resp.text
        for secret in ("password", "token", "token_hash", "127.0.0.1"):
            assert secret not in resp.text

        assert (await api.call("GET", "/api/v1/me/export", alice)).status_code == 200
        limited = await api.call("GET", "/api/v1/me/export", alice)
        assert (limited.status_code, limited.json()["error"]) == (429, "export_rate_limited")
        assert (await api.call("GET", "/api/v1/me/export")).status_code == 401
