"""Direct messages: sending, message requests, idempotent retries, history, limits."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import Api, DbPeek
from tests.unit.api.test_accounts import assert_error

MESSAGE_KEYS = {"id", "sender", "recipient", "kind", "text", "created_at"}


async def pair(api: Api) -> tuple[str, str]:
    return await api.register("alice"), await api.register("bob")


async def conversations(api: Api, token: str) -> list[dict[str, Any]]:
    resp = await api.call("GET", "/api/v1/conversations", token)
    assert resp.status_code == 200, resp.text
    result: list[dict[str, Any]] = resp.json()["conversations"]
    return result


async def conversation_with(api: Api, token: str, username: str) -> dict[str, Any]:
    [conv] = [c for c in await conversations(api, token) if c["user"]["username"] == username]
    return conv


async def history(api: Api, token: str, username: str, **params: Any) -> list[dict[str, Any]]:
    resp = await api.call("GET", f"/api/v1/conversations/{username}/messages", token, params=params)
    assert resp.status_code == 200, resp.text
    result: list[dict[str, Any]] = resp.json()["messages"]
    return result


async def test_send_returns_the_message(api: Api) -> None:
    alice, _ = await pair(api)
    resp = await api.send(alice, "bob", "hello bob")
    assert resp.status_code == 201
    message = resp.json()["message"]
    assert set(message) >= MESSAGE_KEYS
    assert message["sender"] == "alice"
    assert message["recipient"] == "bob"
    assert message["kind"] == "text"
    assert message["text"] == "hello bob"
    assert isinstance(message["id"], int)
    assert datetime.fromisoformat(message["created_at"]).utcoffset() is not None


async def test_a_message_is_committed_before_the_send_is_acknowledged(
    api: Api, db_peek: DbPeek
) -> None:
    alice, _ = await pair(api)
    message = (await api.send(alice, "bob", "durable")).json()["message"]
    # A separate connection sees it: it was committed, not just flushed.
    rows = await db_peek.rows("SELECT text FROM messages WHERE id = :id", id=message["id"])
    assert rows == [("durable",)]
    events = await db_peek.rows("SELECT user_id, pos FROM events ORDER BY user_id")
    assert len(events) == 2  # one stream event for each participant


async def test_both_participants_see_the_message_in_history(api: Api) -> None:
    alice, bob = await pair(api)
    sent = (await api.send(alice, "bob", "hi")).json()["message"]
    for token, other in ((alice, "bob"), (bob, "alice")):
        [seen] = await history(api, token, other)
        assert {k: seen[k] for k in MESSAGE_KEYS} == {k: sent[k] for k in MESSAGE_KEYS}


async def test_a_message_from_a_stranger_is_a_request_until_accepted(api: Api) -> None:
    alice, bob = await pair(api)
    await api.send(alice, "bob", "one")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True
    assert (await conversation_with(api, alice, "bob"))["is_request"] is False
    await api.send(alice, "bob", "two")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True
    resp = await api.call("POST", "/api/v1/conversations/alice/accept", bob)
    assert resp.status_code == 200
    assert resp.json()["conversation"]["is_request"] is False
    assert resp.json()["conversation"]["user"]["username"] == "alice"
    assert (await conversation_with(api, bob, "alice"))["is_request"] is False
    # Accepting again is harmless.
    assert (await api.call("POST", "/api/v1/conversations/alice/accept", bob)).status_code == 200


async def test_replying_accepts_a_request(api: Api) -> None:
    alice, bob = await pair(api)
    await api.send(alice, "bob", "hi")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True
    await api.send(bob, "alice", "hello")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is False
    assert (await conversation_with(api, alice, "bob"))["is_request"] is False
    await api.send(alice, "bob", "again")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is False


async def test_a_message_from_someone_the_recipient_follows_is_not_a_request(api: Api) -> None:
    alice, bob = await pair(api)
    await api.call("PUT", "/api/v1/me/following/alice", bob)
    await api.send(alice, "bob", "hi")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is False


async def test_following_the_recipient_does_not_make_it_a_non_request(api: Api) -> None:
    alice, bob = await pair(api)
    await api.call("PUT", "/api/v1/me/following/bob", alice)  # the sender follows
    await api.send(alice, "bob", "hi")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True


async def test_a_request_stays_a_request_when_the_recipient_follows_later(api: Api) -> None:
    alice, bob = await pair(api)
    await api.send(alice, "bob", "hi")
    await api.call("PUT", "/api/v1/me/following/alice", bob)
    await api.send(alice, "bob", "hi again")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True


async def test_accept_needs_a_conversation(api: Api) -> None:
    alice, bob = await pair(api)
    assert_error(await api.call("POST", "/api/v1/conversations/bob/accept", alice), 404)
    assert_error(await api.call("POST", "/api/v1/conversations/nobody/accept", alice), 404)
    assert_error(await api.call("POST", "/api/v1/conversations/alice/accept", alice), 404)
    await api.send(alice, "bob", "hi")
    # The sender has nothing to accept, but it is not an error either.
    assert (await api.call("POST", "/api/v1/conversations/bob/accept", alice)).status_code == 200
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True


async def test_a_declined_request_is_hidden_until_the_next_message(api: Api) -> None:
    alice, bob = await pair(api)
    await api.send(alice, "bob", "hi")
    resp = await api.call("POST", "/api/v1/conversations/alice/decline", bob)
    assert resp.status_code == 200
    assert await conversations(api, bob) == []
    await api.send(alice, "bob", "please?")
    assert (await conversation_with(api, bob, "alice"))["is_request"] is True


async def test_conversation_list(api: Api) -> None:
    alice, bob = await pair(api)
    carol = await api.register("carol")
    assert await conversations(api, alice) == []
    await api.send(alice, "bob", "to bob")
    await api.send(carol, "alice", "to alice")
    listed = await conversations(api, alice)
    assert [c["user"]["username"] for c in listed] == ["carol", "bob"]  # most recent first
    by_name = {c["user"]["username"]: c for c in listed}
    assert set(by_name["carol"]["user"]) == {
        "id",
        "username",
        "display_name",
        "verified",
        "deleted",
    }
    assert by_name["carol"]["last_message"]["text"] == "to alice"
    assert by_name["carol"]["is_request"] is True
    assert by_name["bob"]["last_message"]["text"] == "to bob"
    assert by_name["bob"]["is_request"] is False
    await api.send(bob, "alice", "reply")
    listed = await conversations(api, alice)
    assert [c["user"]["username"] for c in listed] == ["bob", "carol"]
    assert listed[0]["last_message"]["sender"] == "bob"


async def test_history_is_paged_newest_last(api: Api) -> None:
    alice, bob = await pair(api)
    for i in range(7):
        await api.send(alice if i % 2 else bob, "bob" if i % 2 else "alice", f"m{i}")
    everything = await history(api, alice, "bob")
    assert [m["text"] for m in everything] == [f"m{i}" for i in range(7)]
    page = await history(api, alice, "bob", limit=3)
    assert [m["text"] for m in page] == ["m4", "m5", "m6"]
    page = await history(api, alice, "bob", limit=3, before=page[0]["id"])
    assert [m["text"] for m in page] == ["m1", "m2", "m3"]
    page = await history(api, alice, "bob", limit=3, before=page[0]["id"])
    assert [m["text"] for m in page] == ["m0"]
    assert await history(api, alice, "bob", limit=3, before=page[0]["id"]) == []
    assert await history(api, bob, "alice", limit=1) == everything[-1:]


async def test_history_of_users_who_never_talked_is_empty(api: Api) -> None:
    alice, _ = await pair(api)
    assert await history(api, alice, "bob") == []
    assert_error(await api.call("GET", "/api/v1/conversations/nobody/messages", alice), 404)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"before": 0},
        {"before": "last"},
        {"before": 2**63},
        {"before": 1.5},
    ],
)
async def test_bad_history_parameters_are_refused(api: Api, params: dict[str, Any]) -> None:
    alice, _ = await pair(api)
    body = assert_error(
        await api.call("GET", "/api/v1/conversations/bob/messages", alice, params=params), 422
    )
    assert next(iter(params)) in body["detail"]


async def test_a_retried_send_with_the_same_txn_id_returns_the_same_message(
    api: Api, db_peek: DbPeek
) -> None:
    alice, bob = await pair(api)
    first = await api.send(alice, "bob", "once", txn_id="txn-1")
    retry = await api.send(alice, "bob", "once", txn_id="txn-1")
    changed = await api.send(alice, "bob", "twice?", txn_id="txn-1")
    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert changed.json() == first.json()
    assert first.json()["message"]["txn_id"] == "txn-1"  # for the sender's local echo
    assert [m["text"] for m in await history(api, bob, "alice")] == ["once"]
    # The recipient's copy does not carry the sender's txn_id.
    assert [m.get("txn_id") for m in await history(api, bob, "alice")] == [None]
    assert await db_peek.rows("SELECT count(*) FROM messages") == [(1,)]
    # Each participant got exactly one event for it.
    assert await db_peek.rows("SELECT count(*) FROM events") == [(2,)]


async def test_concurrent_retries_store_one_message(api: Api, db_peek: DbPeek) -> None:
    alice, _ = await pair(api)
    responses = await asyncio.gather(
        *(api.send(alice, "bob", "racing", txn_id="same") for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["message"]["id"] for r in responses}) == 1
    assert await db_peek.rows("SELECT count(*) FROM messages") == [(1,)]


async def test_reusing_a_txn_id_for_another_recipient_is_a_conflict(api: Api) -> None:
    alice, _ = await pair(api)
    await api.register("carol")
    assert (await api.send(alice, "bob", "hi", txn_id="t-1")).status_code == 201
    body = assert_error(await api.send(alice, "carol", "hi", txn_id="t-1"), 409)
    assert body["error"] == "txn_conflict"
    # Another sender may use the same txn_id freely.
    carol = (
        await api.call(
            "POST", "/api/v1/sessions", json={"username": "carol", "password": "correct horse 1"}
        )
    ).json()["token"]
    assert (await api.send(carol, "bob", "hi", txn_id="t-1")).status_code == 201


async def test_text_of_exactly_the_limit_is_accepted(api: Api) -> None:
    alice, bob = await pair(api)
    assert (await api.send(alice, "bob", "x" * 10_000)).status_code == 201
    wide = "\U0001f600" * 10_000  # the limit counts characters, not bytes
    assert (await api.send(alice, "bob", wide)).status_code == 201
    assert (await history(api, bob, "alice"))[-1]["text"] == wide


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("x" * 10_001, "text"),
        ("", "text"),
        ("   \n\t ", "text"),
        ("nul\x00byte", "text"),
    ],
)
async def test_bad_text_is_refused(api: Api, text: str, field: str) -> None:
    alice, bob = await pair(api)
    body = assert_error(await api.send(alice, "bob", text))
    assert field in body["detail"]
    assert await history(api, bob, "alice") == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": None},
        {"text": 42},
        {"text": ["hi"]},
        {"text": "hi", "kind": "call"},
        {"text": "hi", "txn_id": ""},
        {"text": "hi", "txn_id": "x" * 65},
        {"text": "hi", "txn_id": "has space"},
        {"text": "hi", "txn_id": "slash/y"},
        {"text": "hi", "txn_id": 7},
    ],
)
async def test_malformed_send_bodies_are_refused(api: Api, body: dict[str, Any]) -> None:
    alice, bob = await pair(api)
    resp = await api.call("POST", "/api/v1/conversations/bob/messages", alice, json=body)
    assert_error(resp, 422)
    assert await history(api, bob, "alice") == []


async def test_sending_to_oneself_or_nobody_is_refused(api: Api) -> None:
    alice, _ = await pair(api)
    assert_error(await api.send(alice, "alice", "me"), 400)
    assert_error(await api.send(alice, "nobody", "hi"), 404)
    assert_error(await api.send(alice, "Bob", "hi"), 404)


async def test_many_concurrent_sends_between_many_users_all_succeed(
    api: Api, db_peek: DbPeek
) -> None:
    """Sends in every direction at once: no deadlock, and every user's event stream
    positions stay gap-free."""
    names = ["anna", "bert", "carl", "dora"]
    tokens = {name: await api.register(name) for name in names}
    sends = [
        api.send(tokens[a], b, f"{a}->{b} #{n}")
        for n in range(3)
        for a in names
        for b in names
        if a != b
    ]
    responses = await asyncio.gather(*sends)
    assert [r.status_code for r in responses] == [201] * len(sends)
    for user_id, positions in _group(
        await db_peek.rows("SELECT user_id, pos FROM events ORDER BY user_id, pos")
    ).items():
        assert positions == list(range(1, len(positions) + 1)), user_id
    assert await db_peek.rows("SELECT count(*) FROM messages") == [(len(sends),)]


def _group(rows: list[Any]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for user_id, pos in rows:
        grouped.setdefault(user_id, []).append(pos)
    return grouped


async def test_a_declined_request_says_so(api: Api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.send(alice, "bob", "hello?")
    convs = (await api.call("GET", "/api/v1/conversations", bob)).json()["conversations"]
    assert [c["state"] for c in convs] == ["request"]
    declined = await api.call("POST", "/api/v1/conversations/alice/decline", bob)
    assert declined.json()["conversation"]["state"] == "declined"
    assert declined.json()["conversation"]["is_request"] is False
    accepted = await api.call("POST", "/api/v1/conversations/alice/accept", bob)
    assert accepted.json()["conversation"]["state"] == "accepted"
