"""Hardened coturn configuration, rendered from typed options.

A TURN relay that accepts any peer address is an open proxy into the
network it runs in: an authenticated client could make it send packets to
``127.0.0.1``, to the cloud metadata service on ``169.254.169.254`` or to
the operator's LAN. The rendered configuration therefore always denies
every private and special-purpose range as a peer, only speaks the
shared-secret credential scheme of :mod:`ringfence.turn.credentials`, and
turns off everything a WebRTC relay does not need (CLI, TCP relays, old TLS,
NAT discovery, software version disclosure).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Peers a relay must never send to. IANA's special-purpose registries
# (RFC 6890 and successors) plus multicast and broadcast.
DENIED_PEER_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
        # Not "::/128" (unspecified): coturn reads "::" in a range as "any address",
        # so "denied-peer-ip=::-::" denied every peer, public ones included. coturn
        # refuses the unspecified peer by itself (tests/integration/turn prove it).
        "::1/128",  # loopback
        "::ffff:0:0/96",  # IPv4-mapped: would reach every IPv4 range above
        "64:ff9b::/96",  # NAT64: likewise
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)

_CONFIG_SAFE = re.compile(r"[A-Za-z0-9._~+/=:@-]+")
STALE_NONCE_S = 600
DEFAULT_USER_QUOTA = 12


def network_to_range(network: IPNetwork) -> str:
    """Express a CIDR network the way coturn's ``*-peer-ip`` options take it.

    coturn only understands ``FIRST-LAST`` address ranges, not prefix
    lengths, so an off-by-one here would silently leave an address open.
    """
    return f"{network.network_address}-{network.broadcast_address}"


@dataclass(frozen=True, kw_only=True)
class CoturnOptions:
    """Everything Ringfence decides about a coturn instance.

    ``allow_loopback_peers`` exists only for the embedded single-machine
    coturn, where both callers' relayed addresses are on loopback;
    :func:`render` refuses it in production.
    """

    listen_ip: str
    realm: str
    secret: str = field(repr=False)  # keep it out of logs and tracebacks
    relay_ip: str | None = None
    external_ip: str | None = None
    port: int = 3478
    tls_port: int | None = None
    cert_file: Path | None = None
    pkey_file: Path | None = None
    min_port: int = 49152
    max_port: int = 65535
    allow_loopback_peers: bool = False
    allow_tcp_relay: bool = False
    # Allocations one TURN user may hold at once. Ringfence's user names carry a
    # stable pseudonym per account (ringfence.turn.credentials), so this is per
    # account. A browser allocates once per TURN URL it is given (2, or 3 with TURN
    # over TLS) for each peer connection, and a relay switch holds a second one for a
    # moment: 12 covers two calls doing that at once, or one on two networks.
    user_quota: int = DEFAULT_USER_QUOTA
    total_quota: int = 1000
    # The longest lifetime one Allocate or Refresh is granted (coturn's default is an
    # hour). At most the credential's TTL: an allocation lives on past its credential
    # only while its client keeps refreshing it, never on one request.
    max_allocate_lifetime_s: int = 600
    max_bps: int = 625_000  # 5 Mbit/s per session: ample for one HD video stream
    pid_file: Path | None = None
    userdb_file: Path | None = None

    def __post_init__(self) -> None:
        for name in ("listen_ip", "relay_ip", "external_ip"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"coturn {name} must be an IP address, got {value!r}") from None
            if name != "listen_ip" and address.is_unspecified:
                # Relayed candidates would carry 0.0.0.0 and no peer could reach them.
                raise ValueError(
                    f"coturn {name} must be a concrete address, not {value}; leave it unset "
                    "to relay from the address each client connected to"
                )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"coturn port must be 0..65535 (0 picks a free one), got {self.port}")
        if self.tls_port is not None:
            if not 1 <= self.tls_port <= 65535:
                raise ValueError(f"coturn tls_port must be 1..65535, got {self.tls_port}")
            if self.cert_file is None or self.pkey_file is None:
                raise ValueError("coturn tls_port needs both cert_file and pkey_file")
        if not 1024 <= self.min_port <= self.max_port <= 65535:
            raise ValueError(
                "coturn relay ports need 1024 <= min_port <= max_port <= 65535, "
                f"got {self.min_port}..{self.max_port}"
            )
        for name in ("realm", "secret"):
            if not _CONFIG_SAFE.fullmatch(getattr(self, name)):
                raise ValueError(
                    f"coturn {name} must be non-empty and use only letters, digits and ._~+/=:@-, "
                    "so that it survives coturn's config file parser"
                )
        if len(self.secret) < 16:
            raise ValueError("coturn secret must be at least 16 characters")
        for name in ("user_quota", "total_quota", "max_bps", "max_allocate_lifetime_s"):
            # coturn reads 0 as "unlimited", which is never what we want.
            if getattr(self, name) < 1:
                raise ValueError(f"coturn {name} must be at least 1, got {getattr(self, name)}")
        if self.user_quota > self.total_quota:
            raise ValueError(
                f"coturn user_quota ({self.user_quota}) must not exceed total_quota "
                f"({self.total_quota})"
            )
        for name in ("cert_file", "pkey_file", "pid_file", "userdb_file"):
            path = getattr(self, name)
            if path is None:
                continue
            if not _CONFIG_SAFE.fullmatch(str(path)):
                raise ValueError(
                    f"coturn {name} path {str(path)!r} has characters coturn cannot parse"
                )
            if not path.is_absolute():
                # coturn resolves a relative path against its own working directory
                # and config search path, not ours: it would read or write elsewhere.
                raise ValueError(f"coturn {name} must be an absolute path, got {str(path)!r}")

    @property
    def own_addresses(self) -> tuple[IPAddress, ...]:
        """The relay's own concrete addresses: where it listens, relays from, and the
        public address peers see on relayed candidates."""
        found: list[IPAddress] = []
        for candidate in (self.listen_ip, self.relay_ip, self.external_ip):
            if candidate is None:
                continue
            address = ipaddress.ip_address(candidate)
            if not address.is_unspecified and address not in found:
                found.append(address)
        return tuple(found)

    @property
    def advertised_relay_ip(self) -> IPAddress | None:
        """The address peers see on relayed candidates, if it is known in advance."""
        for candidate in (self.external_ip, self.relay_ip, self.listen_ip):
            if candidate is not None:
                address = ipaddress.ip_address(candidate)
                if not address.is_unspecified:
                    return address
        return None


def _is_denied(address: IPAddress) -> bool:
    return any(address in network for network in DENIED_PEER_NETWORKS)


def _peer_rules(options: CoturnOptions, *, production: bool) -> Iterable[str]:
    for network in DENIED_PEER_NETWORKS:
        yield f"denied-peer-ip={network_to_range(network)}"
    if options.allow_loopback_peers and not production:
        yield "allow-loopback-peers"
    # Two relayed callers reach each other relay to relay: each one's media goes to the
    # other's relayed address, which is this relay's own address. On a LAN, a VPN, a
    # CGNAT or a documentation address that address sits in a range denied above, and
    # every relayed call would fail with "A peer IP ... denied". Re-allow exactly the
    # relay's own addresses (never their networks): coturn checks allowed-peer-ip
    # before denied-peer-ip.
    #
    # Residual risk: an authenticated user can now send UDP through the relay to any
    # port of these addresses, so a UDP service bound to the relay's address (or to
    # every address) on the relay host becomes reachable as a peer. TCP is not (no
    # TCP relay), nor is loopback in production (coturn refuses loopback peers without
    # allow-loopback-peers, whatever the allowed list says), nor any other address of
    # these networks. Keep UDP services off the relay's address, or firewall them.
    own = [
        address
        for address in options.own_addresses
        if _is_denied(address) and not (address.is_loopback and production)
    ]
    if own:
        yield (
            "# The relay's own addresses, so that relayed callers reach each other. UDP "
            "services on them are reachable as peers: keep them off, or firewall them."
        )
    for address in own:
        yield f"allowed-peer-ip={address}"


def render(options: CoturnOptions, *, production: bool) -> str:
    """Return the text of a coturn config file for ``options``.

    ``production`` is the configuration for a relay reachable from other
    machines. Non-production differs only in letting loopback peers through,
    for a single-machine setup; every denial, every exception for the relay's
    own addresses and every hardening flag is identical.
    """
    if production and options.allow_loopback_peers:
        raise ValueError("allow_loopback_peers is only for a development or test coturn")
    if options.port == 0:
        raise ValueError(
            "choose a concrete coturn port before rendering (0 is only for the supervisor)"
        )

    lines = [
        "# Generated by Ringfence. Do not edit: it is rewritten whenever coturn starts.",
        f"listening-ip={options.listen_ip}",
        f"listening-port={options.port}",
    ]
    if options.relay_ip is not None:
        lines.append(f"relay-ip={options.relay_ip}")
    listen = ipaddress.ip_address(options.listen_ip)
    if listen.version == 6 and not listen.is_unspecified:
        # WebRTC clients (browsers, aiortc) do not send REQUESTED-ADDRESS-FAMILY, and
        # coturn then allocates IPv4 (RFC 6156), which an IPv6 relay does not have
        # (440). Relay in the family the client connected with instead.
        lines.append("allocation-default-address-family=keep")
    if options.external_ip is not None:
        lines.append(f"external-ip={options.external_ip}")
    lines += [
        f"min-port={options.min_port}",
        f"max-port={options.max_port}",
        # Only the shared-secret scheme: no static users, no anonymous access.
        f"realm={options.realm}",
        "use-auth-secret",
        f"static-auth-secret={options.secret}",
        "fingerprint",
        f"stale-nonce={STALE_NONCE_S}",
        f"user-quota={options.user_quota}",
        f"total-quota={options.total_quota}",
        f"max-allocate-lifetime={options.max_allocate_lifetime_s}",
        f"max-bps={options.max_bps}",
        # No management surfaces and nothing that helps fingerprint or amplify.
        "no-cli",
        "no-software-attribute",
        "no-multicast-peers",
        "no-rfc5780",
        "no-stun-backward-compatibility",
        "response-origin-only-with-rfc5780",
        # The database is never used; stop coturn polling it for changes.
        "no-dynamic-ip-list",
        "no-dynamic-realms",
        "no-auth-pings",
        # Browsers speak TLS over TCP to a turns: URL, never DTLS.
        "no-dtls",
        "no-tlsv1",
        "no-tlsv1_1",
    ]
    if options.tls_port is not None:
        lines += [
            f"tls-listening-port={options.tls_port}",
            f"cert={options.cert_file}",
            f"pkey={options.pkey_file}",
        ]
    else:
        lines.append("no-tls")
    if not options.allow_tcp_relay:
        # RFC 6062 TCP relays let a client open TCP connections to arbitrary
        # peers; WebRTC never asks for them.
        lines.append("no-tcp-relay")
    # Logs go to whoever supervises coturn (Ringfence or systemd's journal),
    # never to a file under /var/log or /tmp that other users could read.
    lines.append("log-file=stdout")
    if options.pid_file is not None:
        lines.append(f"pidfile={options.pid_file}")
    # coturn always opens a user database, though the shared secret above is all it
    # needs. A fresh SQLite file races: its threads create the tables at once, one
    # gets "database is locked" and refuses valid credentials ("Cannot find
    # credentials of user") right after a start. An in-memory database per thread has
    # nothing to share, and leaves nothing on disk.
    lines.append(f"userdb={options.userdb_file or ':memory:'}")
    lines += _peer_rules(options, production=production)
    return "\n".join(lines) + "\n"
