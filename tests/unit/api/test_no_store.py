"""Responses that carry a session token are never stored by a browser or a proxy."""

from __future__ import annotations

from tests.conftest import Api

PASSWORD = "correct horse 1"


async def test_sign_up_and_login_answers_are_not_stored(api: Api) -> None:
    signed_up = await api.call(
        "POST", "/api/v1/accounts", json={"username": "alice", "password": PASSWORD}
    )
    logged_in = await api.call(
        "POST", "/api/v1/sessions", json={"username": "alice", "password": PASSWORD}
    )
    for resp in (signed_up, logged_in):
        assert resp.status_code == 201
        assert "token" in resp.json()
        assert resp.headers["cache-control"] == "no-store"
        assert resp.headers["pragma"] == "no-cache"  # HTTP/1.0 caches
