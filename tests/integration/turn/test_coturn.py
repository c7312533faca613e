"""The supervisor and credentials against a real coturn on 127.0.0.1."""

import asyncio
import os
import shutil
import signal
import ssl
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientProtocol, TurnClientTcpProtocol, TurnClientUdpProtocol

import ringfence.turn.supervisor as supervisor_module
from ringfence.turn import (
    CoturnOptions,
    CoturnStartError,
    CoturnSupervisor,
    IceServer,
    TurnCredentialIssuer,
    TurnUnavailable,
    coturn_config,
    generate_secret,
)

pytestmark = pytest.mark.integration

needs_coturn = pytest.mark.skipif(
    shutil.which("turnserver") is None,
    reason="coturn's turnserver is not installed (Debian/Ubuntu: apt-get install coturn)",
)

MIN_RELAY_PORT = 49152
MAX_RELAY_PORT = 65535


class Inbox(asyncio.DatagramProtocol):
    """Collects what a TURN allocation receives from its peers."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


@asynccontextmanager
async def allocation(
    port: int,
    server: IceServer,
    host: str = "127.0.0.1",
    transport: str = "udp",
    tls: ssl.SSLContext | None = None,
    local_port: int = 0,
) -> AsyncIterator[tuple[TurnClientProtocol, tuple[str, int]]]:
    """Allocate a relayed UDP address on the coturn at host:port, and free it after.

    ``transport`` is how the client reaches the relay: "udp", or "tcp" (TURN over TLS
    when ``tls`` is given), as aiortc does for turn: and turns: URLs. ``local_port``
    binds the client's UDP socket (0: one the kernel picks)."""
    loop = asyncio.get_running_loop()
    protocol: TurnClientProtocol
    inner: asyncio.BaseTransport

    def client(kind: type[TurnClientProtocol]) -> TurnClientProtocol:
        return kind(
            (host, port),
            username=server.username,
            password=server.credential,
            lifetime=600,
            channel_refresh_time=500,
        )

    if transport == "udp":
        inner, protocol = await loop.create_datagram_endpoint(
            lambda: client(TurnClientUdpProtocol),
            remote_addr=(host, port),
            local_addr=(host, local_port),
        )
    else:
        inner, protocol = await loop.create_connection(
            lambda: client(TurnClientTcpProtocol), host=host, port=port, ssl=tls
        )
    try:
        relayed = await protocol.connect()
    except BaseException:
        inner.close()
        raise
    try:
        yield protocol, relayed
    finally:
        await protocol.delete()


async def refused_with(port: int, server: IceServer) -> int:
    with pytest.raises(stun.TransactionFailed) as refusal:
        async with allocation(port, server):
            pass
    error_code: int | None = refusal.value.response.error_code
    assert error_code is not None
    return error_code


@pytest.fixture
def secret() -> str:
    return generate_secret()


def dev_options(secret: str) -> CoturnOptions:
    return CoturnOptions(
        listen_ip="127.0.0.1",
        relay_ip="127.0.0.1",
        port=0,
        realm="ringfence.test",
        secret=secret,
        allow_loopback_peers=True,
    )


@pytest.fixture
async def coturn(secret: str, tmp_path: Path) -> AsyncIterator[CoturnSupervisor]:
    supervisor = CoturnSupervisor(dev_options(secret), tmp_path / "coturn", production=False)
    await supervisor.start()
    try:
        yield supervisor
    finally:
        await supervisor.stop()


@pytest.fixture
def issuer(coturn: CoturnSupervisor, secret: str) -> TurnCredentialIssuer:
    return TurnCredentialIssuer(secret.encode(), coturn.urls, ttl_s=300)


@needs_coturn
async def test_allocate_with_issued_credentials(
    coturn: CoturnSupervisor, issuer: TurnCredentialIssuer
) -> None:
    assert coturn.port != 0
    assert coturn.urls == [
        f"turn:127.0.0.1:{coturn.port}?transport=udp",
        f"turn:127.0.0.1:{coturn.port}?transport=tcp",
    ]

    async with allocation(coturn.port, issuer.issue()) as (_, relayed):
        host, port = relayed
        assert host == "127.0.0.1"
        assert MIN_RELAY_PORT <= port <= MAX_RELAY_PORT


@needs_coturn
async def test_two_relayed_peers_on_one_host_reach_each_other(
    coturn: CoturnSupervisor, issuer: TurnCredentialIssuer
) -> None:
    async with (
        allocation(coturn.port, issuer.issue()) as (alice, alice_relayed),
        allocation(coturn.port, issuer.issue()) as (bob, bob_relayed),
    ):
        inbox = Inbox()
        bob.receiver = inbox
        # Bob's first send installs his permission for Alice's relayed address.
        await bob.send_data(b"knock", alice_relayed)
        await alice.send_data(b"hello bob", bob_relayed)

        async with asyncio.timeout(10):
            data, sender = await inbox.received.get()
        assert (data, sender) == (b"hello bob", alice_relayed)


@needs_coturn
@pytest.mark.parametrize(
    "peer",
    [
        ("127.0.0.2", 5000),  # loopback, other than the relay's own address
        ("10.1.2.3", 5000),
        ("169.254.169.254", 80),  # cloud metadata service
        ("192.168.1.1", 53),
        ("224.0.0.251", 5353),
    ],
)
async def test_peers_in_private_ranges_are_refused(
    coturn: CoturnSupervisor, issuer: TurnCredentialIssuer, peer: tuple[str, int]
) -> None:
    async with allocation(coturn.port, issuer.issue()) as (protocol, _):
        with pytest.raises(stun.TransactionFailed) as refusal:
            await protocol.channel_bind(0x4000, peer)

    assert refusal.value.response.error_code == 403


@needs_coturn
async def test_forged_credential_is_refused(coturn: CoturnSupervisor) -> None:
    forger = TurnCredentialIssuer(generate_secret().encode(), coturn.urls, ttl_s=300)

    assert await refused_with(coturn.port, forger.issue()) == 401


@needs_coturn
async def test_expired_credential_is_refused(coturn: CoturnSupervisor, secret: str) -> None:
    an_hour_ago = TurnCredentialIssuer(
        secret.encode(), coturn.urls, ttl_s=600, clock=lambda: time.time() - 3600
    )

    assert await refused_with(coturn.port, an_hour_ago.issue()) == 401


@needs_coturn
async def test_allocation_outlives_its_credential(coturn: CoturnSupervisor, secret: str) -> None:
    # A call may last longer than the credential's TTL: coturn checks the
    # expiry when the allocation is made, not on every refresh.
    issuer = TurnCredentialIssuer(secret.encode(), coturn.urls, ttl_s=1)
    server = issuer.issue()
    expiry = int(server.username.split(":")[0])

    async with allocation(coturn.port, server) as (protocol, _):
        while time.time() <= expiry + 1:
            await asyncio.sleep(0.2)
        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await protocol.request_with_retry(refresh)
        assert response.attributes["LIFETIME"] == 600

    assert await refused_with(coturn.port, server) == 401


@needs_coturn
async def test_watchdog_restarts_killed_coturn(
    coturn: CoturnSupervisor, issuer: TurnCredentialIssuer
) -> None:
    killed = coturn.pid
    assert killed is not None

    os.kill(killed, signal.SIGKILL)
    async with asyncio.timeout(30):
        while coturn.pid in (None, killed):
            await asyncio.sleep(0.05)
        await coturn.wait_serving()

    assert coturn.restarts == 1
    async with allocation(coturn.port, issuer.issue()) as (_, relayed):
        assert relayed[0] == "127.0.0.1"


@needs_coturn
async def test_stop_leaves_no_process_behind(secret: str, tmp_path: Path) -> None:
    supervisor = CoturnSupervisor(dev_options(secret), tmp_path, production=False)
    await supervisor.start()
    pid = supervisor.pid
    assert pid is not None

    await supervisor.stop()
    await supervisor.stop()  # idempotent

    assert supervisor.pid is None
    assert not Path(f"/proc/{pid}").exists()


@needs_coturn
async def test_secret_stays_in_a_private_file(coturn: CoturnSupervisor, secret: str) -> None:
    config = coturn.config_path

    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f"static-auth-secret={secret}" in config.read_text()
    cmdline = Path(f"/proc/{coturn.pid}/cmdline").read_bytes()
    assert secret.encode() not in cmdline


@needs_coturn
async def test_production_config_is_accepted_and_refuses_loopback_relaying(
    secret: str, tmp_path: Path
) -> None:
    options = CoturnOptions(
        listen_ip="127.0.0.1", relay_ip="127.0.0.1", port=0, realm="ringfence.test", secret=secret
    )
    supervisor = CoturnSupervisor(options, tmp_path)
    await supervisor.start()
    try:
        issuer = TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=60)
        async with (
            allocation(supervisor.port, issuer.issue()) as (alice, _),
            allocation(supervisor.port, issuer.issue()) as (_, bob_relayed),
        ):
            with pytest.raises(stun.TransactionFailed) as refusal:
                await alice.channel_bind(0x4000, bob_relayed)
        assert refusal.value.response.error_code == 403
    finally:
        await supervisor.stop()


@needs_coturn
async def test_config_lines_coturn_rejects_fail_the_start(
    secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_render = coturn_config.render

    def render_with_unknown_option(options: CoturnOptions, *, production: bool) -> str:
        return real_render(options, production=production) + "no-such-coturn-option\n"

    monkeypatch.setattr(supervisor_module, "render", render_with_unknown_option)
    supervisor = CoturnSupervisor(dev_options(secret), tmp_path, production=False)

    with pytest.raises(CoturnStartError, match="no-such-coturn-option"):
        await supervisor.start()
    assert supervisor.pid is None


async def test_early_exit_is_reported_with_coturn_output(secret: str, tmp_path: Path) -> None:
    fake = tmp_path / "fake-turnserver"
    fake.write_text("#!/bin/sh\necho 'cannot bind: Address already in use' >&2\nexit 3\n")
    fake.chmod(0o700)
    supervisor = CoturnSupervisor(
        dev_options(secret), tmp_path / "work", str(fake), production=False
    )

    with pytest.raises(CoturnStartError) as failure:
        await supervisor.start()

    message = str(failure.value)
    assert "exited with status 3" in message
    assert "cannot bind: Address already in use" in message


def test_missing_turnserver_is_reported_with_the_way_out(secret: str, tmp_path: Path) -> None:
    with pytest.raises(TurnUnavailable) as failure:
        CoturnSupervisor(dev_options(secret), tmp_path, binary="ringfence-no-such-turnserver")

    assert str(failure.value) == (
        "coturn's `turnserver` was not found; install it (Debian/Ubuntu: `apt-get install "
        "coturn`) or point Ringfence at an external TURN server with RINGFENCE_TURN_URLS and "
        "RINGFENCE_TURN_SECRET (or RINGFENCE_TURN_SECRET_FILE)"
    )
