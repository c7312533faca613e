"""Every error is JSON {"error","detail"} with a 4xx status; bad input never gives a 500,
and neither does a busy database (503 with Retry-After)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

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
