"""A blocked person cannot tell that they are blocked, by messaging or following.

Two worlds side by side on one server: Bob, whom Alice has blocked, and Carol, whom
Dave has not. Bob and Carol do the same things; everything each of them can observe
(answers, history, conversation list, events, lists, lookups, limits) must be the
same once names and ids are set aside. Meanwhile Alice sees nothing of Bob.

Before: Bob's message got 403 ``cannot_message`` and his follow 400 ``cannot_follow``
where Carol got 201 and 204.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Api, LiveServer, open_socket
from tests.integration.calls.conftest import collect

pytestmark = pytest.mark.integration

# Per world: (the one who may block, the one who writes to them).
WORLDS = {"blocked": ("alice", "bob"), "free": ("dave", "carol")}
VOLATILE = {"id", "created_at", "updated_at", "pos", "message_id"}


def same_shape(value: Any, names: tuple[str, str]) -> Any:
    """``value`` with the world's two names replaced by roles, and ids and times out."""
    if isinstance(value, dict):
        return {k: same_shape(v, names) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [same_shape(v, names) for v in value]
    if isinstance(value, str):
        return value.replace(names[0], "<recipient>").replace(names[1], "<sender>")
    return value


async def observe(live: LiveServer, api: Api, tokens: dict[str, str], world: str) -> Any:
    """Everything the writer of ``world`` does and sees, in order."""
    recipient, sender = WORLDS[world]
    token = tokens[sender]
    seen: list[Any] = []
    sock = await open_socket(live.ws_url, token)
    try:
        for text in ("after one", "after two", "after one"):  # and a retry, by txn_id
            txn = "t-" + text.replace(" ", "-")
            resp = await api.send(token, recipient, text, txn_id=txn)
            seen.append((resp.status_code, resp.json()))
        follow = await api.call("PUT", f"/api/v1/me/following/{recipient}", token)
        seen.append((follow.status_code, follow.content))
        for path in (
            f"/api/v1/conversations/{recipient}/messages",
            "/api/v1/conversations",
            "/api/v1/me/following",
            "/api/v1/me/followers",
            f"/api/v1/users/{recipient}",
        ):
            resp = await api.call("GET", path, token)
            seen.append((path.replace(recipient, "<recipient>"), resp.status_code, resp.json()))
        unfollow = await api.call("DELETE", f"/api/v1/me/following/{recipient}", token)
        seen.append((unfollow.status_code, unfollow.content))
        call = await api.call(
            "POST", "/api/v1/calls", token, json={"to": recipient, "media": "audio"}
        )
        seen.append((call.status_code, call.json()))
        seen.append([e for e in await collect(sock, 0.5) if e["type"] != "ready"])
    finally:
        await sock.close()
    return same_shape(seen, (recipient, sender))


async def test_a_blocked_sender_sees_exactly_what_anyone_else_sees(
    live: tuple[LiveServer, Api],
) -> None:
    server, api = live
    tokens = {name: await api.register(name) for name in ("alice", "bob", "carol", "dave")}
    # Each writer had written once before; then Alice (only) blocks her writer.
    for recipient, sender in WORLDS.values():
        assert (await api.send(tokens[sender], recipient, "before")).status_code == 201
    alice_sock = await open_socket(server.ws_url, tokens["alice"])
    alice_before = await api.call("GET", "/api/v1/conversations", tokens["alice"])
    assert (await api.call("PUT", "/api/v1/me/blocked/bob", tokens["alice"])).status_code == 204

    blocked, free = await asyncio.gather(
        observe(server, api, tokens, "blocked"), observe(server, api, tokens, "free")
    )

    assert blocked == free
    # And what Bob saw is what anyone sees: his messages, answered and in his history.
    assert blocked[0][0] == 201
    history = blocked[4][2]["messages"]
    assert [m["text"] for m in history] == ["before", "after one", "after two"]

    # Alice: nothing. No event, no message, no change to her inbox or requests.
    assert await collect(alice_sock, 0.5) == []
    await alice_sock.close()
    alice_history = await api.call("GET", "/api/v1/conversations/bob/messages", tokens["alice"])
    assert [m["text"] for m in alice_history.json()["messages"]] == ["before"]
    alice_after = await api.call("GET", "/api/v1/conversations", tokens["alice"])
    assert alice_after.json() == alice_before.json()
    assert (await api.call("GET", "/api/v1/me/followers", tokens["alice"])).json()["users"] == []
    # Dave, who blocked no one, got Carol's messages as usual.
    dave_history = await api.call("GET", "/api/v1/conversations/carol/messages", tokens["dave"])
    assert [m["text"] for m in dave_history.json()["messages"]] == [
        "before",
        "after one",
        "after two",
    ]


async def test_a_first_message_to_someone_who_blocked_you_opens_nothing_for_them(
    live: tuple[LiveServer, Api],
) -> None:
    _, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.call("PUT", "/api/v1/me/blocked/bob", alice)

    sent = await api.send(bob, "alice", "hello?")

    assert sent.status_code == 201
    mine = (await api.call("GET", "/api/v1/conversations", bob)).json()["conversations"]
    assert [(c["user"]["username"], c["last_message"]["text"]) for c in mine] == [
        ("alice", "hello?")
    ]
    assert (await api.call("GET", "/api/v1/conversations", alice)).json()["conversations"] == []
    # Unblocking later delivers nothing of what was withheld.
    await api.call("DELETE", "/api/v1/me/blocked/bob", alice)
    assert (await api.call("GET", "/api/v1/conversations", alice)).json()["conversations"] == []
    history = await api.call("GET", "/api/v1/conversations/bob/messages", alice)
    assert history.json()["messages"] == []
    # What Bob sends after the unblock arrives, as a request.
    assert (await api.send(bob, "alice", "hi again")).status_code == 201
    inbox = (await api.call("GET", "/api/v1/conversations", alice)).json()["conversations"]
    assert [(c["last_message"]["text"], c["is_request"]) for c in inbox] == [("hi again", True)]
    history = await api.call("GET", "/api/v1/conversations/bob/messages", alice)
    assert [m["text"] for m in history.json()["messages"]] == ["hi again"]


async def test_the_one_who_blocked_is_told_when_they_write_or_follow(
    live: tuple[LiveServer, Api],
) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    await api.call("PUT", "/api/v1/me/blocked/bob", alice)

    sent = await api.send(alice, "bob", "hi")
    follow = await api.call("PUT", "/api/v1/me/following/bob", alice)

    for resp in (sent, follow):
        assert resp.status_code == 403
        assert resp.json()["error"] == "you_blocked"
        assert "unblock" in resp.json()["detail"]
