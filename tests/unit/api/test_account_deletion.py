"""Deleting an account (issue 12, part 2): ``DELETE /api/v1/me`` with the password.

- A wrong password is 403 ``wrong_password`` and counts as a failed sign-in (so
  guessing is throttled like sign-ins); nothing is deleted.
- Deleting signs out every session at once (its sockets close with 4401 on every
  node), and deletes settings, follows and blocks both ways, the event stream, read
  positions and undelivered messages; the password hash is gone.
- The messages the person sent stay with the people who got them, shown as from
  "Deleted account" (under a ``deleted_account_...`` username nobody can register);
  those they received stay with their senders. Reading them, the conversation list,
  marking read and the export keep working for everyone else.
- A deleted account cannot sign in (answered exactly as a wrong password), and for
  looking up, messaging, following, blocking, reporting and calling it is exactly
  like a name nobody has (calls: the same 403 ``call_not_allowed`` as any refusal).
- Its username stays taken for ``deleted_username_hold_days`` (answered exactly as
  any taken name), then can be registered again by someone who inherits nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.clock import FakeClock
from tests.conftest import Api, DbPeek, LiveServer, make_settings, open_socket
from tests.unit.api.test_events_ws import close_code

PASSWORD = "correct horse 1"
DAY = 24 * 3600.0
HOLD_DAYS = 3


class World:
    def __init__(self, live: LiveServer, api: Api, clock: FakeClock) -> None:
        self.live = live
        self.api = api
        self.clock = clock

    async def delete(self, token: str, password: str = PASSWORD) -> httpx.Response:
        return await self.api.call("DELETE", "/api/v1/me", token, json={"password": password})

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return await self.api.client.post(
            "/api/v1/sessions", json={"username": username, "password": password}
        )

    async def conversations(self, token: str) -> list[dict[str, Any]]:
        resp = await self.api.call("GET", "/api/v1/conversations", token)
        assert resp.status_code == 200, resp.text
        result: list[dict[str, Any]] = resp.json()["conversations"]
        return result

    async def history(self, token: str, username: str) -> list[dict[str, Any]]:
        resp = await self.api.call("GET", f"/api/v1/conversations/{username}/messages", token)
        assert resp.status_code == 200, resp.text
        result: list[dict[str, Any]] = resp.json()["messages"]
        return result


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[World]:
    clock = FakeClock()
    settings = make_settings(
        tmp_path,
        database_url,
        deleted_username_hold_days=HOLD_DAYS,
        login_attempts_per_account_from_address=4,
    )
    async with (
        LiveServer(settings, clock) as live_server,
        httpx.AsyncClient(base_url=live_server.url) as client,
    ):
        yield World(live_server, Api(client), clock)


async def user_id(peek: DbPeek, username: str) -> int:
    (row,) = await peek.rows("SELECT id FROM users WHERE username = :u", u=username)
    return int(row[0])


async def test_a_wrong_password_deletes_nothing_and_guessing_is_throttled(world: World) -> None:
    api = world.api
    alice = await api.register("alice")
    assert (await api.call("DELETE", "/api/v1/me", json={"password": PASSWORD})).status_code == 401
    for body in ({}, {"password": 5}, {"password": PASSWORD, "extra": 1}):
        resp = await api.call("DELETE", "/api/v1/me", alice, json=body)
        assert resp.status_code == 422, (body, resp.text)

    for _ in range(3):
        wrong = await world.delete(alice, "not my password")
        assert (wrong.status_code, wrong.json()["error"]) == (403, "wrong_password")
    # Counted with the sign-ins: the fixture allows 4 tries per account and address.
    assert (await world.login("alice")).status_code == 201
    limited = await world.delete(alice, "not my password")
    assert (limited.status_code, limited.json()["error"]) == (429, "too_many_attempts")
    assert int(limited.headers["Retry-After"]) > 0
    me = await api.call("GET", "/api/v1/me", alice)
    assert (me.status_code, me.json()["user"]["display_name"]) == (200, "alice")


async def test_deleting_signs_out_everywhere_and_removes_what_the_account_had(
    world: World, db_peek: DbPeek
) -> None:
    api, live = world.api, world.live
    laptop = await api.register("alice")
    phone = (await world.login("alice")).json()["token"]
    bob, carol = await api.register("bob"), await api.register("carol")
    await api.register("dave")
    erin = await api.register("erin")
    alice_id = await user_id(db_peek, "alice")
    for token, path in (
        (laptop, "following/bob"),
        (carol, "following/alice"),
        (laptop, "blocked/dave"),
        (erin, "blocked/alice"),
    ):
        assert (await api.call("PUT", f"/api/v1/me/{path}", token)).status_code == 204
    resp = await api.call("PATCH", "/api/v1/me/settings", laptop, json={"read_receipts": False})
    assert resp.status_code == 200
    assert (await api.send(laptop, "bob", "hello bob")).status_code == 201
    assert (await api.send(bob, "alice", "hi alice")).status_code == 201
    # Sent to erin, who blocked alice: withheld, alice's alone; it goes with her.
    assert (await api.send(laptop, "erin", "you never see this")).status_code == 201
    up_to = (await world.history(laptop, "bob"))[-1]["id"]
    resp = await api.call("POST", "/api/v1/conversations/bob/read", laptop, json={"up_to": up_to})
    assert resp.status_code == 204
    laptop_ws = await open_socket(live.ws_url, laptop)
    phone_ws = await open_socket(live.ws_url, phone)
    bob_ws = await open_socket(live.ws_url, bob)
    carol_ws = await open_socket(live.ws_url, carol)

    resp = await world.delete(laptop)
    assert resp.status_code == 204, resp.text

    # Every session ends at once: both sockets close as a revoked session's do.
    assert await close_code(laptop_ws.ws) == 4401
    assert await close_code(phone_ws.ws) == 4401
    for token in (laptop, phone):
        assert (await api.call("GET", "/api/v1/me", token)).status_code == 401
    # Bob, who talked with her, is told at once; carol, who only followed, is not.
    event = await bob_ws.recv_type("user.updated")
    assert event["user"] == {
        "id": alice_id,
        "username": "alice",
        "display_name": "Deleted account",
        "verified": False,
        "deleted": True,  # under the name bob knows her by, so his screens can change
    }
    await carol_ws.nothing_within(0.3)

    (row,) = await db_peek.rows(
        "SELECT username, display_name, password_hash, suspended, deleted_at "
        "FROM users WHERE id = :id",
        id=alice_id,
    )
    username, display_name, password_hash, suspended, deleted_at = row
    assert re.fullmatch(r"deleted_account_[0-9a-f]{10}", username)
    assert (display_name, password_hash, bool(suspended)) == ("Deleted account", "", True)
    assert deleted_at is not None
    for sql in (
        "SELECT count(*) FROM sessions WHERE user_id = :id",
        "SELECT count(*) FROM user_settings WHERE user_id = :id",
        "SELECT count(*) FROM follows WHERE follower_id = :id OR followee_id = :id",
        "SELECT count(*) FROM blocks WHERE blocker_id = :id OR blocked_id = :id",
        "SELECT count(*) FROM events WHERE user_id = :id",
        "SELECT count(*) FROM conversation_members WHERE user_id = :id",
        "SELECT count(*) FROM messages WHERE sender_id = :id AND withheld",
    ):
        assert (await db_peek.rows(sql, id=alice_id))[0][0] == 0, sql
    # What is left: the messages she exchanged with bob, and her old username's hold.
    sent = await db_peek.rows("SELECT text FROM messages WHERE sender_id = :id", id=alice_id)
    assert [tuple(row) for row in sent] == [("hello bob",)]
    holds = await db_peek.rows("SELECT username FROM username_holds")
    assert [tuple(row) for row in holds] == [("alice",)]
    dump = await db_peek.dump()
    assert "you never see this" not in dump
    for socket in (bob_ws, carol_ws):
        await socket.close()


async def test_old_messages_stay_with_their_recipients_from_deleted_account(
    world: World,
) -> None:
    api = world.api
    alice, bob = await api.register("alice"), await api.register("bob")
    carol = await api.register("carol")
    for n in range(3):
        assert (await api.send(alice, "bob", f"from alice {n}")).status_code == 201
        assert (await api.send(bob, "alice", f"from bob {n}")).status_code == 201
    assert (await api.send(carol, "bob", "carol here")).status_code == 201
    assert (await world.delete(alice)).status_code == 204

    listed = await world.conversations(bob)
    gone = next(c for c in listed if c["user"]["display_name"] == "Deleted account")
    tombstone = gone["user"]["username"]
    assert tombstone.startswith("deleted_")
    assert gone["user"]["verified"] is False
    assert gone["last_message"]["text"] == "from bob 2"
    assert gone["last_message"]["sender"] == "bob"
    assert gone["unread"] == 3
    assert {c["user"]["username"] for c in listed} == {tombstone, "carol"}

    thread = await world.history(bob, tombstone)
    assert [m["text"] for m in thread] == [
        f"from {who} {n}" for n in range(3) for who in ("alice", "bob")
    ]
    assert {m["sender"] for m in thread if m["text"].startswith("from alice")} == {tombstone}
    # Bob can still mark it read (nobody is told) and accept or decline it.
    resp = await api.call(
        "POST", f"/api/v1/conversations/{tombstone}/read", bob, json={"up_to": thread[-1]["id"]}
    )
    assert resp.status_code == 204
    read = next(c for c in await world.conversations(bob) if c["user"]["username"] == tombstone)
    assert read["unread"] == 0
    resp = await api.call("POST", f"/api/v1/conversations/{tombstone}/decline", bob)
    assert resp.status_code == 200
    assert resp.json()["conversation"]["user"]["display_name"] == "Deleted account"

    # The old username names nobody: no conversation, no messages.
    resp = await api.call("GET", "/api/v1/conversations/alice/messages", bob)
    assert (resp.status_code, resp.json()["error"]) == (404, "user_not_found")

    # Bob's export holds the conversation with every message.
    export = await api.call("GET", "/api/v1/me/export", bob)
    assert export.status_code == 200, export.text
    data = export.json()
    kept = next(c for c in data["conversations"] if c["with"] == tombstone)
    assert len(kept["messages"]) == 6
    assert "correct horse" not in export.text


async def test_a_deleted_account_is_like_a_name_nobody_has(world: World) -> None:
    api = world.api
    alice, bob = await api.register("alice"), await api.register("bob")
    assert (await api.call("PUT", "/api/v1/me/following/bob", alice)).status_code == 204
    assert (await api.call("PUT", "/api/v1/me/following/alice", bob)).status_code == 204
    assert (await api.send(alice, "bob", "bye")).status_code == 201
    assert (await world.delete(alice)).status_code == 204
    tombstone = (await world.conversations(bob))[0]["user"]["username"]

    # Signing in: exactly what a wrong password, or a name nobody has, gets.
    for name in ("alice", tombstone, "nobody_here"):
        resp = await world.login(name)
        assert resp.status_code == 401
        assert resp.json()["error"] == "invalid_credentials"
    wrong = await world.login("bob", "not bob's password")
    assert (await world.login("alice")).json() == wrong.json()

    def same(resp: httpx.Response, nobody: httpx.Response) -> None:
        assert (resp.status_code, resp.json()["error"]) == (
            nobody.status_code,
            nobody.json()["error"],
        ), resp.text

    for name in ("alice", tombstone):
        for method, path, body in (
            ("GET", "/api/v1/users/{}", None),
            ("POST", "/api/v1/conversations/{}/messages", {"text": "are you there?"}),
            ("PUT", "/api/v1/me/following/{}", None),
            ("DELETE", "/api/v1/me/following/{}", None),
            ("PUT", "/api/v1/me/blocked/{}", None),
            ("POST", "/api/v1/reports", {"username": "{}"}),
            ("POST", "/api/v1/calls", {"to": "{}", "media": "audio"}),
        ):

            def fill(value: Any, who: str) -> Any:
                if isinstance(value, dict):
                    return {k: fill(v, who) for k, v in value.items()}
                return value.format(who) if isinstance(value, str) else value

            nobody = await api.call(method, path.format("nobody"), bob, json=fill(body, "nobody"))
            resp = await api.call(method, path.format(name), bob, json=fill(body, name))
            same(resp, nobody)
            if path == "/api/v1/calls":
                assert (resp.status_code, resp.json()["error"]) == (403, "call_not_allowed")
            else:
                assert (resp.status_code, resp.json()["error"]) == (404, "user_not_found")
    following = await api.call("GET", "/api/v1/me/following", bob)
    assert following.json()["users"] == []
    assert (await api.call("GET", "/api/v1/me/followers", bob)).json()["users"] == []


async def test_the_username_is_held_then_free_for_someone_who_inherits_nothing(
    world: World,
) -> None:
    api = world.api
    alice, bob = await api.register("alice"), await api.register("bob")
    assert (await api.call("PUT", "/api/v1/me/following/alice", bob)).status_code == 204
    assert (await api.call("PUT", "/api/v1/me/following/bob", alice)).status_code == 204
    assert (await api.send(bob, "alice", "secret for alice")).status_code == 201
    assert (await world.delete(alice)).status_code == 204

    async def sign_up(username: str) -> httpx.Response:
        return await api.client.post(
            "/api/v1/accounts", json={"username": username, "password": PASSWORD}
        )

    taken = await sign_up("bob")
    assert taken.status_code == 409
    for name in ("alice", "deleted_0123456789ab", "deleted_mine"):
        held = await sign_up(name)
        assert (held.status_code, held.json()) == (409, taken.json()), name

    world.clock.advance(HOLD_DAYS * DAY - 60)
    assert (await sign_up("alice")).status_code == 409
    world.clock.advance(120)
    fresh = await sign_up("alice")
    assert fresh.status_code == 201, fresh.text
    new_alice = fresh.json()["token"]
    assert fresh.json()["user"]["display_name"] == "alice"

    # Nothing of the old account: no conversations, follows or messages.
    assert await world.conversations(new_alice) == []
    assert await world.history(new_alice, "bob") == []
    for path in ("following", "followers", "blocked"):
        resp = await api.call("GET", f"/api/v1/me/{path}", new_alice)
        assert resp.json()["users"] == [], path
    export = (await api.call("GET", "/api/v1/me/export", new_alice)).json()
    assert export["conversations"] == []
    # Bob still has the old conversation, with the deleted account; the new alice is
    # someone else, in a conversation of her own once one of them writes.
    assert [c["user"]["display_name"] for c in await world.conversations(bob)] == [
        "Deleted account"
    ]
    assert await world.history(bob, "alice") == []
    assert (await api.send(new_alice, "bob", "hi, I'm new")).status_code == 201
    assert [m["text"] for m in await world.history(bob, "alice")] == ["hi, I'm new"]
    names = {c["user"]["display_name"] for c in await world.conversations(bob)}
    assert names == {"Deleted account", "alice"}
    # The new alice can be deleted in her turn, and her name held again.
    assert (await world.delete(new_alice)).status_code == 204
    assert (await sign_up("alice")).status_code == 409


async def test_an_account_that_never_talked_with_anyone_is_deleted_too(world: World) -> None:
    api = world.api
    loner = await api.register("loner")
    assert (await world.delete(loner)).status_code == 204
    assert (await api.call("GET", "/api/v1/me", loner)).status_code == 401
    assert (await world.login("loner")).status_code == 401
