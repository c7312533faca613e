"""`start_turn`, as `ringfence serve` calls it: the embedded coturn from the settings,
verified, and the TURN URLs handed to clients. With a certificate it also offers TURN
over TLS (on the same certificate) and TCP beside UDP, for networks that let only TCP
or TLS through. Real coturn, real TLS, the default relative data dir."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aioice import stun
from aioice.turn import TurnClientProtocol, TurnClientTcpProtocol, TurnClientUdpProtocol

from ringfence.app import Relay, start_turn
from ringfence.clock import SystemClock
from ringfence.config import Settings
from ringfence.tls import tls_files
from ringfence.turn.supervisor import pick_free_port
from tests.integration.turn.test_coturn import allocation

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed"),
]


def where(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a turn: or turns: URL."""
    scheme, rest = url.split(":", 1)
    parts = urlsplit(f"//{rest.split('?')[0]}")
    assert parts.hostname is not None
    assert parts.port is not None
    return scheme, parts.hostname, parts.port


Start = Callable[..., Awaitable[tuple[Relay, Settings]]]


@pytest.fixture
async def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Start]:
    """Start the embedded relay from settings, as serve does, from a fresh working
    directory with the default (relative) data dir; stop whatever was started."""
    monkeypatch.chdir(tmp_path)
    started: list[Relay] = []

    async def run(**values: Any) -> tuple[Relay, Settings]:
        settings = Settings(turn_urls=[], turn_port=0, **values)
        relay = await start_turn(settings, SystemClock())
        started.append(relay)
        return relay, settings

    yield run
    for relay in started:
        assert relay.supervisor is not None
        await relay.supervisor.stop()


async def unauthenticated_allocate(
    host: str, port: int, transport: str = "udp", tls: ssl.SSLContext | None = None
) -> int | None:
    """The error code of an Allocate that carries no credentials (None if granted)."""
    loop = asyncio.get_running_loop()
    inner: asyncio.BaseTransport
    protocol: TurnClientProtocol
    if transport == "udp":
        inner, protocol = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol((host, port), None, None, 600, 500),
            remote_addr=(host, port),
        )
    else:
        inner, protocol = await loop.create_connection(
            lambda: TurnClientTcpProtocol((host, port), None, None, 600, 500),
            host=host,
            port=port,
            ssl=tls,
        )
    try:
        await protocol.connect()
    except stun.TransactionFailed as refusal:
        return refusal.response.error_code
    finally:
        inner.close()
    return None


async def test_tls_relay_offers_udp_tcp_and_tls_on_the_same_certificate(
    start: Start, tmp_path: Path
) -> None:
    tls_port = pick_free_port("127.0.0.1")
    relay, settings = await start(tls_self_signed=True, turn_tls_port=tls_port)

    urls = relay.issuer.urls
    assert [url.split("?")[1] for url in urls] == ["transport=udp"] + ["transport=tcp"] * 2
    (s1, host, port), (s2, host2, port2), (s3, host3, port3) = (where(u) for u in urls)
    assert (s1, s2, s3) == ("turn", "turn", "turns")
    assert host == host2 == host3 == "127.0.0.1"
    assert port == port2
    assert port3 == tls_port
    assert relay.addresses == {"127.0.0.1"}
    assert relay.supervisor is not None
    config = relay.supervisor.config_path.read_text().splitlines()
    files = tls_files(settings)
    assert files is not None
    assert files.cert.is_relative_to(tmp_path.resolve())  # the default data dir, made absolute
    assert f"cert={files.cert}" in config
    assert f"pkey={files.key}" in config
    assert f"tls-listening-port={tls_port}" in config

    # A client that trusts this self-signed certificate and checks that it names
    # 127.0.0.1, as a browser does once the user has accepted it.
    trusting = ssl.create_default_context(cafile=str(files.cert))
    server = relay.issuer.issue()
    async with allocation(port, server) as (_, relayed):
        assert relayed[0] == "127.0.0.1"
    async with allocation(port, server, transport="tcp") as (_, relayed):
        assert relayed[0] == "127.0.0.1"
    async with allocation(tls_port, server, transport="tcp", tls=trusting) as (_, relayed):
        assert relayed[0] == "127.0.0.1"
    # No credentials, no relay, on any of the three.
    assert await unauthenticated_allocate(host, port) == 401
    assert await unauthenticated_allocate(host, port, "tcp") == 401
    assert await unauthenticated_allocate(host, tls_port, "tcp", trusting) == 401


async def test_turn_host_names_the_relay_in_its_urls(start: Start) -> None:
    relay, _ = await start(
        tls_self_signed=True, turn_tls_port=pick_free_port("127.0.0.1"), turn_host="localhost"
    )

    assert {where(url)[1] for url in relay.issuer.urls} == {"localhost"}
    # Relay candidates still come from the relay's address, whatever the URL names.
    assert relay.addresses == {"127.0.0.1"}


async def test_without_a_certificate_the_relay_offers_udp_and_tcp(start: Start) -> None:
    relay, _ = await start()

    assert [url.split(":")[0] for url in relay.issuer.urls] == ["turn", "turn"]
    assert relay.supervisor is not None
    assert "no-tls" in relay.supervisor.config_path.read_text().splitlines()
    _, _host, port = where(relay.issuer.urls[1])
    async with allocation(port, relay.issuer.issue(), transport="tcp") as (_, relayed):
        assert relayed[0] == "127.0.0.1"
