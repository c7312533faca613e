"""Client-named addresses are masked in the coturn output Ringfence logs; the relay's
own addresses, times and versions stay readable."""

from __future__ import annotations

import logging

import pytest

from ringfence.redact import MASK, AddressScrubber, scrub


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # What coturn 4.6 prints at its default level when a client asks for a peer
        # it refuses (the address comes from someone's ICE candidates).
        (
            "0: : ERROR: A peer IP 192.168.1.20 denied in the range: 192.168.0.0-192.168.255.255",
            f"0: : ERROR: A peer IP {MASK} denied in the range: {MASK}-{MASK}",
        ),
        # And in verbose mode, which Ringfence never sets, the client's own address.
        (
            "session 001000000000000001: closed (2nd stage), user <1:x> realm <ringfence> "
            "origin <>, local 203.0.113.10:3478, remote 198.51.100.7:50123, reason: timeout",
            "session 001000000000000001: closed (2nd stage), user <1:x> realm <ringfence> "
            f"origin <>, local 203.0.113.10:3478, remote {MASK}:50123, reason: timeout",
        ),
        (
            "handle_udp_packet: New UDP endpoint: local addr [2001:db8::10]:3478, "
            "remote addr [2001:db8:1:2::99]:5000",
            "handle_udp_packet: New UDP endpoint: local addr [2001:db8::10]:3478, "
            f"remote addr [{MASK}]:5000",
        ),
        ("peer fe80::1%eth0 and ::ffff:198.51.100.7", f"peer {MASK} and {MASK}"),
        # Not addresses: left alone.
        (
            "0: : OpenSSL compile-time version: OpenSSL 3.0.7 1 Nov 2022 at 12:34:56",
            "0: : OpenSSL compile-time version: OpenSSL 3.0.7 1 Nov 2022 at 12:34:56",
        ),
        ("Listener address to use: 203.0.113.10", "Listener address to use: 203.0.113.10"),
    ],
)
def test_scrub(line: str, expected: str) -> None:
    assert scrub(line, keep=["203.0.113.10", "2001:db8::10"]) == expected


def test_the_filter_rewrites_the_record_it_passes_on(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ringfence.test.redact")
    scrubber = AddressScrubber()
    scrubber.keep.add("203.0.113.10")
    logger.addFilter(scrubber)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            logger.warning(
                "coturn (pid %d) %s. Its last output:\n%s",
                42,
                "was restarted",
                "0: : ERROR: A peer IP 10.1.2.3 denied\n0: : relay 203.0.113.10 done",
            )
    finally:
        logger.removeFilter(scrubber)
    assert "10.1.2.3" not in caplog.text
    assert "coturn (pid 42) was restarted" in caplog.text
    assert "relay 203.0.113.10 done" in caplog.text
