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


@pytest.mark.parametrize("blocker", ["alice", "bob"])
async def test_a_block_stops_dms_both_ways_with_the_same_error(api: Api, blocker: str) -> None:
    tokens = {"alice": await api.register("alice"), "bob": await api.register("bob")}
    # A conversation exists already.
    assert (await api.send(tokens["alice"], "bob", "before")).status_code == 201
    blocked = "bob" if blocker == "alice" else "alice"
    await api.call("PUT", f"/api/v1/me/blocked/{blocked}", tokens[blocker])
    from_alice = await api.send(tokens["alice"], "bob", "after")
    from_bob = await api.send(tokens["bob"], "alice", "after")
    assert_error(from_alice, 403)
    assert from_alice.json() == from_bob.json()
    assert from_alice.json()["error"] == "cannot_message"
    # Nothing was stored.
    history = await api.call("GET", "/api/v1/conversations/bob/messages", tokens["alice"])
    assert [m["text"] for m in history.json()["messages"]] == ["before"]
    # Unblocking lets messages through again.
    await api.call("DELETE", f"/api/v1/me/blocked/{blocked}", tokens[blocker])
    assert (await api.send(tokens["bob"], "alice", "again")).status_code == 201


async def test_the_blocked_side_cannot_tell_a_block_from_being_blocked(api: Api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    dave = await api.register("dave")
    await api.call("PUT", "/api/v1/me/blocked/bob", alice)  # alice blocks bob
    await api.call("PUT", "/api/v1/me/blocked/dave", dave)  # refused: self
    await api.call("PUT", "/api/v1/me/blocked/carol", dave)  # dave blocks carol
    blocked_by_other = await api.send(bob, "alice", "hi")  # bob was blocked
    blocker_writes = await api.send(dave, "carol", "hi")  # dave is the blocker
    assert blocked_by_other.status_code == blocker_writes.status_code == 403
    assert blocked_by_other.json() == blocker_writes.json()
    follow_blocker = await api.call("PUT", "/api/v1/me/following/alice", bob)
    follow_blocked = await api.call("PUT", "/api/v1/me/following/carol", dave)
    assert_error(follow_blocker)
    assert follow_blocker.status_code == follow_blocked.status_code
    assert follow_blocker.json() == follow_blocked.json()
    assert await usernames(api, carol, "/api/v1/me/followers") == []


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
