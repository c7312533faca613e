"""Two homes behind NAT routers and a public side, in Linux network namespaces.

::

    home A host ──lan── router A ══wan══╗                    ╔══wan══ router B ──lan── home B host
    10.1.0.2           10.1.0.1          ║   public (pub)     ║          10.2.0.1          10.2.0.2
                       198.51.100.2 ─── wa 198.51.100.1      wb 198.51.100.5 ─── 198.51.100.6
                                             203.0.113.10 (lo): ringfence serve + coturn

The public namespace routes between the two WAN links the way the internet would, so
a home-to-home packet has to cross both captured links (``wa`` and ``wb``) and
nothing can reach a home except through its router. No namespace has a route out:
the public one has no default route, and no veth has an end in the root namespace.

Everything is made with Debian's iproute2, nftables and tcpdump. Names carry the pid
of the test run and a random token, so two runs never collide, and namespaces left
behind by a run that was killed are removed by the next one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NatKind = Literal["masquerade", "full-cone"]

PREFIX = "rfnet-"
SERVER_ADDRESS = "203.0.113.10"  # TEST-NET-3: the "public" address of the server
TOOLS = ("ip", "nft", "tcpdump", "turnserver")
# `ip netns exec NS` bind-mounts the files of /etc/netns/NS over /etc (iproute2's way
# to give a namespace its own resolv.conf).
NETNS_ETC = Path("/etc/netns")
_STALE = re.compile(rf"^{PREFIX}(\d+)-[0-9a-f]+-")


def run(argv: list[str], *, check: bool = True, input: str | None = None) -> str:
    """Run a command; on failure raise with its output (never silently)."""
    done = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def in_ns(ns: str, *argv: str, check: bool = True, input: str | None = None) -> str:
    return run(["ip", "netns", "exec", ns, *argv], check=check, input=input)


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if not os.path.isdir("/proc/sys/net"):
        return "not a Linux machine with /proc/sys/net"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs scripts/test as root)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/test installs them)"
    probe = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        run(["ip", "netns", "add", probe])
    except (RuntimeError, OSError) as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        in_ns(probe, "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        in_ns(probe, "nft", "-f", "-", input="table ip probe {\n}\n")
    except (RuntimeError, OSError) as exc:
        return f"namespaces work but veth or nftables do not: {exc}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_namespace(ns: str) -> None:
    """Stop what still runs in a namespace of this suite, then delete it."""
    pids = run(["ip", "netns", "pids", ns], check=False).split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def remove_stale_namespaces() -> list[str]:
    """Namespaces of earlier runs of this suite whose pytest process is gone (killed
    before its clean-up ran). Those of runs still alive are left alone."""
    names = {line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()}
    if NETNS_ETC.is_dir():
        names |= {entry.name for entry in NETNS_ETC.iterdir()}
    removed = []
    for name in sorted(names):
        match = _STALE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            remove_namespace(name)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class Home:
    """One home: a host on a LAN behind a NAT router with one WAN address."""

    label: str  # "A" or "B"
    host_ns: str
    router_ns: str
    lan: ipaddress.IPv4Network
    wan: str
    wan_gateway: str  # the public side's end of the WAN link
    public_link: str  # that end's interface name, in the public namespace

    @property
    def host(self) -> str:
        return str(self.lan.network_address + 2)

    @property
    def router_lan(self) -> str:
        return str(self.lan.network_address + 1)

    @property
    def addresses(self) -> frozenset[str]:
        """Every address that would say where this home is: its LAN and its NAT."""
        return frozenset({self.host, self.router_lan, self.wan})

    def owns(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return parsed in self.lan or address == self.wan


class Topology:
    """The namespaces, links, routes and NAT rules; :meth:`destroy` removes them all."""

    def __init__(self) -> None:
        run_id = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.public_ns = f"{run_id}-pub"
        self.homes = (
            Home(
                "A",
                f"{run_id}-ha",
                f"{run_id}-ra",
                ipaddress.IPv4Network("10.1.0.0/24"),
                "198.51.100.2",
                "198.51.100.1",
                "wa",
            ),
            Home(
                "B",
                f"{run_id}-hb",
                f"{run_id}-rb",
                ipaddress.IPv4Network("10.2.0.0/24"),
                "198.51.100.6",
                "198.51.100.5",
                "wb",
            ),
        )
        self.namespaces: list[str] = []

    @property
    def a(self) -> Home:
        return self.homes[0]

    @property
    def b(self) -> Home:
        return self.homes[1]

    def create(self) -> None:
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _add_namespace(self, ns: str, *, forward: bool) -> None:
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
        # IPv4 only: no link-local IPv6 either, so the addresses below are all there is.
        for key in ("all", "default"):
            in_ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
        in_ns(ns, "sysctl", "-qw", f"net.ipv4.ip_forward={1 if forward else 0}")
        if Path("/etc/resolv.conf").exists():
            # No resolver outside: a name looked up in a home (Chromium does) is asked
            # of the namespace's own loopback and fails there, instead of leaving the
            # home toward this machine's nameserver.
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "resolv.conf").write_text("nameserver 127.0.0.1\n")

    def _create(self) -> None:
        pub = self.public_ns
        self._add_namespace(pub, forward=True)
        in_ns(pub, "ip", "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo")
        for home in self.homes:
            self._add_namespace(home.router_ns, forward=True)
            self._add_namespace(home.host_ns, forward=False)
            # The WAN link: public side <-> router (both ends made inside namespaces).
            link = home.public_link
            in_ns(
                pub,
                "ip",
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                "wan",
                "netns",
                home.router_ns,
            )
            in_ns(pub, "ip", "addr", "add", f"{home.wan_gateway}/30", "dev", link)
            in_ns(pub, "ip", "link", "set", link, "up")
            in_ns(home.router_ns, "ip", "addr", "add", f"{home.wan}/30", "dev", "wan")
            in_ns(home.router_ns, "ip", "link", "set", "wan", "up")
            in_ns(home.router_ns, "ip", "route", "add", "default", "via", home.wan_gateway)
            # The LAN link: router <-> host.
            in_ns(
                home.router_ns,
                "ip",
                "link",
                "add",
                "lan",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                home.host_ns,
            )
            prefix = home.lan.prefixlen
            in_ns(home.router_ns, "ip", "addr", "add", f"{home.router_lan}/{prefix}", "dev", "lan")
            in_ns(home.router_ns, "ip", "link", "set", "lan", "up")
            in_ns(home.host_ns, "ip", "addr", "add", f"{home.host}/{prefix}", "dev", "eth0")
            in_ns(home.host_ns, "ip", "link", "set", "eth0", "up")
            in_ns(home.host_ns, "ip", "route", "add", "default", "via", home.router_lan)
            self.set_router(home, "masquerade")
        self.check_closed()

    def check_closed(self) -> None:
        """Nothing routes out: the public side has no default route, and every
        interface of every namespace is one of ours (veth ends and lo)."""
        routes = json.loads(in_ns(self.public_ns, "ip", "-j", "route", "show"))
        assert not [r for r in routes if r.get("dst") == "default"], routes
        expected = {self.public_ns: {"lo", "wa", "wb"}}
        for home in self.homes:
            expected[home.router_ns] = {"lo", "wan", "lan"}
            expected[home.host_ns] = {"lo", "eth0"}
        for ns, names in expected.items():
            links = {link["ifname"] for link in json.loads(in_ns(ns, "ip", "-j", "link", "show"))}
            assert links == names, (ns, links)

    def set_router(self, home: Home, nat: NatKind, *, block_udp: bool = False) -> None:
        """Replace the router's whole ruleset: MASQUERADE (a port-restricted NAT, like
        most home routers), or full cone (every inbound UDP packet on the WAN goes to
        the host, and the host's UDP ports are kept), and optionally drop every UDP
        packet the home sends out (a network that allows only TCP)."""
        pre, post = [], []
        if nat == "full-cone":
            pre.append(f'iifname "wan" meta l4proto udp dnat to {home.host}')
            post.append(f'oifname "wan" ip saddr {home.host} meta l4proto udp snat to {home.wan}')
        post.append('oifname "wan" masquerade')
        rules = [
            "flush ruleset",
            "table ip rf_nat {",
            "  chain prerouting {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *(f"    {rule}" for rule in pre),
            "  }",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            *(f"    {rule}" for rule in post),
            "  }",
            "}",
        ]
        if block_udp:
            rules += [
                "table inet rf_filter {",
                "  chain forward {",
                "    type filter hook forward priority filter; policy accept;",
                '    iifname "lan" meta l4proto udp counter drop',
                "  }",
                "}",
            ]
        in_ns(home.router_ns, "nft", "-f", "-", input="\n".join(rules) + "\n")

    def udp_dropped(self, home: Home) -> int:
        """Packets the UDP block of this home's router dropped so far."""
        text = in_ns(home.router_ns, "nft", "list", "table", "inet", "rf_filter", check=False)
        match = re.search(r"counter packets (\d+)", text)
        return int(match.group(1)) if match else 0

    def destroy(self) -> None:
        for ns in reversed(self.namespaces):
            remove_namespace(ns)
        self.namespaces.clear()


# --- packet captures -------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    protocol: str  # udp, tcp, icmp or the IP protocol number
    sport: int | None
    dport: int | None


class Capture:
    """tcpdump on one interface of a namespace, writing a pcap file."""

    def __init__(self, ns: str, interface: str, path: Path) -> None:
        self.ns = ns
        self.interface = interface
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                "tcpdump",
                "-i",
                self.interface,
                "-n",
                "-U",
                "-Z",
                "root",
                "-s",
                "128",
                "-w",
                str(self.path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self._proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        seen = b""
        while b"listening on" not in seen:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump on {self.interface} did not start: {seen!r}")
            if selector.select(0.1):
                seen += os.read(self._proc.stderr.fileno(), 4096)
        selector.close()

    def stop(self) -> list[Packet]:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGINT)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(10)
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        return read_pcap(self.path)


_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}


def read_pcap(path: Path | str) -> list[Packet]:
    """The IPv4 packets of a classic pcap file of an Ethernet link (what tcpdump -w
    writes for a veth). Anything else on the link (ARP) carries no IP packet."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path} is not a pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet (1)")
    packets = []
    offset = 24
    while offset + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[offset + 8 : offset + 12])[0]
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        proto = ip[9]
        src = str(ipaddress.IPv4Address(ip[12:16]))
        dst = str(ipaddress.IPv4Address(ip[16:20]))
        sport = dport = None
        if proto in (6, 17) and len(ip) >= header + 4:
            sport, dport = struct.unpack("!HH", ip[header : header + 4])
        packets.append(Packet(src, dst, _PROTOCOLS.get(proto, str(proto)), sport, dport))
    return packets


def between(packets: Iterable[Packet], one: Home, other: Home) -> list[Packet]:
    """Packets from an address of one home to an address of the other, either way."""
    return [
        p
        for p in packets
        if (one.owns(p.src) and other.owns(p.dst)) or (other.owns(p.src) and one.owns(p.dst))
    ]
