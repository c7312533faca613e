"""Which addresses a process really has sockets on, read from Linux's /proc.

coturn falls back to listening on every interface when it misses its
configuration, and a relay listening on an address Ringfence did not choose
is reachable from networks the operator never meant to serve. Asking the
kernel which sockets the coturn process holds is the only check that sees
every address at once: probing from outside can only try the addresses one
knows about.

Parsing is pure (text in, sockets out) so that it is tested without /proc;
:func:`process_sockets` is the thin part that reads the files.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ByteOrder = Literal["little", "big"]
TCP_LISTEN = 0x0A
PROC_TABLES = ("udp", "udp6", "tcp", "tcp6")


@dataclass(frozen=True)
class BoundSocket:
    """One TCP or UDP socket: its protocol, local address and port, and TCP state."""

    protocol: str  # "udp" or "tcp"
    address: IPAddress
    port: int
    state: int
    inode: int

    @property
    def listening(self) -> bool:
        return self.protocol == "tcp" and self.state == TCP_LISTEN

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        what = "listening" if self.listening else "bound"
        return f"{self.protocol} {what} on {host}:{self.port}"


def _address(hex_text: str, byteorder: ByteOrder) -> IPAddress:
    """Decode /proc/net's address: 32-bit words, each printed in host byte order."""
    words = [hex_text[i : i + 8] for i in range(0, len(hex_text), 8)]
    raw = b"".join(int(word, 16).to_bytes(4, byteorder) for word in words)
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_proc_net(
    text: str, protocol: str, byteorder: ByteOrder = sys.byteorder
) -> Iterable[BoundSocket]:
    """Parse one of /proc/net/{udp,udp6,tcp,tcp6} (see proc(5))."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local, state, inode = fields[1], fields[3], fields[9]
        host, port = local.split(":")
        yield BoundSocket(
            protocol=protocol,
            address=_address(host, byteorder),
            port=int(port, 16),
            state=int(state, 16),
            inode=int(inode),
        )


def socket_inodes(fd_targets: Iterable[str]) -> set[int]:
    """The inodes named by ``socket:[N]`` links among a process's file descriptors."""
    found = set()
    for target in fd_targets:
        if target.startswith("socket:[") and target.endswith("]"):
            found.add(int(target[len("socket:[") : -1]))
    return found


def process_sockets(
    pid: int, proc: Path = Path("/proc")
) -> tuple[list[BoundSocket], list[BoundSocket]]:
    """The TCP and UDP sockets ``pid`` holds, and those of every other process in its
    network namespace.

    Raises OSError when /proc cannot tell (not Linux, or another user's process), so
    that a caller never mistakes "cannot see" for "nothing there".
    """
    fd_dir = proc / str(pid) / "fd"
    targets = []
    for name in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(fd_dir / name))
        except FileNotFoundError:  # closed while we looked
            continue
    inodes = socket_inodes(targets)
    ours: list[BoundSocket] = []
    others: list[BoundSocket] = []
    for table in PROC_TABLES:
        text = (proc / str(pid) / "net" / table).read_text()
        for sock in parse_proc_net(text, table.rstrip("6")):
            (ours if sock.inode in inodes else others).append(sock)
    return ours, others


@dataclass(frozen=True)
class ListenPlan:
    """Where Ringfence told coturn to be: the only places its sockets may be."""

    addresses: frozenset[IPAddress] | None  # None: every address was asked for
    port: int
    tls_port: int | None
    relay_ports: tuple[int, int]

    def _allowed_address(self, address: IPAddress) -> bool:
        return self.addresses is None or address in self.addresses

    def problems(
        self, sockets: Iterable[BoundSocket], others: Iterable[BoundSocket] = ()
    ) -> list[str]:
        """What is wrong: each of coturn's ``sockets`` outside the plan, each listener
        missing, and each socket of another process (``others``) on coturn's own
        address and port, which would take a share of its traffic (SO_REUSEPORT)."""
        sockets = list(sockets)
        found = []
        low, high = self.relay_ports
        listen_ports = {self.port} | ({self.tls_port} if self.tls_port else set())
        elsewhere: dict[IPAddress, list[str]] = {}
        for sock in sockets:
            if not self._allowed_address(sock.address):
                what = f"{sock.protocol} {'listening ' if sock.listening else ''}{sock.port}"
                elsewhere.setdefault(sock.address, []).append(what)
            elif sock.listening and sock.port not in listen_ports:
                found.append(f"coturn has a {sock}, a port Ringfence did not configure")
            elif sock.protocol == "udp" and sock.port != self.port and not low <= sock.port <= high:
                found.append(f"coturn has a {sock}, outside its listening and relay ports")
        if elsewhere:
            assert self.addresses is not None
            configured = ", ".join(sorted(str(a) for a in self.addresses))
            found += [
                f"coturn has sockets on {address} ({', '.join(sorted(set(what)))}), an address "
                f"Ringfence did not tell it to use (only {configured})"
                for address, what in elsewhere.items()
            ]
        listeners = {
            (s.protocol, s.address, s.port) for s in sockets if s.listening or s.protocol == "udp"
        }
        required = [("udp", self.port), ("tcp", self.port)]
        if self.tls_port:
            required.append(("tcp", self.tls_port))
        for protocol, port in required:
            if not any(
                p == protocol and q == port and self._allowed_address(a) for p, a, q in listeners
            ):
                found.append(f"coturn holds no {protocol} socket on port {port} where it should")
        for sock in others:
            if (
                (sock.listening or sock.protocol == "udp")
                and (
                    sock.protocol,
                    sock.address,
                    sock.port,
                )
                in listeners
                and sock.port in listen_ports
            ):
                found.append(
                    f"another process also has a {sock}, where coturn listens: it would "
                    "answer part of the relay's traffic (a coturn left over from an earlier run?)"
                )
        return found
