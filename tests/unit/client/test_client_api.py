"""RingfenceClient against a live server: every route round-trips, every refusal
arrives as a RingfenceError carrying the server's own error code."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from ringfence.client.api import RingfenceClient, RingfenceError, events_url
from tests.conftest import Api, LiveServer

PASSWORD = "correct horse 1"


@pytest.fixture
async def clients(
    live: tuple[LiveServer, Api],
) -> AsyncIterator[tuple[RingfenceClient, RingfenceClient]]:
    server, _ = live
    async with RingfenceClient(server.url) as alice, RingfenceClient(server.url) as bob:
        await alice.register("alice", PASSWORD, display_name="Alice A.")
        await bob.register("bob", PASSWORD)
        yield alice, bob


async def test_register_login_me_logout_round_trip(live: tuple[LiveServer, Api]) -> None:
    server, _ = live
    async with RingfenceClient(server.url) as client:
        session = await client.register("dora", PASSWORD, display_name="Dora")
        assert session["user"]["username"] == "dora"
        assert client.token == session["token"]
        me = await client.me()
        assert me["user"]["display_name"] == "Dora"
        assert me["settings"] == {
            "calls_enabled": True,
            "call_audience": ["following"],
            "direct_connections": "nobody",
            "silence_unknown_callers": False,
            "read_receipts": True,
            "typing_indicators": True,
            "message_notifications": "name_only",
        }
        old_token = client.token
        await client.logout()
        assert client.token is None
        again = await client.login("dora", PASSWORD)
        assert again["token"] != old_token
        assert (await client.user("dora"))["username"] == "dora"

    async with RingfenceClient(server.url, old_token) as stale:
        with pytest.raises(RingfenceError) as refused:
            await stale.me()
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")


async def test_server_error_codes_reach_the_caller(
    clients: tuple[RingfenceClient, RingfenceClient], live: tuple[LiveServer, Api]
) -> None:
    alice, _ = clients
    server, _ = live
    async with RingfenceClient(server.url) as anonymous:
        with pytest.raises(RingfenceError) as taken:
            await anonymous.register("alice", PASSWORD)
        with pytest.raises(RingfenceError) as wrong:
            await anonymous.login("alice", "not the password")
        with pytest.raises(RingfenceError) as no_token:
            await anonymous.me()
    with pytest.raises(RingfenceError) as missing:
        await alice.user("nobody")
    with pytest.raises(RingfenceError) as invalid:
        await alice.update_settings(direct_connections="always")
    with pytest.raises(RingfenceError) as refused:
        await alice.start_call("bob", "audio")

    assert (taken.value.status, taken.value.code) == (409, "username_taken")
    assert (wrong.value.status, wrong.value.code) == (401, "invalid_credentials")
    assert (no_token.value.status, no_token.value.code) == (401, "unauthorized")
    assert (missing.value.status, missing.value.code) == (404, "user_not_found")
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_request")
    assert "direct_connections" in invalid.value.detail
    assert (refused.value.status, refused.value.code) == (403, "call_not_allowed")


async def test_settings_update_only_what_is_named(
    clients: tuple[RingfenceClient, RingfenceClient],
) -> None:
    alice, _ = clients
    settings = await alice.update_settings(call_audience=["following", "verified"])
    assert settings["call_audience"] == ["following", "verified"]
    assert settings["calls_enabled"] is True
    settings = await alice.update_settings(calls_enabled=False, direct_connections="following")
    assert settings == {
        "calls_enabled": False,
        "call_audience": ["following", "verified"],
        "direct_connections": "following",
        "silence_unknown_callers": False,
        "read_receipts": True,
        "typing_indicators": True,
        "message_notifications": "name_only",
    }
    assert (await alice.me())["settings"] == settings


async def test_follow_and_block_lists(clients: tuple[RingfenceClient, RingfenceClient]) -> None:
    alice, bob = clients
    await alice.follow("bob")
    assert [u["username"] for u in await alice.following()] == ["bob"]
    assert [u["username"] for u in await bob.followers()] == ["alice"]
    await alice.unfollow("bob")
    assert await alice.following() == []
    await alice.block("bob")
    assert [u["username"] for u in await alice.blocked()] == ["bob"]
    # Bob cannot tell: his message is answered as any other, and withheld from Alice.
    await bob.send_message("alice", "hello?")
    with pytest.raises(RingfenceError) as blocked:
        await alice.send_message("bob", "hello?")
    assert (blocked.value.status, blocked.value.code) == (403, "you_blocked")
    await alice.unblock("bob")
    assert await alice.blocked() == []


async def test_direct_messages_requests_and_idempotent_retries(
    clients: tuple[RingfenceClient, RingfenceClient],
) -> None:
    alice, bob = clients
    first = await alice.send_message("bob", "hi bob", txn_id="txn-1")
    retried = await alice.send_message("bob", "hi bob", txn_id="txn-1")
    assert retried["id"] == first["id"]
    generated = await alice.send_message("bob", "second")
    assert len(generated["txn_id"] or "") == 32  # a generated uuid4 hex

    # Bob does not follow Alice: her messages are a request until he accepts.
    (conversation,) = await bob.conversations()
    assert conversation["is_request"] is True
    assert conversation["user"]["display_name"] == "Alice A."
    accepted = await bob.accept("alice")
    assert accepted["is_request"] is False

    history = await bob.history("alice")
    assert [m["text"] for m in history] == ["hi bob", "second"]  # oldest first
    assert history[0].get("txn_id") is None  # only the sender's copy carries it
    older = await bob.history("alice", before=history[1]["id"], limit=1)
    assert [m["text"] for m in older] == ["hi bob"]

    declined = await bob.decline("alice")
    assert declined["user"]["username"] == "alice"


async def test_start_call_hands_out_the_relay_configuration(
    clients: tuple[RingfenceClient, RingfenceClient],
) -> None:
    alice, bob = clients
    await bob.follow("alice")
    await alice.send_message("bob", "may I call?")
    started = await alice.start_call("bob", "audio")
    assert started["ice_transport_policy"] == "relay"
    assert started["ring_timeout_s"] > 0
    (server,) = started["ice_servers"]
    assert all(url.startswith("turn:") for url in server["urls"])
    assert server["username"]
    assert server["credential"]
    assert await alice.call_history() == []  # a call that never rang leaves no record

    # A declined conversation no longer lets Alice ring Bob, and she is not told why.
    await bob.decline("alice")
    with pytest.raises(RingfenceError) as refused:
        await alice.start_call("bob", "audio")
    assert (refused.value.status, refused.value.code) == (403, "call_not_allowed")


async def test_usernames_cannot_escape_their_path_segment(
    clients: tuple[RingfenceClient, RingfenceClient],
) -> None:
    alice, _ = clients
    with pytest.raises(RingfenceError) as escaped:
        await alice.user("../me")
    assert escaped.value.status == 404


async def test_token_stays_out_of_urls_repr_and_logs(
    live: tuple[LiveServer, Api], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = live
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    caplog.set_level(logging.DEBUG)
    async with RingfenceClient(server.url) as client:
        client._http.event_hooks["request"].append(record)
        await client.register("erin", PASSWORD)
        token = client.token
        assert token is not None
        await client.me()
        assert token not in repr(client)
    assert seen[-1].headers["Authorization"] == f"Bearer {token}"
    assert all(token not in str(request.url) for request in seen)
    assert token not in caplog.text


def test_events_url_follows_the_scheme() -> None:
    assert events_url("http://localhost:8080") == "ws://localhost:8080/api/v1/events"
    assert events_url("https://chat.example.org/rf/") == "wss://chat.example.org/rf/api/v1/events"
    with pytest.raises(ValueError, match="http"):
        RingfenceClient("ftp://example.org")


async def test_the_account_page_from_python(live: tuple[LiveServer, Api]) -> None:
    server, _ = live
    async with RingfenceClient(server.url) as laptop, RingfenceClient(server.url) as phone:
        await laptop.register("erin", PASSWORD)
        await phone.login("erin", PASSWORD)
        renamed = await laptop.rename("Erin E.")
        assert renamed["display_name"] == "Erin E."
        assert (await phone.me())["user"]["display_name"] == "Erin E."

        listed = await laptop.sessions()
        assert [(s["device"], s["current"]) for s in listed] == [
            ("Ringfence terminal client 0.1.0", True),
            ("Ringfence terminal client 0.1.0", False),
        ]
        with pytest.raises(RingfenceError) as wrong:
            await laptop.change_password("not the password", "another good one")
        assert (wrong.value.status, wrong.value.code) == (403, "wrong_password")
        await laptop.change_password(PASSWORD, "another good one")
        with pytest.raises(RingfenceError) as signed_out:
            await phone.me()
        assert signed_out.value.status == 401

        await phone.login("erin", "another good one")
        phone_id = next(s["id"] for s in await laptop.sessions() if not s["current"])
        await laptop.end_session(phone_id)
        with pytest.raises(RingfenceError):
            await phone.me()
        with pytest.raises(RingfenceError) as missing:
            await laptop.end_session(phone_id)
        assert (missing.value.status, missing.value.code) == (404, "session_not_found")
