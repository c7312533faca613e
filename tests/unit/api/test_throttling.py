"""Logins are throttled per account and per client address; registrations per address.

The live server trusts X-Forwarded-For from 127.0.0.1 (its default trusted proxy), so
a test can act as clients at different addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Api, LiveServer, make_settings

PASSWORD = "correct horse 1"


def limited(tmp_path: Path, database_url: str, **limits: Any) -> LiveServer:
    return LiveServer(make_settings(tmp_path, database_url, **limits))


async def login(client: httpx.AsyncClient, user: str, password: str, addr: str) -> int:
    resp = await client.post(
        "/api/v1/sessions",
        json={"username": user, "password": password},
        headers={"X-Forwarded-For": addr},
    )
    if resp.status_code == 429:
        assert resp.json()["error"] == "too_many_attempts"
        assert int(resp.headers["Retry-After"]) >= 1
    return resp.status_code


async def test_logins_from_one_address_are_throttled(tmp_path: Path, database_url: str) -> None:
    async with (
        limited(tmp_path, database_url, login_attempts_per_address=3) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await Api(client).register("alice")
        await Api(client).register("bob")
        attacker = "198.51.100.7"
        results = [
            await login(client, u, "guess-guess-1", attacker) for u in ("alice", "bob", "alice")
        ]
        assert results == [401, 401, 401]
        assert await login(client, "bob", PASSWORD, attacker) == 429
        # Someone else, elsewhere, is not affected.
        assert await login(client, "bob", PASSWORD, "203.0.113.20") == 201


async def test_guessing_one_account_from_many_addresses_is_throttled(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        limited(tmp_path, database_url, login_attempts_per_account=3) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await Api(client).register("alice")
        for i in range(3):
            assert await login(client, "alice", "guess-guess-1", f"198.51.100.{i + 1}") == 401
        assert await login(client, "alice", PASSWORD, "198.51.100.99") == 429
        # Another account is unaffected.
        await Api(client).register("bob")
        assert await login(client, "bob", PASSWORD, "198.51.100.99") == 201


async def test_registrations_per_address_are_throttled(tmp_path: Path, database_url: str) -> None:
    async with (
        limited(tmp_path, database_url, registrations_per_address=2) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):

        async def register(name: str, addr: str) -> int:
            resp = await client.post(
                "/api/v1/accounts",
                json={"username": name, "password": PASSWORD},
                headers={"X-Forwarded-For": addr},
            )
            return resp.status_code

        assert [await register(n, "198.51.100.7") for n in ("aa1", "aa2", "aa3")] == [201, 201, 429]
        assert await register("bb1", "203.0.113.20") == 201
