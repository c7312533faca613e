"""Follow/unfollow and block/unblock, and what a block does to DMs."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.unit.api.test_accounts import assert_error


async def usernames(api: Api, token: str, path: str) -> list[str]:
    resp = await api.call("GET", path, token)
    assert resp.status_code == 200, resp.text
    return [user["username"] for user in resp.json()["users"]]


async def test_follow_and_unfollow(api: Api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.register("carol")
    for name in ("bob", "carol", "bob"):  # following twice is the same as once
        resp = await api.call("PUT", f"/api/v1/me/following/{name}", alice)
        assert resp.status_code == 204
        assert resp.content == b""
    assert await usernames(api, alice, "/api/v1/me/following") == ["bob", "carol"]
    assert await usernames(api, bob, "/api/v1/me/followers") == ["alice"]
    assert await usernames(api, bob, "/api/v1/me/following") == []
    for _ in range(2):  # unfollowing twice is harmless
        resp = await api.call("DELETE", "/api/v1/me/following/bob", alice)
        assert resp.status_code == 204
    assert await usernames(api, alice, "/api/v1/me/following") == ["carol"]
    assert await usernames(api, bob, "/api/v1/me/followers") == []


async def test_follow_refusals(api: Api) -> None:
    alice = await api.register("alice")
    assert_error(await api.call("PUT", "/api/v1/me/following/nobody", alice), 404)
    assert_error(await api.call("DELETE", "/api/v1/me/following/nobody", alice), 404)
    assert_error(await api.call("PUT", "/api/v1/me/following/alice", alice), 400)
    assert await usernames(api, alice, "/api/v1/me/following") == []


async def test_block_and_unblock(api: Api) -> None:
    alice = await api.register("alice")
    await api.register("bob")
    for _ in range(2):
        resp = await api.call("PUT", "/api/v1/me/blocked/bob", alice)
        assert resp.status_code == 204
    assert await usernames(api, alice, "/api/v1/me/blocked") == ["bob"]
    for _ in range(2):
        resp = await api.call("DELETE", "/api/v1/me/blocked/bob", alice)
        assert resp.status_code == 204
    assert await usernames(api, alice, "/api/v1/me/blocked") == []


async def test_block_refusals(api: Api) -> None:
    alice = await api.register("alice")
    assert_error(await api.call("PUT", "/api/v1/me/blocked/nobody", alice), 404)
    assert_error(await api.call("DELETE", "/api/v1/me/blocked/nobody", alice), 404)
    assert_error(await api.call("PUT", "/api/v1/me/blocked/alice", alice), 400)


async def test_a_block_stops_dms_both_ways_and_only_the_blocker_is_told(api: Api) -> None:
    """The whole of what the blocked side sees is in tests/integration/test_block_probing."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    # A conversation exists already.
    assert (await api.send(alice, "bob", "before")).status_code == 201
    await api.call("PUT", "/api/v1/me/blocked/bob", alice)
    from_alice = await api.send(alice, "bob", "after")
    from_bob = await api.send(bob, "alice", "after")
    assert assert_error(from_alice, 403)["error"] == "you_blocked"
    assert from_bob.status_code == 201  # as to anyone; withheld from alice
    history = await api.call("GET", "/api/v1/conversations/bob/messages", alice)
    assert [m["text"] for m in history.json()["messages"]] == ["before"]
    history = await api.call("GET", "/api/v1/conversations/alice/messages", bob)
    assert [m["text"] for m in history.json()["messages"]] == ["before", "after"]
    # Unblocking lets messages through again (what was withheld stays withheld).
    await api.call("DELETE", "/api/v1/me/blocked/bob", alice)
    assert (await api.send(bob, "alice", "again")).status_code == 201
    history = await api.call("GET", "/api/v1/conversations/bob/messages", alice)
    assert [m["text"] for m in history.json()["messages"]] == ["before", "again"]


async def test_a_blocked_follow_is_answered_like_any_other_and_grants_nothing(api: Api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.call("PUT", "/api/v1/me/blocked/bob", alice)
    follow = await api.call("PUT", "/api/v1/me/following/alice", bob)
    assert follow.status_code == 204
    assert await usernames(api, bob, "/api/v1/me/following") == ["alice"]
    assert await usernames(api, alice, "/api/v1/me/followers") == []
    # It gives bob no way to reach alice.
    call = await api.call("POST", "/api/v1/calls", bob, json={"to": "alice", "media": "audio"})
    assert assert_error(call, 403)["error"] == "call_not_allowed"


async def test_a_block_removes_follows_both_ways(api: Api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.call("PUT", "/api/v1/me/following/bob", alice)
    await api.call("PUT", "/api/v1/me/following/alice", bob)
    await api.call("PUT", "/api/v1/me/blocked/bob", alice)
    assert await usernames(api, alice, "/api/v1/me/following") == []
    assert await usernames(api, bob, "/api/v1/me/following") == []
    # Unblocking does not bring them back.
    await api.call("DELETE", "/api/v1/me/blocked/bob", alice)
    assert await usernames(api, alice, "/api/v1/me/following") == []
    assert (await api.call("PUT", "/api/v1/me/following/bob", alice)).status_code == 204


@pytest.mark.parametrize("name", ["Bob", "b", "bob%00", "%00", "b%C3%B6b", "x" * 300, "bob%20"])
async def test_odd_usernames_in_paths_are_not_found(api: Api, name: str) -> None:
    alice = await api.register("alice")
    await api.register("bob")
    for method, path in [
        ("PUT", f"/api/v1/me/following/{name}"),
        ("DELETE", f"/api/v1/me/following/{name}"),
        ("PUT", f"/api/v1/me/blocked/{name}"),
        ("DELETE", f"/api/v1/me/blocked/{name}"),
        ("GET", f"/api/v1/users/{name}"),
    ]:
        assert_error(await api.call(method, path, alice), 404)
