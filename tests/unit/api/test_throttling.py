"""Logins are throttled per client address and per account and address, an account
under guessing is slowed without locking out its owner, and registrations are throttled
per address; an IPv6 address counts by its /64.

The live server trusts X-Forwarded-For from 127.0.0.1 (its default trusted proxy), so
a test can act as clients at different addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.services.throttle import address_bucket
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


async def test_guessing_one_account_from_many_addresses_slows_each_of_them(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        limited(
            tmp_path, database_url, login_attempts_per_account=3, login_attempts_when_slowed=1
        ) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await Api(client).register("alice")
        guessers = [f"198.51.100.{i + 1}" for i in range(3)]
        for addr in guessers:
            assert await login(client, "alice", "guess-guess-1", addr) == 401
        # The account is now slowed: each address that has been guessing is refused...
        for addr in guessers:
            assert await login(client, "alice", "guess-guess-2", addr) == 429
        # ...and each new one gets a single try,
        assert await login(client, "alice", "guess-guess-3", "198.51.100.50") == 401
        assert await login(client, "alice", "guess-guess-4", "198.51.100.50") == 429
        # while the owner, from an address that was not guessing, still gets in.
        assert await login(client, "alice", PASSWORD, "203.0.113.20") == 201
        # Another account is unaffected.
        await Api(client).register("bob")
        assert await login(client, "bob", PASSWORD, "198.51.100.1") == 201


async def test_twenty_wrong_passwords_do_not_lock_the_owner_out(
    tmp_path: Path, database_url: str
) -> None:
    """The issue's report: twenty wrong passwords locked the real owner out for 15
    minutes. With the default limits the guesser's address is throttled, and the owner,
    elsewhere, logs in at once."""
    async with limited(tmp_path, database_url) as live, httpx.AsyncClient(base_url=live.url) as c:
        await Api(c).register("alice")
        attacker = "2001:db8:bad:1::7"
        results = [await login(c, "alice", f"guess-guess-{i}", attacker) for i in range(25)]
        assert set(results[:10]) == {401}
        assert set(results[10:]) == {429}  # login_attempts_per_account_from_address
        # Another address in the attacker's /64 is the same attacker.
        assert await login(c, "alice", "guess-guess-x", "2001:db8:bad:1:ffff::1") == 429
        assert await login(c, "alice", PASSWORD, "2001:db8:600d::1") == 201
        assert await login(c, "alice", PASSWORD, "203.0.113.20") == 201


async def test_an_ipv6_slash_64_is_one_address(tmp_path: Path, database_url: str) -> None:
    async with (
        limited(tmp_path, database_url, login_attempts_per_address=3) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await Api(client).register("alice")
        # Four addresses of one /64 (one subscriber's network) share one budget.
        addresses = [f"2001:db8:1:2::{i:x}" for i in range(1, 5)]
        results = [await login(client, "alice", "guess-guess-1", a) for a in addresses]
        assert results == [401, 401, 401, 429]
        # The next /64 is someone else.
        assert await login(client, "alice", PASSWORD, "2001:db8:1:3::1") == 201


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
        # Sign-ups from one IPv6 /64 count together, whatever address in it they use.
        assert [
            await register(n, f"2001:db8:7:7:{i}::1") for i, n in enumerate(("cc1", "cc2", "cc3"))
        ] == [201, 201, 429]


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("not an address", "not an address"),
    ],
)
def test_address_buckets(address: str, bucket: str) -> None:
    assert address_bucket(address) == bucket


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    tmp_path: Path, database_url: str
) -> None:
    # The live server's peer is 127.0.0.1; here it is not a trusted proxy, so the
    # header a client sends is ignored and every login counts against 127.0.0.1.
    async with (
        limited(
            tmp_path, database_url, login_attempts_per_address=2, trusted_proxies="192.0.2.1"
        ) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await Api(client).register("alice")
        results = [
            await login(client, "alice", "guess-guess-1", f"198.51.100.{i}") for i in range(3)
        ]
        assert results == [401, 401, 429]


async def test_the_last_address_a_trusted_proxy_saw_is_the_client(
    tmp_path: Path, database_url: str
) -> None:
    """A proxy that appends to a client-supplied X-Forwarded-For (nginx's
    $proxy_add_x_forwarded_for) passes the client's invention on; the address the proxy
    itself saw comes last, and that is the one counted. The documented nginx config sets
    the header to $remote_addr instead, so there is nothing to invent."""
    async with (
        limited(tmp_path, database_url, login_attempts_per_address=2) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await Api(client).register("alice")
        results = [
            await login(client, "alice", "guess-guess-1", f"203.0.113.{i}, 198.51.100.7")
            for i in range(3)
        ]
        assert results == [401, 401, 429]
