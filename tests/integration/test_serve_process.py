"""The real ``ringfence serve`` process: start-up, HTTP and WebSocket, a crash in the
middle of a stream of sends, the admin CLI, and refusal of bad settings."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import PG_URL
from tests.serve import RINGFENCE, ServeProcess, free_port

pytestmark = pytest.mark.integration

PASSWORD = "correct horse 1"


def server_env(**extra: str) -> dict[str, str]:
    """The test's environment without any RINGFENCE_* setting of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    # Name an external TURN relay so that serve does not start a coturn of its own;
    # these tests are about the server and its database.
    env["RINGFENCE_TURN_URLS"] = "turn:127.0.0.1:3478?transport=udp"
    env["RINGFENCE_TURN_SECRET"] = "integration-test-shared-secret-0123456789"
    # Messages are streamed as fast as they go here, as requests: the per-account
    # message limits (tested in tests/unit/api/test_message_limits.py) stay out of it.
    env["RINGFENCE_MESSAGES_PER_MINUTE"] = "100000"
    env["RINGFENCE_MESSAGE_REQUESTS_PER_HOUR"] = "100000"
    env.update(extra)
    return env


class Serve(ServeProcess):
    """``ringfence serve`` on ``tmp_path``'s data directory (and the given database)."""

    def __init__(self, tmp_path: Path, database_url: str | None) -> None:
        self.data_dir = tmp_path / "data"
        self.database_url = database_url
        args = ["--data-dir", str(self.data_dir)]
        if database_url:
            args += ["--database-url", database_url]
        super().__init__("serve", tmp_path / "serve.log", server_env(), args)

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ringfence admin``, given the database through the environment this time
        (as a plain postgresql:// URL, which Ringfence converts)."""
        env = server_env()
        if self.database_url:
            plain = self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
            env["RINGFENCE_DATABASE_URL"] = plain
        return subprocess.run(
            [str(RINGFENCE), "admin", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture
async def serve(tmp_path: Path, database_url: str) -> AsyncIterator[Serve]:
    # Without a PostgreSQL server the default applies: SQLite inside --data-dir.
    server = Serve(tmp_path, database_url if PG_URL else None)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def register(client: httpx.AsyncClient, username: str) -> str:
    resp = await client.post("/api/v1/accounts", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ws_open(serve: Serve, token: str, since: int | None = None) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(serve.ws_url, compression=None)
    frame: dict[str, Any] = {"type": "auth", "token": token}
    if since is not None:
        frame["since"] = since
    await ws.send(json.dumps(frame))
    ready: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert ready["type"] == "ready", ready
    return ws, ready


async def recv(ws: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return event


async def test_serve_talks_http_and_websocket(serve: Serve) -> None:
    async with httpx.AsyncClient(base_url=serve.url) as client:
        alice = await register(client, "alice")
        bob = await register(client, "bob")
        bob_ws, ready = await ws_open(serve, bob)
        assert ready["user"]["username"] == "bob"
        resp = await client.post(
            "/api/v1/conversations/bob/messages",
            json={"text": "over the wire"},
            headers=bearer(alice),
        )
        assert resp.status_code == 201
        event = await recv(bob_ws)
        assert (event["type"], event["pos"]) == ("message.new", 1)
        assert event["message"]["text"] == "over the wire"
        await bob_ws.close()
    if not PG_URL:
        assert (serve.data_dir / "ringfence.db").exists()
        assert (serve.data_dir / "ringfence.db-wal").exists()


async def test_acknowledged_messages_survive_sigkill_and_since_fills_the_gap(
    serve: Serve,
) -> None:
    async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:
        alice = await register(client, "alice")
        bob = await register(client, "bob")
        bob_ws, _ = await ws_open(serve, bob)
        for i in range(3):
            await client.post(
                "/api/v1/conversations/bob/messages",
                json={"text": f"seen {i}"},
                headers=bearer(alice),
            )
        seen = [await recv(bob_ws) for _ in range(3)]
        assert [e["pos"] for e in seen] == [1, 2, 3]
        await bob_ws.close()  # bob goes offline; everything from here on he misses

        acked: dict[str, int] = {}  # txn_id -> message id, for every 201 received
        attempted: list[str] = []
        enough = asyncio.Event()

        async def stream() -> None:
            for n in range(10_000):
                txn = f"crash-{n}"
                attempted.append(txn)
                try:
                    resp = await client.post(
                        "/api/v1/conversations/bob/messages",
                        json={"text": f"stream {n}", "txn_id": txn},
                        headers=bearer(alice),
                    )
                except httpx.TransportError:
                    return  # the server is gone
                assert resp.status_code == 201, resp.text
                acked[txn] = resp.json()["message"]["id"]
                if len(acked) >= 25:
                    enough.set()

        sender = asyncio.create_task(stream())
        await asyncio.wait_for(enough.wait(), 60)
        serve.kill()  # while sends are still streaming in
        await asyncio.wait_for(sender, 30)
        assert len(attempted) > len(acked)  # the kill cut the stream off mid-way

    await serve.start()
    async with httpx.AsyncClient(base_url=serve.url, timeout=10) as client:
        # A retry of the send that was in flight neither loses nor duplicates it.
        in_flight = attempted[-1]
        retry = await client.post(
            "/api/v1/conversations/bob/messages",
            json={"text": f"stream {len(attempted) - 1}", "txn_id": in_flight},
            headers=bearer(alice),
        )
        assert retry.status_code == 201

        resp = await client.get(
            "/api/v1/conversations/alice/messages", params={"limit": 100}, headers=bearer(bob)
        )
        history = resp.json()["messages"]
        ids = [m["id"] for m in history]
        assert len(ids) == len(set(ids))
        assert set(acked.values()) <= set(ids), "an acknowledged message was lost"
        texts = [m["text"] for m in history]
        assert len(texts) == len(set(texts))

        # Bob comes back with the last position he saw: exactly what he missed, once, in order.
        bob_ws, ready = await ws_open(serve, bob, since=3)
        missed = [await recv(bob_ws) for _ in range(ready["pos"] - 3)]
        assert [e["pos"] for e in missed] == list(range(4, ready["pos"] + 1))
        assert [e["message"]["id"] for e in missed] == ids[3:]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bob_ws.recv(), 0.3)
        # And the stream goes on from there.
        await client.post(
            "/api/v1/conversations/bob/messages", json={"text": "after"}, headers=bearer(alice)
        )
        assert (await recv(bob_ws))["pos"] == ready["pos"] + 1
        await bob_ws.close()


async def test_admin_verify_and_unverify_change_the_flag_seen_over_the_api(serve: Serve) -> None:
    async with httpx.AsyncClient(base_url=serve.url) as client:
        alice = await register(client, "alice")
        await register(client, "bob")

        async def bob_verified() -> bool:
            resp = await client.get("/api/v1/users/bob", headers=bearer(alice))
            assert resp.status_code == 200
            verified: bool = resp.json()["user"]["verified"]
            return verified

        assert await bob_verified() is False
        done = serve.admin("verify", "bob")
        assert done.returncode == 0, done.stderr
        assert "bob is now verified" in done.stderr
        assert await bob_verified() is True
        done = serve.admin("unverify", "bob")
        assert done.returncode == 0, done.stderr
        assert await bob_verified() is False

        missing = serve.admin("verify", "nobody")
        assert missing.returncode != 0
        assert "nobody" in missing.stderr


def run_serve(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RINGFENCE), "serve", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        ([], {"RINGFENCE_PORT": "notaport"}, "RINGFENCE_PORT"),
        (["--port", "70000"], {}, "port"),
        (["--database-url", "mysql://rf@localhost/rf"], {}, "database_url"),
        ([], {"RINGFENCE_DATABASE_URL": "not a url"}, "RINGFENCE_DATABASE_URL"),
        (["--log-level", "chatty"], {}, "log_level"),
        ([], {"RINGFENCE_WS_SEND_QUEUE": "1"}, "ws_send_queue"),
    ],
)
def test_a_bad_setting_stops_serve_with_its_name(
    tmp_path: Path, args: list[str], env: dict[str, str], setting: str
) -> None:
    done = run_serve(["--data-dir", str(tmp_path / "data"), *args], server_env(**env), tmp_path)
    assert done.returncode != 0
    assert setting in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_a_bad_setting_in_the_config_file_stops_serve(tmp_path: Path) -> None:
    config = tmp_path / "ringfence.toml"
    config.write_text('port = 8080\nws_auth_timeout_s = "soon"\n')
    done = run_serve(["--config", str(config)], server_env(), tmp_path)
    assert done.returncode != 0
    assert "ws_auth_timeout_s" in done.stderr


def test_an_unreachable_database_stops_serve_without_echoing_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql+asyncpg://rf:hunter2secret@127.0.0.1:{free_port()}/ringfence"
    done = run_serve(["--port", str(free_port()), "--database-url", url], server_env(), tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "database_url" in output
    assert "hunter2secret" not in output
