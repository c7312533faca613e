"""Every error is JSON {"error","detail"} with a 4xx status; bad input never gives a 500,
and neither does a busy database (503 with Retry-After)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ringfence.wire.problems import plain_problem
from tests.conftest import Api
from tests.unit.api.test_accounts import assert_error
from tests.unit.storage.test_contention import app_with

BODY_ENDPOINTS = [
    ("POST", "/api/v1/accounts", False, ["username", "password", "display_name"]),
    ("POST", "/api/v1/sessions", False, ["username", "password"]),
    (
        "PATCH",
        "/api/v1/me/settings",
        True,
        ["calls_enabled", "call_audience", "direct_connections"],
    ),
    ("POST", "/api/v1/conversations/bob/messages", True, ["text", "txn_id"]),
]

ALL_ENDPOINTS = [
    *[(method, path, authed) for method, path, authed, _ in BODY_ENDPOINTS],
    ("DELETE", "/api/v1/sessions/current", True),
    ("GET", "/api/v1/users/bob", True),
    ("GET", "/api/v1/me", True),
    ("PUT", "/api/v1/me/following/bob", True),
    ("DELETE", "/api/v1/me/following/bob", True),
    ("PUT", "/api/v1/me/blocked/bob", True),
    ("DELETE", "/api/v1/me/blocked/bob", True),
    ("GET", "/api/v1/conversations", True),
    ("GET", "/api/v1/conversations/bob/messages", True),
    ("POST", "/api/v1/conversations/bob/accept", True),
]

RAW_BODIES: list[bytes] = [
    b"",
    b"{",
    b"not json",
    b"null",
    b"[]",
    b'"text"',
    b"12",
    b"\xff\xfe\x00garbage",
    b'{"text": "\\ud800"}',
    b'{"username": "\\udfff", "password": "\\ud800\\ud800\\ud800\\ud800\\ud800"}',
    b'{"text": 1e999}',
    b'{"text": "hi", "text": "again"}',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    json.dumps({"username": "a" * 100_000, "password": "b" * 100_000}).encode(),
    json.dumps({"username": "a\x00", "password": "correct horse 1"}).encode(),
    json.dumps({"text": "a\x00"}).encode(),
    json.dumps({"text": "hi", "txn_id": "\x00"}).encode(),
]


async def test_unknown_routes_are_json_404s(api: Api) -> None:
    for path in ("/nope", "/api/v1/nope", "/api/v2/me", "/api/v1/users/"):
        body = assert_error(await api.call("GET", path), 404)
        assert body["error"] == "not_found"


async def test_a_wrong_method_is_a_json_405(api: Api) -> None:
    for method, path, allowed in (
        ("DELETE", "/api/v1/accounts", "POST"),
        ("GET", "/api/v1/sessions", "POST"),
        ("POST", "/api/v1/me", "GET"),
    ):
        resp = await api.call(method, path)
        body = assert_error(resp, 405)
        assert body["error"] == "method_not_allowed"
        # The API's own answer, not the browser client's static files.
        assert resp.headers["allow"] == allowed


async def test_invalid_json_names_the_body(api: Api) -> None:
    resp = await api.call(
        "POST",
        "/api/v1/accounts",
        content=b'{"username": "alice",',
        headers={"content-type": "application/json"},
    )
    body = assert_error(resp, 422)
    assert body["error"] == "invalid_request"
    assert body["detail"] == "body: request body is not valid JSON"
    assert body["fields"] == ["body"]


async def test_validation_errors_name_each_bad_field(api: Api) -> None:
    resp = await api.call("POST", "/api/v1/accounts", json={"username": 5, "extra": 1})
    body = assert_error(resp, 422)
    assert set(body["fields"]) == {"username", "password", "extra"}
    for field in ("username", "password", "extra"):
        assert field in body["detail"]


@pytest.mark.parametrize(("method", "path", "authed"), ALL_ENDPOINTS)
async def test_raw_garbage_bodies_never_cause_a_server_error(
    api: Api, method: str, path: str, authed: bool
) -> None:
    token = await api.register("alice")
    await api.register("bob")
    for raw in RAW_BODIES:
        for content_type in ("application/json", "text/plain", None):
            headers = {"content-type": content_type} if content_type else {}
            resp = await api.call(
                method, path, token if authed else None, content=raw, headers=headers
            )
            assert resp.status_code < 500, (raw[:60], content_type, resp.text)
            if resp.status_code >= 400:
                assert_error(resp)


FIELDS = [
    "username",
    "password",
    "display_name",
    "text",
    "txn_id",
    "calls_enabled",
    "call_audience",
    "direct_connections",
]
NASTY_STRINGS = [
    "",
    " ",
    "alice",
    "bob",
    "correct horse 1",
    "\x00",
    "a\x00b",
    "\u202e",
    "\ufeff",
    "\U0001d552lice",
    "x" * 10_001,
    "everyone",
    "following",
    "verified",
    "nobody",
    "../../etc/passwd",
    "'; DROP TABLE users; --",
    "%00",
    "\\u0000",
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30])
    if choice == 3:
        return rng.choice([0.5, -0.0, 1e308])
    if choice in (4, 5):
        return rng.choice(NASTY_STRINGS)
    if choice in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {
        rng.choice([*FIELDS, "", "\x00"]): random_value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def random_body(rng: random.Random, fields: list[str]) -> Any:
    """Mostly the endpoint's own fields (so that bodies get past the schema), sometimes
    any field, sometimes not an object at all."""
    if rng.random() < 0.1:
        return random_value(rng)
    pool = fields if rng.random() < 0.8 else FIELDS
    keys = rng.sample(pool, rng.randrange(1, len(pool) + 1))
    return {key: random_value(rng) for key in keys}


@pytest.mark.parametrize(("method", "path", "authed", "fields"), BODY_ENDPOINTS)
async def test_random_json_bodies_never_cause_a_server_error(
    api: Api, method: str, path: str, authed: bool, fields: list[str]
) -> None:
    token = await api.register("alice")
    await api.register("bob")
    rng = random.Random(f"{method} {path}")  # the same bodies every run
    for _ in range(150):
        body = random_body(rng, fields)
        resp = await api.call(method, path, token if authed else None, json=body)
        assert resp.status_code < 500, (body, resp.text)
        if resp.status_code >= 400:
            assert_error(resp)


async def test_a_busy_database_is_a_json_503_with_retry_after_on_any_endpoint(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a 500: the client is told to come back, and nothing was half-written."""
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout_s": 0.1}
    async with app_with(tmp_path, database_url, monkeypatch, **options) as (api, db):
        token = await api.register("alice")
        await api.register("bob")
        async with db.engine.connect() as held:  # the pool's only connection
            await held.execute(text("SELECT 1"))
            for method, path, body in [
                ("GET", "/api/v1/me", None),
                ("GET", "/api/v1/conversations", None),
                ("PUT", "/api/v1/me/following/bob", None),
                ("POST", "/api/v1/conversations/bob/messages", {"text": "hi"}),
            ]:
                resp = await api.call(method, path, token, json=body)
                assert resp.status_code == 503, (path, resp.text)
                assert resp.json()["error"] == "database_busy"
                assert isinstance(resp.json()["detail"], str)
                assert resp.headers["retry-after"] == "1"
        assert (await api.call("GET", "/api/v1/me", token)).status_code == 200


# --- validation errors in plain words (issue 12, §4.7) -------------------------------


@pytest.mark.parametrize(
    ("err", "name", "words"),
    [
        (
            {"type": "string_too_short", "ctx": {"min_length": 10}},
            "password",
            "use at least 10 characters",
        ),
        ({"type": "string_too_short", "ctx": {"min_length": 1}}, "text", "must not be empty"),
        (
            {"type": "string_too_long", "ctx": {"max_length": 10_000}},
            "text",
            "use at most 10,000 characters",
        ),
        (
            {"type": "too_long", "ctx": {"field_type": "Value", "max_length": 64}},
            "display_name",
            "use at most 64 characters",
        ),
        (
            {"type": "too_long", "ctx": {"field_type": "List", "max_length": 3}},
            "call_audience",
            "can have at most 3 items",
        ),
        (
            {"type": "too_short", "ctx": {"field_type": "List", "min_length": 2}},
            "x",
            "needs at least 2 items",
        ),
        ({"type": "missing"}, "password", "required"),
        ({"type": "missing"}, "body", "a JSON object is required"),
        ({"type": "extra_forbidden"}, "admin", "unknown field"),
        (
            {"type": "string_pattern_mismatch", "ctx": {"pattern": "^[a-z0-9_]{3,32}$"}},
            "username",
            "use 3 to 32 lowercase letters, digits or _",
        ),
        (
            {"type": "string_pattern_mismatch", "ctx": {"pattern": "^[^\\x00]*$"}},
            "new_password",
            "must not contain NUL characters",
        ),
        (
            {"type": "string_pattern_mismatch", "ctx": {"pattern": "^[A-Za-z0-9._~-]{1,64}$"}},
            "txn_id",
            "use 1 to 64 letters, digits or . _ ~ -",
        ),
        (
            {"type": "string_pattern_mismatch", "ctx": {"pattern": "^[a-f]+$"}},
            "call_id",
            "contains characters that aren't allowed here",
        ),
        (
            {"type": "literal_error", "ctx": {"expected": "'nobody', 'following' or 'everyone'"}},
            "direct_connections",
            "must be one of 'nobody', 'following' or 'everyone'",
        ),
        ({"type": "greater_than_equal", "ctx": {"ge": 1}}, "limit", "must be at least 1"),
        ({"type": "less_than_equal", "ctx": {"le": 100}}, "limit", "must be at most 100"),
        ({"type": "less_than_equal", "ctx": {"le": 2**62}}, "before", "is too large"),
        ({"type": "int_parsing"}, "limit", "must be a whole number"),
        ({"type": "int_type"}, "up_to", "must be a whole number"),
        ({"type": "bool_type"}, "calls_enabled", "must be true or false"),
        ({"type": "string_type"}, "username", "must be text"),
        ({"type": "model_type"}, "body", "must be a JSON object"),
        ({"type": "json_invalid"}, "body", "request body is not valid JSON"),
        ({"type": "value_error", "msg": "Value error, must not be null"}, "x", "must not be null"),
        (
            {"type": "display_name", "msg": "U+202E (right-to-left override) changes it"},
            "display_name",
            "U+202E (right-to-left override) changes it",
        ),
        ({"type": "something_new", "msg": "Input should be shiny"}, "x", "input should be shiny"),
    ],
)
def test_each_kind_of_validation_error_is_said_in_plain_words(
    err: dict[str, Any], name: str, words: str
) -> None:
    assert plain_problem(err, name) == words


def test_no_programmer_wording_is_left_for_any_known_kind() -> None:
    for kind in ("string_too_short", "string_too_long", "string_type", "missing", "int_type"):
        text = plain_problem({"type": kind, "msg": "String should X", "ctx": {"min_length": 3}})
        assert "should" not in text
        assert "String" not in text


API_CASES: list[tuple[str, str, Any, str, str]] = [
    # (method, path, json body or query, field, plain words)
    (
        "POST",
        "/api/v1/accounts",
        {"username": "alice", "password": "short"},
        "password",
        "use at least 10 characters",
    ),
    (
        "POST",
        "/api/v1/accounts",
        {"username": "Al ice", "password": "correct horse 1"},
        "username",
        "use 3 to 32 lowercase letters, digits or _",
    ),
    (
        "POST",
        "/api/v1/accounts",
        {"username": "alice", "password": "correct horse 1", "display_name": "x" * 65},
        "display_name",
        "use at most 64 characters",
    ),
    ("POST", "/api/v1/accounts", {"username": "alice"}, "password", "required"),
    (
        "POST",
        "/api/v1/accounts",
        {"username": "alice", "password": "correct horse 1", "admin": 1},
        "admin",
        "unknown field",
    ),
    (
        "POST",
        "/api/v1/accounts",
        {"username": 5, "password": "correct horse 1"},
        "username",
        "must be text",
    ),
    (
        "POST",
        "/api/v1/conversations/bob/messages",
        {"text": "x" * 10_001},
        "text",
        "use at most 10,000 characters",
    ),
    (
        "POST",
        "/api/v1/conversations/bob/messages",
        {"text": "hi", "txn_id": "a b"},
        "txn_id",
        "use 1 to 64 letters, digits or . _ ~ -",
    ),
    (
        "PATCH",
        "/api/v1/me/settings",
        {"direct_connections": "all"},
        "direct_connections",
        "must be one of 'nobody', 'following' or 'everyone'",
    ),
    (
        "PATCH",
        "/api/v1/me/settings",
        {"calls_enabled": "yes"},
        "calls_enabled",
        "must be true or false",
    ),
    ("PATCH", "/api/v1/me/settings", {"read_receipts": None}, "read_receipts", "must not be null"),
    (
        "PATCH",
        "/api/v1/me/settings",
        {"call_audience": ["everyone"] * 4},
        "call_audience",
        "can have at most 3 items",
    ),
    (
        "POST",
        "/api/v1/me/password",
        {"current_password": "correct horse 1", "new_password": "x"},
        "new_password",
        "use at least 10 characters",
    ),
    ("POST", "/api/v1/conversations/bob/read", {"up_to": 0}, "up_to", "must be at least 1"),
    ("POST", "/api/v1/conversations/bob/read", {"up_to": 1.5}, "up_to", "must be a whole number"),
    ("GET", "/api/v1/conversations/bob/messages", {"limit": 101}, "limit", "must be at most 100"),
    (
        "GET",
        "/api/v1/conversations/bob/messages",
        {"limit": "ten"},
        "limit",
        "must be a whole number",
    ),
    ("GET", "/api/v1/conversations/bob/messages", {"before": 2**63}, "before", "is too large"),
]


@pytest.mark.parametrize(("method", "path", "payload", "field", "words"), API_CASES)
async def test_the_api_answers_each_kind_in_plain_words(
    api: Api, method: str, path: str, payload: Any, field: str, words: str
) -> None:
    token = await api.register("alice")
    await api.register("bob")
    if method == "GET":
        resp = await api.call(method, path, token, params=payload)
    else:
        resp = await api.call(method, path, token, json=payload)
    body = assert_error(resp, 422)
    assert body["error"] == "invalid_request"
    assert body["detail"] == f"{field}: {words}"
    assert body["fields"] == [field]


async def test_several_problems_are_each_named(api: Api) -> None:
    resp = await api.call("POST", "/api/v1/accounts", json={"username": "A", "password": "x"})
    body = assert_error(resp, 422)
    assert body["detail"] == (
        "username: use 3 to 32 lowercase letters, digits or _; password: use at least 10 characters"
    )


async def test_a_refused_password_is_never_echoed(api: Api) -> None:
    resp = await api.call(
        "POST", "/api/v1/accounts", json={"username": "alice", "password": "hunter2"}
    )
    assert "hunter2" not in resp.text
