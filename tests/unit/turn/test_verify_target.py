"""What the checks expect of a relay, derived from the options Ringfence rendered."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ringfence.turn.coturn_config import CoturnOptions
from ringfence.turn.verify import target_for

SECRET = "0123456789abcdef0123456789abcdef"


def test_a_relay_behind_nat_is_probed_locally_and_relays_from_its_public_address() -> None:
    options = CoturnOptions(
        listen_ip="10.0.0.5",
        relay_ip="10.0.0.5",
        external_ip="203.0.113.7",
        port=3478,
        tls_port=5349,
        cert_file=Path("/etc/ringfence/cert.pem"),
        pkey_file=Path("/etc/ringfence/key.pem"),
        min_port=49160,
        max_port=49999,
        realm="ringfence",
        secret=SECRET,
    )

    target = target_for(options, "10.0.0.5")

    assert (target.host, target.port, target.tls_port) == ("10.0.0.5", 3478, 5349)
    assert target.plan.addresses == {ipaddress.ip_address("10.0.0.5")}
    assert target.plan.relay_ports == (49160, 49999)
    assert target.relayed_addresses == {"203.0.113.7"}  # what clients see
    assert target.allowed_peers == {"10.0.0.5", "203.0.113.7"}  # never a "denied" probe
    assert target.cert_file == Path("/etc/ringfence/cert.pem")
    assert SECRET not in repr(target)


def test_a_relay_on_every_address_may_hold_sockets_anywhere() -> None:
    options = CoturnOptions(
        listen_ip="0.0.0.0", external_ip="203.0.113.7", realm="ringfence", secret=SECRET
    )

    target = target_for(options, "127.0.0.1")

    assert target.plan.addresses is None
    assert target.relayed_addresses == {"203.0.113.7"}
