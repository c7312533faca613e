"""One account cannot fill the relay: against a real coturn, its per-user quota counts
every credential of an account together, and no allocation outlives its credential on
one request.

Before: every credential had a random user name, so each was a "user" of its own and
100 credentials reached total-quota; an Allocate asking for an hour got an hour.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from ringfence.turn import (
    CoturnOptions,
    CoturnSupervisor,
    IceServer,
    TurnCredentialIssuer,
    generate_secret,
)
from ringfence.turn.coturn_config import DEFAULT_USER_QUOTA
from tests.integration.turn.test_coturn import allocation, refused_with

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed"),
]

TTL_S = 600
ALLOCATION_QUOTA_REACHED = 486
UDP = 17 << 24  # REQUESTED-TRANSPORT: the protocol number, then three RFFU bytes


class Clock:
    """Each credential a second later than the last: a different user name each time,
    as a client collecting credentials over a minute gets."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[CoturnSupervisor, str]]:
    """The embedded relay's configuration, with its default quota and lifetime cap."""
    secret = generate_secret()
    options = CoturnOptions(
        listen_ip="127.0.0.1",
        relay_ip="127.0.0.1",
        port=0,
        min_port=42000,
        max_port=42999,
        realm="ringfence",
        secret=secret,
        allow_loopback_peers=True,
        max_allocate_lifetime_s=TTL_S,
    )
    supervisor = CoturnSupervisor(options, tmp_path / "coturn", production=False)
    await supervisor.start()
    try:
        yield supervisor, secret
    finally:
        await supervisor.stop()


def account_issuer(supervisor: CoturnSupervisor, secret: str) -> TurnCredentialIssuer:
    # Credentials expire in the future whatever the fake clock says (coturn checks the
    # expiry against its own clock): far ahead, each a second apart.
    return TurnCredentialIssuer(
        secret.encode(),
        supervisor.urls,
        ttl_s=TTL_S,
        clock=Clock(),
        pseudonym_key=secrets.token_bytes(32),
    )


async def test_one_account_holds_at_most_the_quota_and_others_still_allocate(
    relay: tuple[CoturnSupervisor, str],
) -> None:
    supervisor, secret = relay
    issuer = account_issuer(supervisor, secret)
    harasser, someone_else = 1, 2

    async with AsyncExitStack() as held:
        for _ in range(DEFAULT_USER_QUOTA):
            await held.enter_async_context(allocation(supervisor.port, issuer.issue_for(harasser)))
        # A fresh credential is no way round it: same account, same pseudonym.
        fresh = issuer.issue_for(harasser)
        assert fresh.username.split(":")[1] == issuer.pseudonym(harasser)
        assert await refused_with(supervisor.port, fresh) == ALLOCATION_QUOTA_REACHED

        async with allocation(supervisor.port, issuer.issue_for(someone_else)) as (_, relayed):
            assert relayed[0] == "127.0.0.1"
        # The relay's own checks have no account: they never eat anyone's quota.
        async with allocation(supervisor.port, issuer.issue()) as (_, relayed):
            assert relayed[0] == "127.0.0.1"

    # Once released (coturn counts the release a moment after the Refresh that asks
    # for it), the account may allocate again. Each try comes from a port no earlier
    # try used: coturn ignores a client address whose Allocate it refused for a while
    # (its requests time out), and the kernel may hand a just-closed port out again.
    for local_port in unused_local_ports(50):
        try:
            async with allocation(
                supervisor.port, issuer.issue_for(harasser), local_port=local_port
            ) as (_, relayed):
                assert relayed[0] == "127.0.0.1"
                return
        except stun.TransactionFailed as refusal:
            code = refusal.response.error_code
        if code != ALLOCATION_QUOTA_REACHED:
            raise AssertionError(f"refused with {code}, not for the quota")
        await asyncio.sleep(0.1)
    raise AssertionError("the account's quota was never given back")


def unused_local_ports(count: int) -> list[int]:
    """``count`` free UDP ports below the kernel's ephemeral range, so none was used by
    the earlier, kernel-chosen client sockets of this test."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports: list[int] = []
    candidate = low - 1
    while len(ports) < count and candidate > 1024:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                pass
            else:
                ports.append(candidate)
        candidate -= 1
    return ports


async def test_an_allocation_asking_for_an_hour_gets_the_credential_ttl(
    relay: tuple[CoturnSupervisor, str],
) -> None:
    supervisor, secret = relay
    issuer = TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=TTL_S)
    granted = await _allocate(supervisor.port, issuer.issue(), lifetime=3600)

    assert granted["allocate"] <= TTL_S
    assert granted["refresh"] <= TTL_S


async def _allocate(port: int, server: IceServer, *, lifetime: int) -> dict[str, int]:
    """Allocate asking for ``lifetime``, refresh asking for it again, and release: the
    lifetimes the relay granted. Raw requests, as aioice's connect() keeps its answer."""
    loop = asyncio.get_running_loop()

    def client() -> TurnClientUdpProtocol:
        return TurnClientUdpProtocol(
            ("127.0.0.1", port),
            username=server.username,
            password=server.credential,
            lifetime=lifetime,
            channel_refresh_time=500,
        )

    transport, protocol = await loop.create_datagram_endpoint(
        client, remote_addr=("127.0.0.1", port)
    )
    try:
        granted = {}
        for method in (stun.Method.ALLOCATE, stun.Method.REFRESH):
            request = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
            request.attributes["LIFETIME"] = lifetime
            if method == stun.Method.ALLOCATE:
                request.attributes["REQUESTED-TRANSPORT"] = UDP
            response, _ = await protocol.request_with_retry(request)
            granted[method.name.lower()] = int(response.attributes["LIFETIME"])
        release = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        release.attributes["LIFETIME"] = 0
        await protocol.request_with_retry(release)
        return granted
    finally:
        transport.close()
