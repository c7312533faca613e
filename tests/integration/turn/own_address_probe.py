"""Run inside a network namespace next to a relay: can a relay user (Mallory) reach a
UDP service on the relay's own address, and can two relayed callers (Alice and Bob)
still reach each other?

Prints one JSON line: ``{"service_reached": bool, "relay_to_relay": bool}``.
Usage: ``python -m tests.integration.turn.own_address_probe RELAY_IP PORT SECRET
SERVICE_PORT`` (the relay listens on RELAY_IP:PORT with shared secret SECRET).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from aioice.turn import TurnClientUdpProtocol

from ringfence.turn.credentials import TurnCredentialIssuer

WAIT_S = 1.5


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def allocate(
    relay: tuple[str, int], issuer: TurnCredentialIssuer
) -> tuple[TurnClientUdpProtocol, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    server = issuer.issue()
    for _ in range(50):  # coturn may still be starting
        _, protocol = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(
                relay,
                username=server.username,
                password=server.credential,
                lifetime=600,
                channel_refresh_time=500,
            ),
            remote_addr=relay,
        )
        try:
            async with asyncio.timeout(2):
                return protocol, await protocol.connect()
        except (TimeoutError, ConnectionError, OSError):
            protocol.transport.close()
            await asyncio.sleep(0.1)
    raise RuntimeError("the relay never answered")


async def arrives(inbox: asyncio.Queue[bytes], expected: bytes) -> bool:
    try:
        async with asyncio.timeout(WAIT_S):
            while await inbox.get() != expected:
                pass
    except TimeoutError:
        return False
    return True


async def main(relay_ip: str, port: int, secret: str, service_port: int) -> dict[str, bool]:
    loop = asyncio.get_running_loop()
    service = Inbox()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: service, local_addr=(relay_ip, service_port)
    )
    issuer = TurnCredentialIssuer(secret.encode(), [f"turn:{relay_ip}:{port}"], ttl_s=600)
    relay = (relay_ip, port)
    mallory, _ = await allocate(relay, issuer)
    alice, alice_relayed = await allocate(relay, issuer)
    bob, bob_relayed = await allocate(relay, issuer)
    try:
        # A relay user aims at a service on the relay's own address.
        with contextlib.suppress(Exception):
            await mallory.send_data(b"probe", (relay_ip, service_port))
        service_reached = await arrives(service.received, b"probe")
        # Two relayed callers, relay to relay, as every relayed call on this relay.
        to_bob = Inbox()
        bob.receiver = to_bob
        await bob.send_data(b"knock", alice_relayed)
        await alice.send_data(b"hello bob", bob_relayed)
        relay_to_relay = await arrives(to_bob.received, b"hello bob")
    finally:
        for protocol in (mallory, alice, bob):
            with contextlib.suppress(Exception):
                await protocol.delete()
        transport.close()
    return {"service_reached": service_reached, "relay_to_relay": relay_to_relay}


if __name__ == "__main__":
    ip, turn_port, shared, target = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(ip, int(turn_port), shared, int(target)))))
