"""The README's path for the relay: ``ringfence serve`` from a fresh working directory
with no ``--data-dir`` (so the relative ``ringfence-data``) and the embedded coturn.

Every other test passes absolute tmp paths, which is how a relative data dir once made
coturn miss its config and run as an open relay on every interface, refusing
Ringfence's credentials, without any test noticing. Here the server is a child process
started as ``scripts/serve`` starts it; only its HTTP and relay ports are chosen free so
that it cannot collide with anything else on the machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from ringfence.turn.credentials import IceServer
from ringfence.turn.supervisor import pick_free_port
from tests.integration.turn.test_coturn import allocation
from tests.serve import RINGFENCE, ServeProcess, free_port

pytestmark = pytest.mark.integration

TURNSERVER = shutil.which("turnserver")
if TURNSERVER is None:
    pytest.skip("coturn is not installed (scripts/test installs it)", allow_module_level=True)

DATA_DIR = "ringfence-data"  # the README's default, relative to the working directory
PASSWORD = "correct horse 1"


def newcomer_env(turn_port: int, path: str | None = None) -> dict[str, str]:
    """The test run's environment without any RINGFENCE_* setting, plus a free relay
    port (the default, 3478, may be taken by another run on this machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    env["RINGFENCE_TURN_PORT"] = str(turn_port)
    if path is not None:
        env["PATH"] = path
    return env


@pytest.fixture
async def readme_serve(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    cwd = tmp_path / "newcomer"
    cwd.mkdir()
    server = ServeProcess(
        "serve", tmp_path / "serve.log", newcomer_env(pick_free_port("127.0.0.1")), [], cwd=cwd
    )
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


async def ice_server_for_a_call(
    server: ServeProcess, verify: bool | ssl.SSLContext = False
) -> IceServer:
    """Two people who may call each other; the relay credentials a call hands out."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10, verify=verify) as client:
        alice = await register(client, "alice")
        bob = await register(client, "bob")
        resp = await client.put(
            "/api/v1/me/following/alice", headers={"Authorization": f"Bearer {bob}"}
        )
        assert resp.status_code == 204, resp.text
        resp = await client.post(
            "/api/v1/conversations/bob/messages",
            json={"text": "hi, may I call you?"},
            headers={"Authorization": f"Bearer {alice}"},
        )
        assert resp.status_code == 201, resp.text
        resp = await client.post(
            "/api/v1/calls",
            json={"to": "bob", "media": "audio"},
            headers={"Authorization": f"Bearer {alice}"},
        )
        assert resp.status_code == 201, resp.text
    (entry,) = resp.json()["ice_servers"]
    return IceServer(tuple(entry["urls"]), entry["username"], entry["credential"])


def relay_port(server: IceServer) -> int:
    udp = next(url for url in server.urls if url.endswith("?transport=udp"))
    parts = urlsplit("//" + udp.split(":", 1)[1].split("?")[0])
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None
    return parts.port


async def unauthenticated_allocate(port: int) -> int | None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(("127.0.0.1", port), None, None, 600, 500),
        remote_addr=("127.0.0.1", port),
    )
    try:
        await protocol.connect()
    except stun.TransactionFailed as refusal:
        return refusal.response.error_code
    finally:
        transport.close()
    return None


def sockets_of(pid: int) -> list[str]:
    """Local addresses of every TCP and UDP socket ``pid`` holds, as ss(8) shows them:
    a second opinion, independent of the supervisor's own /proc reader."""
    out = subprocess.run(
        ["ss", "-H", "-a", "-n", "-p", "-t", "-u"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[4] for line in out.splitlines() if f"pid={pid}," in line]


async def test_readme_serve_runs_a_relay_only_for_ringfence(
    readme_serve: ServeProcess,
) -> None:
    assert readme_serve.cwd is not None
    coturn_dir = readme_serve.cwd / DATA_DIR / "coturn"
    pid = int((coturn_dir / "turnserver.pid").read_text())
    # coturn was handed its config by an absolute path.
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[1:3] == [b"-c", str(coturn_dir.resolve() / "turnserver.conf").encode()]

    server = await ice_server_for_a_call(readme_serve)
    port = relay_port(server)

    # No credentials, no relay: the open relay of the old default is gone.
    assert await unauthenticated_allocate(port) == 401
    # The credentials a call hands out work.
    async with allocation(port, server) as (_, relayed):
        assert relayed[0] == "127.0.0.1"
    # And coturn is only where it was told to be: 127.0.0.1, not every interface.
    local = sockets_of(pid)
    assert local, "ss shows no socket of coturn"
    assert all(address.startswith("127.0.0.1:") for address in local), local


# A stand-in `turnserver` that runs the real coturn on Ringfence's port but on its
# built-in defaults, as when it cannot find its config file: every interface, no
# authentication. Its pid file and database go next to the config, not to /var.
ON_DEFAULTS = """#!/bin/sh
port=$(sed -n 's/^listening-port=//p' "$2")
dir=$(dirname "$2")
exec {real} -n --listening-port "$port" --no-cli --log-file stdout \\
  --pidfile "$dir/on-defaults.pid" --userdb "$dir/on-defaults.db"
"""


def test_serve_refuses_a_relay_that_is_not_running_its_configuration(tmp_path: Path) -> None:
    cwd = tmp_path / "newcomer"
    cwd.mkdir()
    shims = tmp_path / "bin"
    shims.mkdir()
    fake = shims / "turnserver"
    fake.write_text(ON_DEFAULTS.format(real=TURNSERVER))
    fake.chmod(0o700)

    result = subprocess.run(
        [str(RINGFENCE), "serve", "--port", str(free_port())],
        cwd=cwd,
        env=newcomer_env(pick_free_port("127.0.0.1"), f"{shims}:{os.environ['PATH']}"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    # One plain sentence that names the problem, ahead of any traceback.
    problem = (
        "Ringfence cannot start: its embedded TURN relay is not usable: "
        "the relay answered an Allocate without credentials: coturn is not running the "
        "configuration Ringfence wrote ("
    )
    assert problem in result.stderr, result.stderr[-3000:]
    # The operator has something to fix, not a bug to report: no traceback.
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    # The open relay it found does not outlive the refusal.
    rogue = int((cwd / DATA_DIR / "coturn" / "on-defaults.pid").read_text())
    assert not Path(f"/proc/{rogue}").exists() or re.search(
        r"State:\s+Z", Path(f"/proc/{rogue}/status").read_text()
    )


async def test_serve_with_a_self_signed_certificate_serves_https_and_turn_over_tls(
    tmp_path: Path,
) -> None:
    """The README's LAN command, on loopback: HTTPS with a certificate made into the
    relative data dir, and a relay offering UDP, TCP and TLS on that same certificate."""
    cwd = tmp_path / "newcomer"
    cwd.mkdir()
    env = newcomer_env(pick_free_port("127.0.0.1"))
    env["RINGFENCE_TURN_TLS_PORT"] = str(pick_free_port("127.0.0.1"))
    server = ServeProcess(
        "serve", tmp_path / "serve.log", env, ["--tls-self-signed"], cwd=cwd, tls=True
    )
    await server.start()
    try:
        cert = cwd / DATA_DIR / "tls" / "self-signed.crt"
        key = cwd / DATA_DIR / "tls" / "self-signed.key"
        assert key.stat().st_mode & 0o077 == 0, "the private key is readable by others"
        # HTTPS with exactly that certificate: a client that trusts only it gets in.
        trust_it = ssl.create_default_context(cafile=str(cert))
        ice = await ice_server_for_a_call(server, verify=trust_it)
        tls_port = int(env["RINGFENCE_TURN_TLS_PORT"])
        port = relay_port(ice)
        assert set(ice.urls) == {
            f"turn:127.0.0.1:{port}?transport=udp",
            f"turn:127.0.0.1:{port}?transport=tcp",
            f"turns:127.0.0.1:{tls_port}?transport=tcp",
        }
        for transport, at, tls in (("udp", port, None), ("tcp", port, None)):
            async with allocation(at, ice, transport=transport, tls=tls) as (_, relayed):
                assert relayed[0] == "127.0.0.1"
        async with allocation(tls_port, ice, transport="tcp", tls=trust_it) as (_, relayed):
            assert relayed[0] == "127.0.0.1"
        assert "Serving HTTPS with a self-signed certificate" in server.log()
    finally:
        server.stop()
