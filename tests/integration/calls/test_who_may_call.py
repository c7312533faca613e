"""Who may call: every refusal is the same 403, rate limits are 429, and a refused call
never reaches the callee's devices."""

from __future__ import annotations

import pytest

from tests.conftest import Api, LiveServer, open_socket
from tests.integration.calls.conftest import befriend, start_call
from tests.integration.calls.sdp import sdp_pair


async def assert_refused_quietly(live: LiveServer, api: Api, caller: str, callee: str) -> None:
    callee_ws = await open_socket(live.ws_url, callee)
    resp = await start_call(api, caller, "bob")
    assert resp.status_code == 403
    assert resp.json() == {"error": "call_not_allowed", "detail": "you cannot call this user"}
    await callee_ws.nothing_within(0.5)
    await callee_ws.close()


async def test_allowed_by_default_when_callee_follows_and_conversation_accepted(
    server: tuple[LiveServer, Api],
) -> None:
    _, api = server
    alice, _ = await befriend(api, "alice", "bob")
    assert (await start_call(api, alice, "bob")).status_code == 201


async def test_calls_switched_off(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    resp = await api.call("PATCH", "/api/v1/me/settings", bob, json={"calls_enabled": False})
    assert resp.json()["settings"]["calls_enabled"] is False
    await assert_refused_quietly(live, api, alice, bob)
    # Switching back on takes effect for the very next call.
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"calls_enabled": True})
    assert (await start_call(api, alice, "bob")).status_code == 201


async def test_audience_not_matched(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"call_audience": ["verified"]})
    await assert_refused_quietly(live, api, alice, bob)
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"call_audience": []})
    await assert_refused_quietly(live, api, alice, bob)
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"call_audience": ["everyone"]})
    assert (await start_call(api, alice, "bob")).status_code == 201


async def test_verified_audience_admits_verified_callers(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await api.call("DELETE", "/api/v1/me/following/alice", bob)
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"call_audience": ["verified"]})
    await assert_refused_quietly(live, api, alice, bob)
    await live.services.accounts.set_verified("alice", True)
    assert (await start_call(api, alice, "bob")).status_code == 201


async def test_unfollowed_caller_is_refused_under_following(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await api.call("DELETE", "/api/v1/me/following/alice", bob)
    await assert_refused_quietly(live, api, alice, bob)


async def test_a_pending_message_request_does_not_count(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"call_audience": ["everyone"]})
    # No conversation at all.
    await assert_refused_quietly(live, api, alice, bob)
    # Alice's message is a request on Bob's side (he does not follow her).
    assert (await api.send(alice, "bob", "hello?")).status_code == 201
    await assert_refused_quietly(live, api, alice, bob)
    # Once Bob accepts, she may call.
    assert (await api.call("POST", "/api/v1/conversations/alice/accept", bob)).status_code == 200
    assert (await start_call(api, alice, "bob")).status_code == 201


@pytest.mark.parametrize("blocker", ["callee", "caller"])
async def test_blocked_either_way(server: tuple[LiveServer, Api], blocker: str) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"call_audience": ["everyone"]})
    if blocker == "callee":
        await api.call("PUT", "/api/v1/me/blocked/alice", bob)
    else:
        await api.call("PUT", "/api/v1/me/blocked/bob", alice)
    await assert_refused_quietly(live, api, alice, bob)


async def test_unknown_callee_and_self_look_the_same(server: tuple[LiveServer, Api]) -> None:
    _, api = server
    alice = await api.register("alice")
    for to in ("nobody_here", "alice"):
        resp = await api.call("POST", "/api/v1/calls", alice, json={"to": to, "media": "audio"})
        assert resp.status_code == 403
        assert resp.json()["error"] == "call_not_allowed"


@pytest.mark.server_settings(call_attempts_per_pair_per_minute=3, call_attempts_per_minute=100)
async def test_pair_rate_limit_counts_refused_attempts(server: tuple[LiveServer, Api]) -> None:
    _live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await api.call("PATCH", "/api/v1/me/settings", bob, json={"calls_enabled": False})
    for _ in range(3):
        assert (await start_call(api, alice, "bob")).status_code == 403
    resp = await start_call(api, alice, "bob")
    assert resp.status_code == 429
    assert resp.json()["error"] == "call_rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1


@pytest.mark.server_settings(call_attempts_per_minute=2)
async def test_caller_rate_limit(server: tuple[LiveServer, Api]) -> None:
    _live, api = server
    alice, _ = await befriend(api, "alice", "bob")
    await api.register("carol")  # exists, but alice may not call her
    for target in ("carol", "dave"):
        assert (await start_call(api, alice, target)).status_code == 403
    assert (await start_call(api, alice, "bob")).status_code == 429


async def test_one_ringing_call_per_pair(server: tuple[LiveServer, Api]) -> None:
    _live, api = server
    alice, _bob = await befriend(api, "alice", "bob")
    assert (await start_call(api, alice, "bob")).status_code == 201
    resp = await start_call(api, alice, "bob")
    assert resp.status_code == 429


async def test_settings_validation_names_the_field_and_keeps_the_stored_value(
    server: tuple[LiveServer, Api],
) -> None:
    _, api = server
    bob = await api.register("bob")
    for body, field in (
        ({"calls_enabled": "yes"}, "calls_enabled"),
        ({"call_audience": ["friends"]}, "call_audience"),
        ({"direct_connections": "all"}, "direct_connections"),
        ({"calls_enabled": False, "direct_connections": "all"}, "direct_connections"),
    ):
        resp = await api.call("PATCH", "/api/v1/me/settings", bob, json=body)
        assert resp.status_code == 422
        assert field in resp.json()["detail"]
    me = (await api.call("GET", "/api/v1/me", bob)).json()
    assert me["settings"] == {
        "calls_enabled": True,
        "call_audience": ["following"],
        "direct_connections": "nobody",
        "silence_unknown_callers": False,
        "read_receipts": True,
        "typing_indicators": True,
        "message_notifications": "name_only",
    }


@pytest.mark.server_settings(ring_timeout_s=2)
async def test_silenced_unknown_caller_rings_out_unseen_and_is_recorded_missed(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await api.call("DELETE", "/api/v1/me/following/alice", bob)  # outside bob's audience
    await assert_refused_quietly(live, api, alice, bob)  # silencing is off by default
    resp = await api.call(
        "PATCH", "/api/v1/me/settings", bob, json={"silence_unknown_callers": True}
    )
    assert resp.json()["settings"]["silence_unknown_callers"] is True

    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = await start_call(api, alice, "bob")
    assert started.status_code == 201  # to alice it looks like any call
    call_id = started.json()["call_id"]
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": (await sdp_pair())[0]})
    # Bob's devices never ring; the call ends as an unanswered one, recorded as missed.
    record = (await b_ws.recv_type("message.new", timeout=10))["message"]
    assert record["kind"] == "call"
    assert record["call"]["outcome"] == "missed"
    assert (await a_ws.recv_type("call.ended"))["reason"] == "timeout"
    # Nothing but that record (and the end of a call it never saw) reached Bob.
    assert (await b_ws.recv_type("call.ended"))["reason"] == "timeout"
