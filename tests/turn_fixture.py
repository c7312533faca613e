"""A real coturn for the test session, shared by call and browser tests.

Import ``coturn`` into a conftest to use it. Its supervisor runs on an event loop of
its own, in a thread, so that it keeps reading coturn's output and watching the
process while tests run on theirs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ringfence.turn.coturn_config import DENIED_PEER_NETWORKS, CoturnOptions
from ringfence.turn.credentials import generate_secret
from ringfence.turn.supervisor import CoturnSupervisor


@dataclass
class Coturn:
    urls: tuple[str, ...]
    secret: str


@pytest.fixture(scope="session")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """One real coturn for the session, on a free port of 127.0.0.1."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (scripts/test installs it)")
    secret = generate_secret()
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip="127.0.0.1",
            relay_ip="127.0.0.1",
            port=0,
            min_port=40000,
            max_port=40999,
            realm="ringfence-test",
            secret=secret,
            allow_loopback_peers=True,
        ),
        workdir=tmp_path_factory.mktemp("coturn"),
        production=False,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="coturn-supervisor", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(supervisor.start(), loop).result(timeout=30)
    try:
        yield Coturn(urls=tuple(supervisor.urls), secret=secret)
    finally:
        asyncio.run_coroutine_threadsafe(supervisor.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def relay_test_address(version: int = 4) -> str:
    """A non-loopback address of this machine in a range the relay denies as a peer
    (private, CGNAT, documentation, unique local), as on a LAN, VPN or test network.
    Skips the test when the machine has none."""
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True)
    for interface in json.loads(out.stdout):
        for info in interface.get("addr_info", []):
            address = ipaddress.ip_address(info["local"])
            if (
                address.version == version
                and not address.is_loopback
                and not address.is_link_local
                and any(address in network for network in DENIED_PEER_NETWORKS)
            ):
                return str(address)
    pytest.skip(f"this machine has no private or documentation IPv{version} address")
