"""A production relay refuses CreatePermission toward loopback, private, link-local and
IPv4-mapped addresses, so it cannot be used to reach the relay host's own services or a
cloud metadata endpoint. Real coturn, real TURN requests, production configuration
(no loopback allowance in play)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aioice import stun

from ringfence.turn.coturn_config import CoturnOptions
from ringfence.turn.credentials import TurnCredentialIssuer, generate_secret
from ringfence.turn.supervisor import CoturnSupervisor
from tests.integration.turn.test_coturn import allocation

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed"),
]


@pytest.fixture
async def production_relay(tmp_path: Path) -> AsyncIterator[tuple[int, TurnCredentialIssuer]]:
    secret = generate_secret()
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip="127.0.0.1", relay_ip="127.0.0.1", port=0, realm="ringfence", secret=secret
        ),
        tmp_path / "coturn",
        production=True,
    )
    await supervisor.start()
    try:
        yield supervisor.port, TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=60)
    finally:
        await supervisor.stop()


@pytest.mark.parametrize(
    ("peer", "refusals"),
    [
        (("127.0.0.1", 5000), {403}),  # the relay host itself
        (("10.0.0.1", 5000), {403}),  # a private network behind the relay
        (("169.254.169.254", 80), {403}),  # cloud metadata
        # IPv4-mapped loopback: refused by the denial, or as the wrong address family
        # for this IPv4 allocation; either way no permission is granted.
        (("::ffff:127.0.0.1", 5000), {403, 443}),
    ],
)
async def test_create_permission_toward_internal_addresses_is_refused(
    production_relay: tuple[int, TurnCredentialIssuer],
    peer: tuple[str, int],
    refusals: set[int],
) -> None:
    port, issuer = production_relay
    async with allocation(port, issuer.issue()) as (protocol, _):
        request = stun.Message(
            message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
        )
        request.attributes["XOR-PEER-ADDRESS"] = peer
        with pytest.raises(stun.TransactionFailed) as refusal:
            await protocol.request(request)
    assert refusal.value.response.error_code in refusals


async def test_the_same_request_succeeds_where_loopback_is_allowed(tmp_path: Path) -> None:
    """Control: the request above is well formed and authenticated; on the development
    relay, whose loopback allowance is in play, the same permission is granted."""
    secret = generate_secret()
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip="127.0.0.1",
            relay_ip="127.0.0.1",
            port=0,
            realm="ringfence",
            secret=secret,
            allow_loopback_peers=True,
        ),
        tmp_path / "coturn",
        production=False,
    )
    await supervisor.start()
    try:
        issuer = TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=60)
        async with allocation(supervisor.port, issuer.issue()) as (protocol, _):
            request = stun.Message(
                message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
            )
            request.attributes["XOR-PEER-ADDRESS"] = ("127.0.0.1", 5000)
            response, _ = await protocol.request(request)
        assert response.message_class == stun.Class.RESPONSE
    finally:
        await supervisor.stop()


@pytest.mark.parametrize("peer", [("8.8.8.8", 3478), ("1.1.1.1", 53)])
async def test_public_peers_are_granted(
    production_relay: tuple[int, TurnCredentialIssuer], peer: tuple[str, int]
) -> None:
    """Control for the denials: they must not deny everything. (coturn reads "::" in a
    range as "any address"; a denied-peer-ip=::-:: once refused every peer.) A
    permission sends nothing, so this needs no network."""
    port, issuer = production_relay
    async with allocation(port, issuer.issue()) as (protocol, _):
        request = stun.Message(
            message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
        )
        request.attributes["XOR-PEER-ADDRESS"] = peer
        response, _ = await protocol.request(request)
    assert response.message_class == stun.Class.RESPONSE
