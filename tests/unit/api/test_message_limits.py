"""Per-account limits on messages, message requests, follows and profile lookups: 429
with Retry-After and a JSON body that says when to try again.

Before: 200 messages of 9 KB to a stranger were all accepted in 1.2 s; follows and
lookups had no limit at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.app import create_app
from tests.conftest import Api, make_settings


async def limited(tmp_path: Path, database_url: str, **limits: Any) -> AsyncIterator[Api]:
    app = create_app(make_settings(tmp_path, database_url, **limits))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client)


@pytest.fixture
async def small(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    async for api in limited(
        tmp_path,
        database_url,
        messages_per_minute=5,
        message_requests_per_hour=3,
        follows_per_hour=4,
        profile_lookups_per_hour=3,
    ):
        yield api


def assert_limited(resp: httpx.Response, code: str, *, at_least_s: int) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["error"] == code
    assert "try again in" in body["detail"]
    retry = int(resp.headers["Retry-After"])
    assert at_least_s <= retry
    assert str(retry // 60 if retry >= 90 else retry) in body["detail"]


async def test_a_flood_of_messages_to_a_stranger_is_cut_short(api: Api) -> None:
    """The finding, with the default limits: 200 messages of 9 KB to a stranger."""
    mallory = await api.register("mallory")
    victim = await api.register("victim")
    answers = [await api.send(mallory, "victim", f"{n} " + "x" * 9000) for n in range(200)]
    codes = [r.json().get("error") if r.status_code == 429 else r.status_code for r in answers]
    # message_requests_per_hour (20) lands first, as the victim never accepted; then,
    # every attempt counting, messages_per_minute (60) too.
    assert codes == (
        [201] * 20 + ["message_request_rate_limited"] * 40 + ["message_rate_limited"] * 140
    )
    assert_limited(answers[20], "message_request_rate_limited", at_least_s=3000)
    assert_limited(answers[60], "message_rate_limited", at_least_s=1)
    history = await api.call("GET", "/api/v1/conversations/mallory/messages", victim)
    assert len(history.json()["messages"]) == 20


async def test_sending_is_limited_per_minute_in_any_conversation(small: Api) -> None:
    alice = await small.register("alice")
    bob = await small.register("bob")
    await small.call("PUT", "/api/v1/me/following/alice", bob)  # accepted: no requests
    for n in range(5):
        assert (await small.send(alice, "bob", f"m{n}")).status_code == 201
    assert_limited(await small.send(alice, "bob", "m5"), "message_rate_limited", at_least_s=1)
    # Someone else's budget is their own.
    assert (await small.send(bob, "alice", "hi")).status_code == 201


async def test_message_requests_have_a_tighter_limit_than_conversations(small: Api) -> None:
    alice = await small.register("alice")
    friend = await small.register("friend")
    for name in ("stranger1", "stranger2", "stranger3", "stranger4"):
        await small.register(name)
    await small.call("PUT", "/api/v1/me/following/alice", friend)
    for name in ("stranger1", "stranger2", "stranger3"):
        assert (await small.send(alice, name, "hello")).status_code == 201
    assert_limited(
        await small.send(alice, "stranger4", "hello"),
        "message_request_rate_limited",
        at_least_s=3000,
    )
    # Messages that are not requests still go: friend follows alice.
    assert (await small.send(alice, "friend", "hi")).status_code == 201


async def test_a_blocked_sender_meets_the_same_limits_as_anyone(small: Api) -> None:
    alice = await small.register("alice")
    bob = await small.register("bob")
    carol = await small.register("carol")
    await small.register("dave")
    await small.call("PUT", "/api/v1/me/blocked/bob", alice)
    blocked = [(await small.send(bob, "alice", f"m{n}")).status_code for n in range(4)]
    free = [(await small.send(carol, "dave", f"m{n}")).status_code for n in range(4)]
    assert blocked == free == [201, 201, 201, 429]


async def test_follows_and_unfollows_share_a_limit(small: Api) -> None:
    alice = await small.register("alice")
    await small.register("bob")
    for method in ("PUT", "DELETE", "PUT", "DELETE"):
        resp = await small.call(method, "/api/v1/me/following/bob", alice)
        assert resp.status_code == 204
    assert_limited(
        await small.call("PUT", "/api/v1/me/following/bob", alice),
        "follow_rate_limited",
        at_least_s=3000,
    )


async def test_profile_lookups_are_limited_whether_the_user_exists_or_not(small: Api) -> None:
    alice = await small.register("alice")
    await small.register("bob")
    for name in ("bob", "nobody", "bob"):
        resp = await small.call("GET", f"/api/v1/users/{name}", alice)
        assert resp.status_code in (200, 404)
    for name in ("bob", "nobody"):
        assert_limited(
            await small.call("GET", f"/api/v1/users/{name}", alice),
            "lookup_rate_limited",
            at_least_s=3000,
        )
