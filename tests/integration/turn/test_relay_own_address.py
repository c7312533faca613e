"""The relay's own address: a UDP service on it is reachable through the relay, and the
nftables rule docs/deployment.md gives closes exactly that.

In a network namespace of its own (nothing on this machine's firewall changes): a real
coturn with the production configuration on a private address, a UDP service on the
same address, and the very ``nft`` block of the documentation, with the test's
addresses put in its ``define`` lines.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringfence.turn.coturn_config import CoturnOptions, render
from ringfence.turn.credentials import generate_secret
from tests.network.netns import PREFIX, in_ns, remove_namespace, run, unavailable_reason

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
RELAY_IP = "10.99.0.1"  # private: the case where the relay allows its own address
TURN_PORT = 3478
RELAY_PORTS = (49160, 49180)
SERVICE_PORT = 5353  # say, an mDNS responder bound to every address


def documented_ruleset() -> str:
    """The ``nft`` block of docs/deployment.md, for this test's relay."""
    doc = (ROOT / "docs" / "deployment.md").read_text()
    (block,) = re.findall(r"```nft\n(.*?)```", doc, flags=re.DOTALL)
    block, n = re.subn(
        r"^define RELAY_ADDRESSES = .*$",
        f"define RELAY_ADDRESSES = {{ {RELAY_IP} }}",
        block,
        flags=re.MULTILINE,
    )
    assert n == 1, "the documented block must define RELAY_ADDRESSES"
    block, n = re.subn(
        r"^define RELAY_PORTS = .*$",
        f"define RELAY_PORTS = {RELAY_PORTS[0]}-{RELAY_PORTS[1]}",
        block,
        flags=re.MULTILINE,
    )
    assert n == 1, "the documented block must define RELAY_PORTS"
    return block


@pytest.fixture
def relay_namespace(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A namespace with a coturn on RELAY_IP (production configuration): (ns, secret)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    ns = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-relay"
    run(["ip", "netns", "add", ns])
    coturn: subprocess.Popen[bytes] | None = None
    try:
        in_ns(ns, "ip", "link", "set", "lo", "up")
        # A veth pair inside the namespace stands for the machine's network card.
        in_ns(ns, "ip", "link", "add", "rf0", "type", "veth", "peer", "name", "rf1")
        in_ns(ns, "ip", "addr", "add", f"{RELAY_IP}/24", "dev", "rf0")
        for link in ("rf0", "rf1"):
            in_ns(ns, "ip", "link", "set", link, "up")
        secret = generate_secret()
        config = tmp_path / "turnserver.conf"
        config.write_text(
            render(
                CoturnOptions(
                    listen_ip=RELAY_IP,
                    relay_ip=RELAY_IP,
                    port=TURN_PORT,
                    min_port=RELAY_PORTS[0],
                    max_port=RELAY_PORTS[1],
                    realm="ringfence",
                    secret=secret,
                ),
                production=True,
            )
        )
        config.chmod(0o600)
        assert f"allowed-peer-ip={RELAY_IP}" in config.read_text()
        with (tmp_path / "coturn.log").open("wb") as log:
            coturn = subprocess.Popen(
                ["ip", "netns", "exec", ns, "turnserver", "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        yield ns, secret
    finally:
        if coturn is not None:
            os.killpg(coturn.pid, signal.SIGKILL)
            coturn.wait()
        remove_namespace(ns)


def probe(ns: str, secret: str) -> dict[str, bool]:
    out = in_ns(
        ns,
        sys.executable,
        "-m",
        "tests.integration.turn.own_address_probe",
        RELAY_IP,
        str(TURN_PORT),
        secret,
        str(SERVICE_PORT),
    )
    result: dict[str, bool] = json.loads(out.strip().splitlines()[-1])
    return result


def test_the_documented_rule_closes_the_relays_own_address_and_keeps_calls(
    relay_namespace: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ns, secret = relay_namespace
    monkeypatch.chdir(ROOT)  # the probe runs as a module of this checkout

    # Without the rule: the service on the relay's address answers to any relay user.
    assert probe(ns, secret) == {"service_reached": True, "relay_to_relay": True}

    in_ns(ns, "nft", "-f", "-", input=documented_ruleset())

    # With it: the service is out of reach, and relayed calls go on as before.
    assert probe(ns, secret) == {"service_reached": False, "relay_to_relay": True}
