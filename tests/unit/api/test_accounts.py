"""Accounts and sessions over HTTP: registration, login, logout, bearer tokens."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from argon2 import Type, extract_parameters

from tests.conftest import Api, DbPeek

PASSWORD = "correct horse 1"
USER_KEYS = {"id", "username", "display_name", "verified", "deleted"}


def assert_error(resp: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A client error: 4xx (or exactly ``status``) with a JSON {"error","detail"} body."""
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    if status is not None:
        assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert isinstance(body["error"], str)
    assert isinstance(body["detail"], str)
    return body


async def register(api: Api, **body: Any) -> httpx.Response:
    return await api.call("POST", "/api/v1/accounts", json=body)


async def login(api: Api, username: str, password: str = PASSWORD) -> httpx.Response:
    return await api.call(
        "POST", "/api/v1/sessions", json={"username": username, "password": password}
    )


async def test_register_returns_the_user_and_a_token(api: Api) -> None:
    resp = await register(api, username="alice", password=PASSWORD)
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"user", "token"}
    assert set(body["user"]) == USER_KEYS
    assert body["user"]["username"] == "alice"
    assert body["user"]["display_name"] == "alice"
    assert body["user"]["verified"] is False
    me = await api.call("GET", "/api/v1/me", body["token"])
    assert me.status_code == 200
    assert me.json()["user"] == body["user"]


async def test_register_with_a_display_name(api: Api) -> None:
    resp = await register(api, username="alice", password=PASSWORD, display_name="  Alice A. ")
    assert resp.status_code == 201
    assert resp.json()["user"]["display_name"] == "Alice A."


async def test_username_is_taken_once(api: Api) -> None:
    await api.register("alice")
    body = assert_error(await register(api, username="alice", password="another pass 2"), 409)
    assert body["error"] == "username_taken"


@pytest.mark.parametrize(
    "username",
    [
        "ab",
        "a" * 33,
        "Alice",
        "al ice",
        "al-ice",
        "al.ice",
        "élan",
        "alice\n",
        "",
        "\uff41lice",
        "\u0661\u0662\u0663",
    ],
)
async def test_bad_usernames_are_refused(api: Api, username: str) -> None:
    body = assert_error(await register(api, username=username, password=PASSWORD))
    assert "username" in body["detail"]


@pytest.mark.parametrize("username", ["abc", "a" * 32, "user_09", "___"])
async def test_usernames_at_the_limits_are_accepted(api: Api, username: str) -> None:
    assert (await register(api, username=username, password=PASSWORD)).status_code == 201


@pytest.mark.parametrize("password", ["", "123456789", "x" * 1025])
async def test_bad_passwords_are_refused(api: Api, password: str) -> None:
    body = assert_error(await register(api, username="alice", password=password))
    assert "password" in body["detail"]


async def test_a_ten_character_password_is_enough(api: Api) -> None:
    assert (await register(api, username="alice", password="0123456789")).status_code == 201


@pytest.mark.parametrize("display_name", ["", "   ", "x" * 65, "x" * 201, "nul\x00", "tab\there"])
async def test_bad_display_names_are_refused(api: Api, display_name: str) -> None:
    body = assert_error(
        await register(api, username="alice", password=PASSWORD, display_name=display_name)
    )
    assert "display_name" in body["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice"},
        {"password": PASSWORD},
        {"username": 12345, "password": PASSWORD},
        {"username": "alice", "password": 1234567890},
        {"username": None, "password": PASSWORD},
        {"username": "alice", "password": PASSWORD, "admin": True},
        {"username": ["alice"], "password": PASSWORD},
    ],
)
async def test_malformed_registration_bodies_are_refused(api: Api, body: dict[str, Any]) -> None:
    assert_error(await api.call("POST", "/api/v1/accounts", json=body))


async def test_login_returns_a_new_token(api: Api) -> None:
    first = await api.register("alice")
    resp = await login(api, "alice")
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"user", "token"}
    assert body["user"]["username"] == "alice"
    assert body["token"] != first


async def test_unknown_user_and_wrong_password_get_the_same_answer(api: Api) -> None:
    await api.register("alice")
    wrong_password = await login(api, "alice", "not the password")
    assert_error(wrong_password, 401)
    assert wrong_password.json() == {
        "error": "invalid_credentials",
        "detail": "wrong username or password",
    }
    for unknown in ("mallory", "alicf", "alice_", "a" * 32):
        other = await login(api, unknown, PASSWORD)
        assert other.status_code == wrong_password.status_code
        assert other.json() == wrong_password.json()
    # A name no account can have may be refused as malformed, but never crashes.
    for malformed in ("Not A Username\x00", "ALICE", "", "x" * 64):
        assert_error(await login(api, malformed, PASSWORD))


async def test_tokens_are_random_and_long(api: Api) -> None:
    tokens = [await api.register("alice")]
    tokens += [(await login(api, "alice")).json()["token"] for _ in range(3)]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert token.startswith("rf_")
        assert len(token) >= 3 + 43  # 256 bits, base64url


async def test_the_database_holds_only_token_hashes(api: Api, db_peek: DbPeek) -> None:
    tokens = [await api.register("alice"), (await login(api, "alice")).json()["token"]]
    stored = {row[0] for row in await db_peek.rows("SELECT token_hash FROM sessions")}
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    dump = await db_peek.dump()
    for token in tokens:
        assert token not in dump
        assert token[3:] not in dump
    assert PASSWORD not in dump


async def test_the_stored_password_hash_is_argon2id_with_owasp_parameters(
    api: Api, db_peek: DbPeek
) -> None:
    await api.register("alice")
    [(stored,)] = await db_peek.rows("SELECT password_hash FROM users")
    params = extract_parameters(stored)
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism == 1


async def test_several_devices_stay_logged_in_and_log_out_separately(api: Api) -> None:
    phone = await api.register("alice")
    laptop = (await login(api, "alice")).json()["token"]
    tablet = (await login(api, "alice")).json()["token"]
    for token in (phone, laptop, tablet):
        assert (await api.call("GET", "/api/v1/me", token)).status_code == 200
    resp = await api.call("DELETE", "/api/v1/sessions/current", laptop)
    assert resp.status_code == 204
    assert resp.content == b""
    assert_error(await api.call("GET", "/api/v1/me", laptop), 401)
    assert_error(await api.call("DELETE", "/api/v1/sessions/current", laptop), 401)
    for token in (phone, tablet):
        assert (await api.call("GET", "/api/v1/me", token)).status_code == 200


async def test_logging_in_again_after_logout_works(api: Api) -> None:
    token = await api.register("alice")
    await api.call("DELETE", "/api/v1/sessions/current", token)
    fresh = (await login(api, "alice")).json()["token"]
    assert (await api.call("GET", "/api/v1/me", fresh)).status_code == 200


async def test_user_profile(api: Api) -> None:
    alice = await api.register("alice")
    bob_id = (await register(api, username="bob", password=PASSWORD, display_name="Bob")).json()[
        "user"
    ]["id"]
    resp = await api.call("GET", "/api/v1/users/bob", alice)
    assert resp.status_code == 200
    assert resp.json() == {
        "user": {
            "id": bob_id,
            "username": "bob",
            "display_name": "Bob",
            "verified": False,
            "deleted": False,
        }
    }
    assert_error(await api.call("GET", "/api/v1/users/nobody", alice), 404)
    assert_error(await api.call("GET", "/api/v1/users/Bob", alice), 404)
    assert_error(await api.call("GET", "/api/v1/users/bob"), 401)


AUTHENTICATED = [
    ("DELETE", "/api/v1/sessions/current", None),
    ("GET", "/api/v1/users/alice", None),
    ("GET", "/api/v1/me", None),
    ("PATCH", "/api/v1/me/settings", {"calls_enabled": False}),
    ("GET", "/api/v1/me/following", None),
    ("PUT", "/api/v1/me/following/alice", None),
    ("DELETE", "/api/v1/me/following/alice", None),
    ("GET", "/api/v1/me/blocked", None),
    ("PUT", "/api/v1/me/blocked/alice", None),
    ("DELETE", "/api/v1/me/blocked/alice", None),
    ("GET", "/api/v1/conversations", None),
    ("POST", "/api/v1/conversations/alice/messages", {"text": "hi"}),
    ("GET", "/api/v1/conversations/alice/messages", None),
    ("POST", "/api/v1/conversations/alice/accept", None),
]


BAD_AUTHORIZATION = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer rf_not-a-real-token",
    "Basic YWxpY2U6cGFzc3dvcmQ=",
    "bearer-ish rf_x",
    "Bearer " + "rf_" + "x" * 5000,
]


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED)
async def test_every_other_endpoint_needs_a_valid_bearer_token(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for authorization in BAD_AUTHORIZATION:
        headers = {} if authorization is None else {"Authorization": authorization}
        resp = await api.call(method, path, json=body, headers=headers)
        assert_error(resp, 401)


async def test_healthz(api: Api) -> None:
    resp = await api.call("GET", "/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
