"""Reports and suspensions, through the API and the real `ringfence admin` commands."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from ringfence.config import Settings
from tests.conftest import REDIS_URL, Api, LiveServer, Socket, make_settings, open_socket
from tests.integration.scale.conftest import RedisServer
from tests.serve import RINGFENCE, ServeProcess, until

pytestmark = pytest.mark.integration

# Generous bounds for what must happen "at once" or "within a few seconds": they only
# stop a broken test from hanging, and are never the thing measured.
DEADLINE_S = 30.0


async def admin(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(RINGFENCE), "admin", *args, "--database-url", settings.effective_database_url]
    return await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=60, check=False, env=env
    )


async def closed_with(sock: Socket) -> int:
    """Read until the server closes the socket; its close code."""

    async def drain() -> None:
        while True:
            await asyncio.wait_for(sock.ws.recv(), DEADLINE_S)

    with pytest.raises(ConnectionClosed) as closed:
        await drain()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


class Serve(ServeProcess):
    """A real ``ringfence serve`` process on ``settings``' database, with ``env`` on top."""

    def __init__(self, tmp_path: Path, settings: Settings, env: dict[str, str]) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
        clean.update(
            RINGFENCE_DATABASE_URL=settings.effective_database_url,
            RINGFENCE_DATA_DIR=str(tmp_path / "serve-data"),
            # An external relay is named so that serve starts no coturn of its own.
            RINGFENCE_TURN_URLS="turn:127.0.0.1:3478?transport=udp",
            RINGFENCE_TURN_SECRET="integration-test-shared-secret-0123456789",
            **env,
        )
        super().__init__("serve", tmp_path / "serve.log", clean, [])

    async def __aenter__(self) -> Serve:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    """The suite's Redis (scripts/test starts one), else a throwaway one of our own."""
    if REDIS_URL:
        yield REDIS_URL
        return
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    await server.start()
    try:
        yield server.url
    finally:
        server.kill()


async def test_reports_are_taken_and_listed_for_admins(
    live: tuple[LiveServer, Api], settings: Settings
) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    resp = await api.call(
        "POST", "/api/v1/reports", alice, json={"username": "bob", "reason": "keeps calling"}
    )
    assert resp.status_code == 201
    report_id = resp.json()["report"]["id"]
    for body, status in (
        ({"username": "alice"}, 400),  # yourself
        ({"username": "nobody"}, 404),
        ({"username": "bob", "reason": "x" * 1001}, 422),
    ):
        assert (await api.call("POST", "/api/v1/reports", alice, json=body)).status_code == status

    listed = await admin(settings, "reports")
    assert listed.returncode == 0, listed.stderr
    assert "keeps calling" in listed.stdout
    assert "bob" in listed.stdout
    done = await admin(settings, "resolve", str(report_id))
    assert done.returncode == 0, done.stderr
    assert "no open reports" in (await admin(settings, "reports")).stderr
    assert (await admin(settings, "resolve", str(report_id))).returncode == 1


async def test_reports_are_rate_limited(live: tuple[LiveServer, Api]) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    statuses = [
        (await api.call("POST", "/api/v1/reports", alice, json={"username": "bob"})).status_code
        for _ in range(21)
    ]
    assert statuses[:20] == [201] * 20
    assert statuses[20] == 429


async def test_a_suspended_account_cannot_log_in_message_or_call(
    tmp_path: Path, database_url: str
) -> None:
    # No token cache and no periodic re-check: every rule is enforced at once by the
    # database itself, and the open socket stays open until it tries to signal.
    settings = make_settings(tmp_path, database_url, auth_cache_ttl_s=0, ws_session_check_s=300)
    async with (
        LiveServer(settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        await suspended_account_is_refused(server, Api(client), settings)


async def suspended_account_is_refused(server: LiveServer, api: Api, settings: Settings) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    bob_ws = await open_socket(server.ws_url, bob)
    await api.call("PUT", "/api/v1/me/following/bob", alice)
    assert (await api.send(bob, "alice", "hi")).status_code == 201

    result = await admin(settings, "suspend", "bob")
    assert result.returncode == 0, result.stderr

    # Signed out everywhere, and cannot sign in again.
    assert (await api.call("GET", "/api/v1/me", bob)).status_code == 401
    login = await api.call(
        "POST", "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
    )
    assert login.status_code == 403
    assert login.json()["error"] == "account_suspended"
    # Nobody can reach a suspended account either.
    assert (await api.send(alice, "bob", "still there?")).status_code == 403
    call = await api.call("POST", "/api/v1/calls", alice, json={"to": "bob", "media": "audio"})
    assert call.status_code == 403
    # A socket opened before the suspension cannot signal calls any more.
    await bob_ws.send({"type": "call.hangup", "call_id": "abcdefgh1234"})
    with pytest.raises(ConnectionClosed) as closed:
        await bob_ws.recv_type("error")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401

    assert (await admin(settings, "unsuspend", "bob")).returncode == 0
    login = await api.call(
        "POST", "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
    )
    assert login.status_code == 201


async def suspended_with_open_socket(
    server: Serve, settings: Settings, admin_env: dict[str, str]
) -> None:
    """Bob has a socket open and has just used his token over HTTP (so a node may have
    it cached); after `ringfence admin suspend bob`, the socket closes with 4401 and
    the token is refused. Alice's socket stays open."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        api = Api(client)
        alice = await api.register("alice")
        bob = await api.register("bob")
        alice_ws = await open_socket(server.ws_url, alice)
        bob_ws = await open_socket(server.ws_url, bob)
        assert (await api.call("GET", "/api/v1/me", bob)).status_code == 200

        result = await admin(settings, "suspend", "bob", env=admin_env)
        assert result.returncode == 0, result.stderr

        assert await closed_with(bob_ws) == 4401

        async def refused() -> bool:
            return (await api.call("GET", "/api/v1/me", bob)).status_code == 401

        await until(refused, DEADLINE_S, "bob's token to be refused")
        # Nobody else was disconnected.
        await alice_ws.send({"type": "ping"})
        assert (await alice_ws.recv_type("pong"))["type"] == "pong"
        await alice_ws.close()


async def test_suspension_closes_open_sockets_without_redis(
    tmp_path: Path, database_url: str
) -> None:
    """One node, no Bus between the admin command and the server: the server finds the
    suspension on its own (the periodic check of the accounts behind open sockets)."""
    settings = make_settings(tmp_path, database_url)
    admin_env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    async with Serve(tmp_path, settings, {"RINGFENCE_WS_SESSION_CHECK_S": "1"}) as server:
        await suspended_with_open_socket(server, settings, admin_env)


async def test_suspension_closes_open_sockets_at_once_over_redis(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """With Redis, the admin command announces the suspension on the Bus. The server's
    own check runs only every 300 s and its cache keeps tokens for 60 s here, so only
    that announcement can close the socket and refuse the token within the deadline."""
    settings = make_settings(tmp_path, database_url)
    redis = {
        "RINGFENCE_REDIS_URL": redis_url,
        "RINGFENCE_REDIS_PREFIX": f"rf-test-{secrets.token_hex(6)}:",
    }
    admin_env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    admin_env.update(redis)
    slow = {"RINGFENCE_WS_SESSION_CHECK_S": "300", "RINGFENCE_AUTH_CACHE_TTL_S": "60"}
    async with Serve(tmp_path, settings, {**redis, **slow}) as server:
        await suspended_with_open_socket(server, settings, admin_env)
