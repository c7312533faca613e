"""The network suite's moving parts: ``ringfence serve`` in the public namespace, the
worst-case peers in the homes, packet captures, and the checks of what each device
received.

Everything a home does goes through its router: the test process itself sits in the
root namespace and cannot reach the server, which is the point. Setting up accounts
and placing calls is therefore done by ``peer.py`` inside the homes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.network.netns import (
    SERVER_ADDRESS,
    Capture,
    Home,
    NatKind,
    Packet,
    Topology,
    between,
    remove_stale_namespaces,
)

PEER = Path(__file__).with_name("peer.py")
PYTHON = Path(sys.executable)
RINGFENCE = PYTHON.parent / "ringfence"
PORT = 8443  # the namespace is fresh, so any port is free
CALLER_TONE_HZ = 440.0
CALLEE_TONE_HZ = 660.0
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


@dataclass
class Figure:
    """One row of the summary table: what the captures saw in one case."""

    case: str
    nat: str
    link_a: int
    link_b: int
    route: str


class Network:
    """The topology plus one ``ringfence serve`` (with its embedded coturn) on the
    public address, started once and shared by every test of the suite."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.topology = Topology()
        self.data_dir = workdir / "ringfence-data"
        self.server_log = workdir / "server.log"
        self._server: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self.figures: list[Figure] = []

    @property
    def url(self) -> str:
        return f"https://{SERVER_ADDRESS}:{PORT}"

    @property
    def cafile(self) -> Path:
        """The server's self-signed certificate: the peers trust exactly this one."""
        return self.data_dir / "tls" / "self-signed.crt"

    @property
    def a(self) -> Home:
        return self.topology.a

    @property
    def b(self) -> Home:
        return self.topology.b

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        remove_stale_namespaces()
        self.topology.create()
        try:
            self._start_server()
        except BaseException:
            self.stop()
            raise

    def _start_server(self) -> None:
        # The defaults, as a person would run it on a LAN: SQLite in the data dir, the
        # embedded coturn on the --host address, HTTPS with a self-signed certificate
        # (browsers only give the microphone to a secure origin off loopback).
        serve = [str(RINGFENCE), "serve", "--host", SERVER_ADDRESS, "--port", str(PORT)]
        serve += ["--data-dir", str(self.data_dir), "--tls-self-signed"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
        with self.server_log.open("ab") as log:
            self._server = subprocess.Popen(
                ["ip", "netns", "exec", self.topology.public_ns, *serve],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        # Healthy as seen from a home, through its NAT: the path every test uses.
        health = self.spawn(self.a, "health", "--timeout", "90", name="health")
        deadline = time.monotonic() + 100
        while health.poll() is None:
            if self._server.poll() is not None:
                raise AssertionError(f"ringfence serve exited:\n{self.server_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"ringfence serve never became healthy:\n{self.server_tail()}")
            time.sleep(0.1)
        if health.returncode != 0:
            raise AssertionError(
                f"ringfence serve is not reachable from home A:\n{self.peer_log('health')}\n"
                f"{self.server_tail()}"
            )

    def server_tail(self) -> str:
        try:
            return self.server_log.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return "(no server log)"

    def stop(self) -> None:
        for child in self._children:
            kill_group(child, signal.SIGKILL)
        self._children.clear()
        if self._server is not None:
            kill_group(self._server, signal.SIGTERM, grace=20)
            self._server = None
        self.topology.destroy()

    # --- processes in the homes ------------------------------------------------------

    def spawn(self, home: Home, command: str, *args: str, name: str) -> subprocess.Popen[bytes]:
        """``peer.py COMMAND`` inside a home's LAN namespace, against this server; its
        stderr goes to ``name``.log, its report (``--out``) to ``name``.json."""
        argv = [str(PYTHON), str(PEER), command, "--server", self.url, "--cafile", str(self.cafile)]
        argv += [*args, "--out", str(self.workdir / f"{name}.json")]
        with (self.workdir / f"{name}.log").open("ab") as log:
            child = subprocess.Popen(
                ["ip", "netns", "exec", home.host_ns, *argv],
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._children.append(child)
        return child

    def peer_log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def finish(
        self, child: subprocess.Popen[bytes], name: str, timeout: float, *, check: bool = True
    ) -> dict[str, Any]:
        """Wait for a peer to end and return its report. ``check``: fail at once if the
        peer failed; otherwise its errors (and log) are in the report for the test to
        judge, so that a failed call still leaves its figures."""
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(child, signal.SIGKILL)
            raise AssertionError(f"peer {name} timed out:\n{self.peer_log(name)}") from None
        path = self.workdir / f"{name}.json"
        if not path.exists():
            raise AssertionError(f"peer {name} wrote no report:\n{self.peer_log(name)}")
        report: dict[str, Any] = json.loads(path.read_text())
        if child.returncode != 0:
            assert not check, f"peer {name}: {report['errors']}\n{self.peer_log(name)}"
            report["errors"].append(f"log of {name}:\n{self.peer_log(name)}")
        return report

    def peer(self, home: Home, command: str, *args: str, name: str) -> dict[str, Any]:
        """Run one peer command to the end and return its report."""
        return self.finish(self.spawn(home, command, *args, name=name), name, timeout=120)

    def answering(self, home: Home, username: str, name: str) -> subprocess.Popen[bytes]:
        """A callee waiting for a call: returns once it is signed in and listening."""
        tone = str(CALLEE_TONE_HZ)
        child = self.spawn(home, "answer", "--username", username, "--tone", tone, name=name)
        assert child.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(child.stdout, selectors.EVENT_READ)
        seen = b""
        deadline = time.monotonic() + 30
        try:
            while b"READY" not in seen:
                if child.poll() is not None or time.monotonic() > deadline:
                    kill_group(child, signal.SIGKILL)
                    raise AssertionError(f"peer {name} never became ready:\n{self.peer_log(name)}")
                if selector.select(0.1):
                    seen += os.read(child.stdout.fileno(), 4096)
        finally:
            selector.close()
        return child

    def set_routers(self, nat_a: NatKind, nat_b: NatKind, *, block_udp_b: bool = False) -> None:
        self.topology.set_router(self.a, nat_a)
        self.topology.set_router(self.b, nat_b, block_udp=block_udp_b)

    @contextlib.contextmanager
    def captures(self, label: str) -> Iterator[dict[str, list[Packet]]]:
        """tcpdump on both WAN links (the public side's ends) for the duration; the
        packets are in the yielded dict (``"A"``, ``"B"``) afterwards."""
        result: dict[str, list[Packet]] = {}
        running = []
        try:
            for home in self.topology.homes:
                capture = Capture(
                    self.topology.public_ns,
                    home.public_link,
                    self.workdir / f"{label}-link-{home.label}.pcap",
                )
                capture.start()
                running.append((home, capture))
            yield result
        finally:
            for home, capture in running:
                result[home.label] = capture.stop()


def kill_group(child: subprocess.Popen[bytes], sig: signal.Signals, grace: float = 5) -> None:
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    if child.stdout is not None:
        child.stdout.close()


# --- one call between the homes ------------------------------------------------------


@dataclass
class Device:
    """Everything one device received and sent, over all its peer.py runs."""

    home: Home
    username: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    # peer.py, which sends every candidate it has; a browser sends what it was told to.
    worst_case: bool = True

    @property
    def call(self) -> dict[str, Any]:
        """The report of the call itself (the last run)."""
        return self.reports[-1]

    def received_texts(self) -> list[str]:
        texts = [entry["body"] for report in self.reports for entry in report["http"]]
        texts += [json.dumps(f) for report in self.reports for f in report["frames_received"]]
        return texts

    def sent_texts(self) -> list[str]:
        return [json.dumps(f) for report in self.reports for f in report["frames_sent"]]


@dataclass
class CallResult:
    caller: Device
    callee: Device
    packets: dict[str, list[Packet]]


def new_username(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def run_call(
    net: Network,
    label: str,
    *,
    caller_direct: str | None = None,
    callee_direct: str | None = None,
    talk_s: float = 4.0,
) -> CallResult:
    """A (home A) calls B (home B); both are worst-case aiortc peers. Everything from
    sign-up to hang-up happens inside the captures."""
    caller = Device(net.a, new_username("alice"))
    callee = Device(net.b, new_username("bob"))
    with net.captures(label) as packets:
        setup_pair(net, label, caller, callee, caller_direct, callee_direct)
        answering = net.answering(callee.home, callee.username, f"{label}-callee")
        try:
            call = ["--username", caller.username, "--to", callee.username]
            call += ["--tone", str(CALLER_TONE_HZ), "--talk", str(talk_s)]
            calling = net.spawn(caller.home, "call", *call, name=f"{label}-caller")
            caller.reports.append(net.finish(calling, f"{label}-caller", 120, check=False))
            callee.reports.append(net.finish(answering, f"{label}-callee", 60, check=False))
        finally:
            kill_group(answering, signal.SIGKILL)
    return CallResult(caller, callee, packets)


def setup_pair(
    net: Network,
    label: str,
    caller: Device,
    callee: Device,
    caller_direct: str | None,
    callee_direct: str | None,
) -> None:
    """Sign both up and make them able to call under default settings (the callee
    follows the caller, the caller messages the callee), plus any direct setting."""
    args = ["--sign-up", "--username", caller.username]
    if caller_direct:
        args += ["--direct", caller_direct]
    caller.reports.append(net.peer(caller.home, "account", *args, name=f"{label}-caller-signup"))
    args = ["--sign-up", "--username", callee.username, "--follow", caller.username]
    if callee_direct:
        args += ["--direct", callee_direct]
    callee.reports.append(net.peer(callee.home, "account", *args, name=f"{label}-callee-signup"))
    args = ["--username", caller.username, "--message", callee.username]
    caller.reports.append(net.peer(caller.home, "account", *args, name=f"{label}-caller-message"))


# --- checks ------------------------------------------------------------------------------


def addresses_in(texts: list[str]) -> set[str]:
    found = set()
    for text in texts:
        for match in _IPV4.findall(text):
            with contextlib.suppress(ValueError):
                found.add(str(ipaddress.IPv4Address(match)))
    return found


def foreign_addresses(device: Device, other: Home) -> set[str]:
    """The other home's addresses (LAN or NAT) in anything this device received."""
    return {a for a in addresses_in(device.received_texts()) if other.owns(a)}


def home_to_home(result: CallResult, net: Network) -> dict[str, list[Packet]]:
    return {label: between(packets, net.a, net.b) for label, packets in result.packets.items()}


def describe_route(result: CallResult) -> str:
    """``relay->relay (relay over: A udp, B tcp)``: the types of the caller's nominated
    pair, and how each side reached the relay ("-" when it did not use it)."""

    def pair(device: Device) -> dict[str, Any]:
        selected: dict[str, Any] | None = device.call.get("selected_pair")
        return selected or {}

    first = pair(result.caller)
    types = f"{first.get('local', {}).get('type', '?')}->{first.get('remote', {}).get('type', '?')}"
    via = ", ".join(
        f"{d.home.label} {pair(d).get('local_relay_transport') or '-'}"
        for d in (result.caller, result.callee)
    )
    return f"{types} (relay over: {via})"


def record(net: Network, case: str, nat: str, result: CallResult) -> dict[str, list[Packet]]:
    """Count home-to-home packets on each link and keep them for the summary table."""
    crossing = home_to_home(result, net)
    a, b = len(crossing.get("A", [])), len(crossing.get("B", []))
    net.figures.append(Figure(case, nat, a, b, describe_route(result)))
    return crossing


def assert_private(result: CallResult, net: Network) -> None:
    """The whole privacy invariant for a call that must be relayed: no packet crossed
    between the homes, every packet on a home's link was between that home's NAT and
    the server, neither device received any address of the other home, and the
    worst-case peers did try (their own addresses were in what they sent)."""
    crossing = home_to_home(result, net)
    assert crossing == {"A": [], "B": []}, f"packets between the homes: {crossing}"
    for home in net.topology.homes:
        packets = result.packets[home.label]
        strangers = [p for p in packets if {p.src, p.dst} != {home.wan, SERVER_ADDRESS}]
        assert not strangers, f"link {home.label} carried more than home<->server: {strangers[:10]}"
    for device, other in ((result.caller, net.b), (result.callee, net.a)):
        leaked = foreign_addresses(device, other)
        assert not leaked, f"{device.username} (home {device.home.label}) received {leaked}"
        if device.worst_case:
            # The other side of the same check: this peer did hand its own host address
            # to the server, which had to keep it from the other device.
            sent = addresses_in(device.sent_texts())
            assert device.home.host in sent, (device.username, sorted(sent))


def assert_relayed_with_audio(result: CallResult) -> None:
    """Both ends were told to relay, connected relay to relay, and each heard the other's
    tone."""
    for device, tone in ((result.caller, CALLEE_TONE_HZ), (result.callee, CALLER_TONE_HZ)):
        report = device.call
        assert report["policy_from_server"] == "relay", report["policy_from_server"]
        assert report["connected"], report["errors"]
        pair = report["selected_pair"]
        assert pair is not None, "no nominated pair"
        assert (pair["local"]["type"], pair["remote"]["type"]) == ("relay", "relay"), pair
        assert pair["local"]["address"] == pair["remote"]["address"] == SERVER_ADDRESS, pair
        audio = report["audio"]
        assert audio["frames"] > 50, audio
        assert audio["dominant_hz"] is not None, audio
        assert abs(audio["dominant_hz"] - tone) < 10, audio
