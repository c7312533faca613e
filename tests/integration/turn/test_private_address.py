"""A production relay on a private or documentation address (a LAN, a VPN, CGNAT, a
test network) carries relay-to-relay media, because its own address is allowed as a
peer, and still refuses every other address around it. Real coturn, production rules,
on an address of this machine that is not loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aioice import stun

from ringfence.turn import CoturnOptions, CoturnSupervisor, TurnCredentialIssuer, generate_secret
from tests.integration.turn.test_coturn import Inbox, allocation
from tests.turn_fixture import relay_test_address

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed"),
]


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
async def private_relay(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, int, TurnCredentialIssuer]]:
    address = relay_test_address(request.param)
    secret = generate_secret()
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip=address, relay_ip=address, port=0, realm="ringfence", secret=secret
        ),
        tmp_path / "coturn",
        production=True,
    )
    await supervisor.start()  # verified, with the production rules
    try:
        issuer = TurnCredentialIssuer(secret.encode(), supervisor.urls, ttl_s=60)
        yield address, supervisor.port, issuer
    finally:
        await supervisor.stop()


async def test_two_relayed_peers_reach_each_other_through_a_private_relay(
    private_relay: tuple[str, int, TurnCredentialIssuer],
) -> None:
    address, port, issuer = private_relay
    async with (
        allocation(port, issuer.issue(), host=address) as (alice, alice_relayed),
        allocation(port, issuer.issue(), host=address) as (bob, bob_relayed),
    ):
        assert alice_relayed[0] == bob_relayed[0] == address
        inbox = Inbox()
        bob.receiver = inbox
        await bob.send_data(b"knock", alice_relayed)  # Bob's permission for Alice
        await alice.send_data(b"hello bob", bob_relayed)

        async with asyncio.timeout(10):
            data, sender = await inbox.received.get()
        assert (data, sender) == (b"hello bob", alice_relayed)


def neighbours(address: str) -> list[str]:
    """Addresses around the relay's own: same network, and other private ranges."""
    own = ipaddress.ip_address(address)
    if own.version == 4:
        return [str(own + 1), str(own - 1), "10.0.0.1", "192.168.1.1", "100.64.0.1"]
    return [str(own + 1), "fc00::1", "fe80::1", "::1", "::"]


async def test_other_private_addresses_stay_denied(
    private_relay: tuple[str, int, TurnCredentialIssuer],
) -> None:
    address, port, issuer = private_relay
    async with allocation(port, issuer.issue(), host=address) as (protocol, _):
        for peer in neighbours(address):
            request = stun.Message(
                message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
            )
            request.attributes["XOR-PEER-ADDRESS"] = (peer, 5000)
            with pytest.raises(stun.TransactionFailed) as refusal:
                await protocol.request(request)
            assert refusal.value.response.error_code == 403, peer
