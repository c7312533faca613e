"""Reading a process's sockets from /proc text, and judging them against the plan."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from ringfence.turn.sockets import (
    BoundSocket,
    ListenPlan,
    parse_proc_net,
    process_sockets,
    socket_inodes,
)

UDP_HEADER = (
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode ref pointer drops\n"
)
TCP6_HEADER = (
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)


def test_ipv4_lines_in_host_byte_order() -> None:
    text = UDP_HEADER + (
        "  12: 0100007F:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
        "        0 41001 2 0000000000000000 0\n"
        "  13: 020200C0:C350 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
        "        0 41002 2 0000000000000000 0\n"
    )

    found = list(parse_proc_net(text, "udp", byteorder="little"))

    assert [(str(s.address), s.port, s.inode) for s in found] == [
        ("127.0.0.1", 3478, 41001),
        ("192.0.2.2", 50000, 41002),
    ]
    assert not found[0].listening


def test_big_endian_hosts_print_the_bytes_in_order() -> None:
    text = UDP_HEADER + (
        "   0: 7F000001:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
        "        0 7 2 0000000000000000 0\n"
    )

    (found,) = parse_proc_net(text, "udp", byteorder="big")

    assert str(found.address) == "127.0.0.1"


def test_ipv6_and_ipv4_mapped_lines() -> None:
    text = TCP6_HEADER + (
        "   0: 000000FD000000000000000002000000:0D96 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0\n"
        "   1: 0000000000000000FFFF00000100007F:0D96 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 5002 1 0000000000000000 100 0\n"
    )

    first, second = parse_proc_net(text, "tcp", byteorder="little")

    assert first.address == ipaddress.ip_address("fd00::2")
    assert first.listening
    assert str(first) == "tcp listening on [fd00::2]:3478"
    # An IPv4-mapped address is the IPv4 address it maps, for the comparisons that follow.
    assert second.address == ipaddress.ip_address("127.0.0.1")


def test_socket_inodes_from_fd_links() -> None:
    links = ["socket:[41001]", "pipe:[7]", "/dev/null", "anon_inode:[eventpoll]", "socket:[9]"]

    assert socket_inodes(links) == {41001, 9}


def test_process_sockets_of_this_very_process() -> None:
    """The reader against the real /proc: a socket opened here is found, as ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]

        ours, others = process_sockets(os.getpid(), Path("/proc"))

    assert any(s.protocol == "udp" and s.port == port for s in ours)
    assert not any(s.protocol == "udp" and s.port == port for s in others)


def sock(protocol: str, address: str, port: int, *, listening: bool = False) -> BoundSocket:
    state = 0x0A if listening else (0x07 if protocol == "udp" else 0x01)
    return BoundSocket(protocol, ipaddress.ip_address(address), port, state, inode=1)


PLAN = ListenPlan(
    addresses=frozenset({ipaddress.ip_address("192.0.2.2")}),
    port=3478,
    tls_port=5349,
    relay_ports=(49160, 49999),
)
GOOD = [
    sock("udp", "192.0.2.2", 3478),
    sock("tcp", "192.0.2.2", 3478, listening=True),
    sock("tcp", "192.0.2.2", 5349, listening=True),
    sock("udp", "192.0.2.2", 49170),  # a relayed allocation
    sock("tcp", "192.0.2.2", 3478),  # a client's TCP connection
]


def test_a_relay_exactly_where_it_was_told_has_no_problems() -> None:
    assert PLAN.problems(GOOD) == []


def test_sockets_on_other_addresses_are_named_by_address() -> None:
    problems = PLAN.problems(
        [
            *GOOD,
            sock("udp", "127.0.0.1", 3478),
            sock("tcp", "127.0.0.1", 3478, listening=True),
            sock("udp", "fd00::2", 3478),
        ]
    )

    assert problems == [
        "coturn has sockets on 127.0.0.1 (tcp listening 3478, udp 3478), an address "
        "Ringfence did not tell it to use (only 192.0.2.2)",
        "coturn has sockets on fd00::2 (udp 3478), an address Ringfence did not tell it to "
        "use (only 192.0.2.2)",
    ]


def test_unexpected_ports_and_missing_listeners() -> None:
    problems = PLAN.problems(
        [
            sock("udp", "192.0.2.2", 3478),
            sock("tcp", "192.0.2.2", 3478, listening=True),
            sock("tcp", "192.0.2.2", 3479, listening=True),  # RFC 5780's alternate port
            sock("udp", "192.0.2.2", 3479),
        ]
    )

    assert problems == [
        "coturn has a tcp listening on 192.0.2.2:3479, a port Ringfence did not configure",
        "coturn has a udp bound on 192.0.2.2:3479, outside its listening and relay ports",
        "coturn holds no tcp socket on port 5349 where it should",
    ]


def test_another_process_sharing_the_relays_port_is_a_problem() -> None:
    problems = PLAN.problems(GOOD, others=[sock("udp", "192.0.2.2", 3478)])

    assert len(problems) == 1
    assert problems[0].startswith("another process also has a udp bound on 192.0.2.2:3478")
    # Other processes elsewhere are none of the relay's business.
    assert PLAN.problems(GOOD, others=[sock("udp", "127.0.0.1", 3478)]) == []


def test_a_relay_asked_to_listen_everywhere_may() -> None:
    everywhere = ListenPlan(addresses=None, port=3478, tls_port=None, relay_ports=(49160, 49999))

    assert (
        everywhere.problems(
            [sock("udp", "0.0.0.0", 3478), sock("tcp", "0.0.0.0", 3478, listening=True)]
        )
        == []
    )
