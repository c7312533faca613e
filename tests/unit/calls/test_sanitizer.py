"""Tests for the SDP / ICE candidate sanitizer.

The relay-only tests check the output text itself for addresses, independently
of how the sanitizer finds them: that is the property users rely on.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from typing import Literal, TypeVar

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ringfence.calls.sanitizer import (
    MAX_CANDIDATE_BYTES,
    MAX_SDP_BYTES,
    Candidate,
    CandidateType,
    SignalingError,
    Transport,
    format_candidate,
    normalise_relay_addresses,
    parse_candidate,
    sanitize_candidate,
    sanitize_sdp,
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_R = TypeVar("_R")
PLACEHOLDERS: frozenset[IpAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("0.0.0.0", "::", "127.0.0.1", "::1")
)
FINGERPRINT = ":".join(f"{i:02X}" for i in range(7, 39))
MDNS = "5b6f7c1e-3c9a-4d55-9a52-0e7b9c0d1a2b.local"

CHROME_OFFER = f"""v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 2bd7a1c4-5d3e-4f4f-9a0e-0d9c5f9b9a11
m=audio 58123 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 203.0.113.45
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 {MDNS} 58123 typ host generation 0 network-id 1 network-cost 10
a=candidate:1467250028 1 udp 2122262783 2001:db8::45 58124 typ host generation 0 network-id 2 network-cost 10
a=candidate:2999745851 1 udp 1686052607 203.0.113.45 58123 typ srflx raddr 0.0.0.0 rport 0 generation 0 network-id 1 network-cost 10
a=candidate:3825423101 1 udp 41885439 198.51.100.20 61234 typ relay raddr 203.0.113.45 rport 58123 generation 0 network-id 1 network-cost 10
a=candidate:1061826091 1 tcp 1518280447 {MDNS} 9 typ host tcptype active generation 0 network-id 1 network-cost 10
a=ice-ufrag:Xk2f
a=ice-pwd:7bqE1yN3vZ0x3mF5cR2kL8pQ
a=ice-options:trickle
a=fingerprint:sha-256 {FINGERPRINT}
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:2bd7a1c4-5d3e-4f4f-9a0e-0d9c5f9b9a11 0f3b7c86-1111-4c2d-8e9f-0a1b2c3d4e5f
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3815112581 cname:Y0ugxVpZq1L2b3Cd
a=ssrc:3815112581 msid:2bd7a1c4-5d3e-4f4f-9a0e-0d9c5f9b9a11 0f3b7c86-1111-4c2d-8e9f-0a1b2c3d4e5f
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
b=AS:2000
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Xk2f
a=ice-pwd:7bqE1yN3vZ0x3mF5cR2kL8pQ
a=ice-options:trickle
a=fingerprint:sha-256 {FINGERPRINT}
a=setup:actpass
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=end-of-candidates
"""  # noqa: E501

FIREFOX_ANSWER = f"""v=0
o=mozilla...THIS_IS_SDPARTA-128.0 6071236513325318617 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 {FINGERPRINT}
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 49152 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP6 2001:db8::33
a=candidate:0 1 UDP 2122252543 {MDNS} 49152 typ host
a=candidate:2 1 TCP 2105524479 {MDNS} 9 typ host tcptype active
a=candidate:1 1 UDP 1686052863 2001:db8::33 49152 typ srflx raddr 0.0.0.0 rport 0
a=candidate:3 1 UDP 92217343 198.51.100.7 50000 typ relay raddr 2001:db8::33 rport 49152
a=remote-candidates:1 192.0.2.99 40000
a=sendrecv
a=end-of-candidates
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=fmtp:101 0-15
a=ice-pwd:4f1b0c3e5d9a8b7c6d5e4f3a2b1c0d9e
a=ice-ufrag:9a8b7c6d
a=mid:0
a=msid:{{a6d4e2f1-0000-4000-8000-000000000001}} {{b7e5f3a2-0000-4000-8000-000000000002}}
a=rtcp:49153 IN IP6 2001:db8::33
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:101 telephone-event/8000
a=setup:active
a=ssrc:1234567 cname:{{c1d2e3f4-0000-4000-8000-000000000003}}
"""

# What in each sample locates a user (the TURN relays 198.51.100.x do not).
SAMPLES = [
    pytest.param(CHROME_OFFER, ["203.0.113.45", "2001:db8::45", MDNS], id="chrome"),
    pytest.param(FIREFOX_ANSWER, ["2001:db8::33", "192.0.2.99", MDNS], id="firefox"),
]


def contains_address(text: str, address: str) -> bool:
    """Does ``address`` occur in ``text`` as a whole literal (not inside a longer one)?"""
    pattern = rf"(?<![0-9A-Za-z:.]){re.escape(address)}(?![0-9A-Za-z:.])"
    return re.search(pattern, text) is not None


def address_tokens(text: str) -> set[IpAddress]:
    """Every whitespace-separated token of ``text`` that is an IP literal."""
    found: set[IpAddress] = set()
    for token in text.split():
        try:
            found.add(ipaddress.ip_address(token))
        except ValueError:
            continue
    return found


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


# --- candidate grammar ----------------------------------------------------------


def test_parse_chrome_relay_candidate_with_extensions() -> None:
    c = parse_candidate(
        "candidate:3825423101 1 udp 41885439 198.51.100.20 61234 typ relay "
        "raddr 203.0.113.45 rport 58123 generation 0 ufrag Xk2f network-id 1 network-cost 10"
    )
    assert c == Candidate(
        foundation="3825423101",
        component=1,
        transport=Transport.UDP,
        priority=41885439,
        address="198.51.100.20",
        port=61234,
        type=CandidateType.RELAY,
        related_address="203.0.113.45",
        related_port=58123,
        extensions=(
            ("generation", "0"),
            ("ufrag", "Xk2f"),
            ("network-id", "1"),
            ("network-cost", "10"),
        ),
    )


def test_parse_normalises_case_and_ipv6_spelling() -> None:
    c = parse_candidate("0 1 UDP 2122252543 2001:DB8:0::0045 49152 TYP Host")
    assert (c.transport, c.type, c.address) == (Transport.UDP, CandidateType.HOST, "2001:db8::45")
    assert parse_candidate(f"0 1 udp 1 {MDNS.upper()} 9 typ host").address == MDNS


def test_parse_tcp_candidate_keeps_tcptype() -> None:
    c = parse_candidate(f"a=candidate:1061826091 1 tcp 1518280447 {MDNS} 9 typ host tcptype active")
    assert c.transport is Transport.TCP
    assert c.extensions == (("tcptype", "active"),)


def test_prefixes_are_optional_and_equivalent() -> None:
    body = "842163049 1 udp 1677729535 192.0.2.7 3478 typ srflx raddr 10.0.0.2 rport 5000"
    assert parse_candidate(body) == parse_candidate("candidate:" + body)
    assert parse_candidate(body) == parse_candidate("a=candidate:" + body)


def test_format_is_canonical() -> None:
    line = "a=candidate:1 2 UDP 3 2001:0DB8::1 4 typ prflx raddr 2001:db8::2 rport 5 generation 0"
    assert format_candidate(parse_candidate(line)) == (
        "candidate:1 2 udp 3 2001:db8::1 4 typ prflx raddr 2001:db8::2 rport 5 generation 0"
    )


@pytest.mark.parametrize(
    "line",
    [
        "",
        "candidate:",
        "1 1 udp 1 192.0.2.1 9",  # no typ
        "1 1 udp 1 192.0.2.1 9 type host",
        "1 0 udp 1 192.0.2.1 9 typ host",  # component 0
        "1 257 udp 1 192.0.2.1 9 typ host",
        "1 +1 udp 1 192.0.2.1 9 typ host",
        "1 1 udp 4294967296 192.0.2.1 9 typ host",  # priority > uint32
        "1 1 udp -1 192.0.2.1 9 typ host",
        "1 1 udp 1 192.0.2.1 65536 typ host",
        "1 1 sctp 1 192.0.2.1 9 typ host",
        "1 1 udp 1 192.0.2.1 9 typ stun",
        "1 1 udp 1 192.0.2.256 9 typ host",
        "1 1 udp 1 192.000.2.1 9 typ host",  # leading zeros are ambiguous (octal?)
        "1 1 udp 1 fe80::1%eth0 9 typ host",  # zone ids
        "1 1 udp 1 example.com 9 typ host",  # only <uuid>.local names
        f"1 1 udp 1 {MDNS} 9 typ relay",  # a relay address is always an IP
        "1 1 udp 1 192.0.2.1 9 typ srflx raddr 10.0.0.1",  # raddr without rport
        "1 1 udp 1 192.0.2.1 9 typ srflx rport 9",
        "1 1 udp 1 192.0.2.1 9 typ srflx raddr 10.0.0.1 rport 70000",
        "1 1 udp 1 192.0.2.1 9 typ host generation",  # dangling extension name
        "1 1 udp 1 192.0.2.1 9 typ relay generation 0 raddr 10.0.0.1",  # smuggled raddr
        "1 1 udp 1 192.0.2.1 9 typ host typ relay",
        "1 1 udp 1 192.0.2.1 9 typ host generation 0 generation 1",
        "1 1 tcp 1 192.0.2.1 9 typ host tcptype sideways",
        "1 1  udp 1 192.0.2.1 9 typ host",  # double space
        " 1 1 udp 1 192.0.2.1 9 typ host",
        "1 1 udp 1 192.0.2.1 9 typ host\r\n",
        "1 1 udp 1 192.0.2.1 9 typ host\tx y",
        "1 1 udp 1 192.0.2.1 9 typ host x-é y",
        "f" * 33 + " 1 udp 1 192.0.2.1 9 typ host",  # foundation longer than 32
        "a:b 1 udp 1 192.0.2.1 9 typ host",  # foundation outside ice-chars
    ],
)
def test_parse_rejects_malformed_candidates(line: str) -> None:
    with pytest.raises(SignalingError) as info:
        parse_candidate(line)
    assert info.value.code == "candidate_invalid"


def test_error_messages_do_not_echo_the_candidate() -> None:
    with pytest.raises(SignalingError) as info:
        parse_candidate("1 1 udp 1 203.0.113.77 70000 typ host")
    assert "203.0.113.77" not in str(info.value)


def test_oversized_candidate_is_refused_before_parsing() -> None:
    line = "1 1 udp 1 192.0.2.1 9 typ host x " + "y" * MAX_CANDIDATE_BYTES
    with pytest.raises(SignalingError) as info:
        parse_candidate(line)
    assert info.value.code == "candidate_too_large"


def test_constructing_an_invalid_candidate_fails() -> None:
    with pytest.raises(SignalingError):
        Candidate("1", 1, Transport.UDP, 1, "192.0.2.1", 9, CandidateType.HOST, "10.0.0.1", None)


# --- sanitize_candidate -----------------------------------------------------------

RELAY = (
    "candidate:3825423101 1 udp 41885439 198.51.100.20 61234 typ relay "
    "raddr 203.0.113.45 rport 58123 generation 0 network-id 1"
)


@pytest.mark.parametrize(
    "line",
    [
        f"candidate:1 1 udp 2122260223 {MDNS} 58123 typ host generation 0",
        "candidate:1 1 udp 2122260223 192.168.1.20 58123 typ host",
        "candidate:2 1 udp 1686052607 203.0.113.45 58123 typ srflx raddr 0.0.0.0 rport 0",
        "candidate:3 1 udp 1853817087 203.0.113.45 58123 typ prflx raddr 192.168.1.20 rport 1",
    ],
)
def test_relay_only_drops_every_non_relay_candidate(line: str) -> None:
    assert sanitize_candidate(line, relay_only=True) is None
    assert sanitize_candidate(line, relay_only=False) == format_candidate(parse_candidate(line))


def test_relay_only_hides_the_related_address_of_relay_candidates() -> None:
    assert sanitize_candidate(RELAY, relay_only=True) == (
        "candidate:3825423101 1 udp 41885439 198.51.100.20 61234 typ relay "
        "raddr 0.0.0.0 rport 0 generation 0 network-id 1"
    )
    assert sanitize_candidate(RELAY, relay_only=False) == RELAY


def test_relay_only_drops_extensions_that_carry_addresses() -> None:
    line = RELAY + " x-local 203.0.113.45 x-v6 [2001:db8::45]:9 x-fine abc"
    out = sanitize_candidate(line, relay_only=True)
    assert out is not None
    assert out.endswith("generation 0 network-id 1 x-fine abc")


def test_relay_only_drops_extensions_named_like_addresses() -> None:
    out = sanitize_candidate(RELAY + " 10.0.0.5 x", relay_only=True)
    assert out is not None
    assert "10.0.0.5" not in out


def test_empty_candidate_is_end_of_candidates() -> None:
    assert sanitize_candidate("", relay_only=True) == ""
    assert sanitize_candidate("", relay_only=False) == ""


def test_sanitize_candidate_validates() -> None:
    with pytest.raises(SignalingError):
        sanitize_candidate("candidate:garbage", relay_only=False)


# --- sanitize_sdp on realistic descriptions ------------------------------------------


@pytest.mark.parametrize(("sdp", "secrets"), SAMPLES)
def test_browser_sdp_passes_and_keeps_its_meaning_when_not_relay_only(
    sdp: str, secrets: list[str]
) -> None:
    out = sanitize_sdp(sdp, relay_only=False)
    assert out == sanitize_sdp(sdp.replace("\n", "\r\n"), relay_only=False)
    assert out.endswith("\r\n")
    assert "\n" not in out.replace("\r\n", "")
    original = [parse_candidate(line) for line in candidate_lines(sdp)]
    assert [parse_candidate(line) for line in candidate_lines(out)] == original
    for secret in secrets:
        assert contains_address(out, secret)


@pytest.mark.parametrize(("sdp", "secrets"), SAMPLES)
def test_browser_sdp_relay_only_reveals_nothing_but_the_relay(sdp: str, secrets: list[str]) -> None:
    out = sanitize_sdp(sdp, relay_only=True)
    for secret in secrets:
        assert not contains_address(out, secret), secret
    relays = [parse_candidate(line) for line in candidate_lines(out)]
    assert [c.type for c in relays] == [CandidateType.RELAY]
    assert relays[0].related_address == "0.0.0.0"
    assert relays[0].related_port == 0
    assert address_tokens(out) <= PLACEHOLDERS | {ipaddress.ip_address(relays[0].address)}


def test_relay_only_rewrites_exactly_the_address_lines() -> None:
    out = sanitize_sdp(FIREFOX_ANSWER, relay_only=True).split("\r\n")
    original = FIREFOX_ANSWER.splitlines()
    assert ("o=mozilla...THIS_IS_SDPARTA-128.0 6071236513325318617 0 IN IP4 127.0.0.1") in out
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101" in out
    assert "c=IN IP6 ::" in out
    assert "a=rtcp:9 IN IP6 ::" in out
    assert not any(line.startswith("a=remote-candidates") for line in out)
    assert sum(line.startswith("a=candidate:") for line in out) == 1
    untouched = [
        line
        for line in original
        if not line.startswith(("o=", "m=", "c=", "a=rtcp:", "a=candidate", "a=remote-cand"))
    ]
    assert [line for line in out if line in untouched] == untouched


def test_chrome_relay_only_keeps_ice_and_dtls_parameters() -> None:
    out = sanitize_sdp(CHROME_OFFER, relay_only=True)
    for kept in (
        "a=ice-ufrag:Xk2f",
        "a=ice-pwd:7bqE1yN3vZ0x3mF5cR2kL8pQ",
        f"a=fingerprint:sha-256 {FINGERPRINT}",
        "a=ice-options:trickle",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 2bd7a1c4-5d3e-4f4f-9a0e-0d9c5f9b9a11",
        "b=AS:2000",
        "a=end-of-candidates",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    ):
        assert f"\r\n{kept}\r\n" in out


def test_port_zero_keeps_meaning_rejected() -> None:
    sdp = CHROME_OFFER.replace("m=video 9 ", "m=video 0 ")
    assert "\r\nm=video 0 UDP" in sanitize_sdp(sdp, relay_only=True)


async def _aiortc_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: host candidates only
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        sdp: str = pc.localDescription.sdp
    finally:
        await pc.close()
    return sdp


def _machine_addresses() -> set[IpAddress]:
    found: set[IpAddress] = set()
    for info in socket.getaddrinfo(socket.gethostname(), None):
        found.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
    ip = shutil.which("ip")
    if ip is not None:
        result = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, check=True)
        for link in json.loads(result.stdout):
            for info in link.get("addr_info", []):
                found.add(ipaddress.ip_address(info["local"]))
    return found


async def test_real_aiortc_offer_hides_this_machine_when_relay_only() -> None:
    sdp = await _aiortc_offer()
    host_candidates = [parse_candidate(line) for line in candidate_lines(sdp)]
    if not host_candidates:
        pytest.skip("this machine has no usable network interface")
    gathered = {ipaddress.ip_address(c.address) for c in host_candidates}
    secrets = {str(a) for a in (_machine_addresses() | gathered) - PLACEHOLDERS}
    assert secrets

    relayed = sanitize_sdp(sdp, relay_only=True)
    for secret in secrets:
        assert not contains_address(relayed, secret), secret
    assert address_tokens(relayed) <= PLACEHOLDERS
    assert candidate_lines(relayed) == []
    assert sanitize_sdp(relayed, relay_only=True) == relayed

    direct = sanitize_sdp(sdp, relay_only=False)
    assert direct == sdp  # aiortc's SDP is already canonical
    for candidate in host_candidates:
        assert f"a={format_candidate(candidate)}\r\n" in direct


# --- sanitize_sdp grammar ------------------------------------------------------------

MINIMAL = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"


def test_minimal_sdp_round_trips() -> None:
    assert sanitize_sdp(MINIMAL, relay_only=False) == MINIMAL
    assert sanitize_sdp(MINIMAL, relay_only=True) == MINIMAL
    assert sanitize_sdp(MINIMAL.rstrip("\r\n"), relay_only=False) == MINIMAL


@pytest.mark.parametrize(
    "sdp",
    [
        "",
        "\r\n",
        MINIMAL.replace("v=0", "v=1"),
        MINIMAL.replace("v=0\r\n", ""),
        MINIMAL.replace("o=- 1 1 IN IP4 127.0.0.1\r\n", ""),
        MINIMAL.replace("s=-\r\n", ""),
        MINIMAL.replace("t=0 0\r\n", ""),
        MINIMAL.replace("m=audio 9 RTP/AVP 0\r\n", ""),
        MINIMAL + "\r\n\r\n",  # blank lines
        MINIMAL.replace("s=-", "s=-\r\n\r\nx"),
        MINIMAL + "A=foo\r\n",  # types are lower case letters
        MINIMAL + "a=\r\n",  # empty value
        MINIMAL + "a\r\n",
        MINIMAL + "a=foo\x00bar\r\n",
        MINIMAL + "a=foo\rbar\r\n",
        MINIMAL + "a=foo\x1b[31m\r\n",
        MINIMAL + "a=foo\u202ebar\r\n",  # bidi override
        MINIMAL + "a=foo\ud800\r\n",  # lone surrogate, not UTF-8 encodable
        MINIMAL + "a=bad name\r\n",
        MINIMAL + "t=0 0\r\n",  # t= belongs to the session part
        MINIMAL + "k=clear:secret\r\n",
        MINIMAL + "x=what\r\n",
        MINIMAL + "c=IN IP4 2001:db8::1\r\n",  # family mismatch
        MINIMAL + "c=IN IP4 host.example\r\n",
        MINIMAL + "c=IN IP4 224.2.1.1/127\r\n",
        MINIMAL + "c=IN IP4 192.0.2.1 extra\r\n",
        MINIMAL + "b=AS\r\n",
        MINIMAL + "a=rtcp:70000\r\n",
        MINIMAL + "a=rtcp:9 IN IP6 192.0.2.1\r\n",
        MINIMAL.replace("o=- 1 1 IN IP4 127.0.0.1", "o=- 1 1 IN IP4"),
        MINIMAL.replace("o=- 1 1 IN IP4 127.0.0.1", "o=- x 1 IN IP4 127.0.0.1"),
        MINIMAL.replace("o=- 1 1 IN IP4 127.0.0.1", "o=- 1 1 IN IP6 127.0.0.1"),
        MINIMAL.replace("t=0 0", "t=0"),
        MINIMAL.replace("m=audio 9 RTP/AVP 0", "m=audio 70000 RTP/AVP 0"),
        MINIMAL.replace("m=audio 9 RTP/AVP 0", "m=audio 9 RTP/AVP"),
        MINIMAL.replace("s=-\r\nt=0 0", "t=0 0\r\ns=-"),
    ],
)
def test_malformed_sdp_is_refused(sdp: str) -> None:
    for relay_only in (False, True):
        with pytest.raises(SignalingError) as info:
            sanitize_sdp(sdp, relay_only=relay_only)
        assert info.value.code == "sdp_invalid"


def test_bad_candidate_line_is_refused_with_its_line_number() -> None:
    sdp = MINIMAL + "a=candidate:1 1 udp 1 192.0.2.1 9 typ host raddr\r\n"
    with pytest.raises(SignalingError) as info:
        sanitize_sdp(sdp, relay_only=True)
    assert info.value.code == "candidate_invalid"
    assert info.value.message.startswith("line 6:")


def test_candidate_prefix_is_not_doubled_inside_sdp() -> None:
    sdp = MINIMAL + f"a=candidate:{RELAY}\r\n"
    with pytest.raises(SignalingError) as info:
        sanitize_sdp(sdp, relay_only=False)
    assert info.value.code == "candidate_invalid"


def test_oversized_candidate_line_inside_sdp() -> None:
    sdp = MINIMAL + f"a={RELAY} x {'y' * MAX_CANDIDATE_BYTES}\r\n"
    with pytest.raises(SignalingError) as info:
        sanitize_sdp(sdp, relay_only=True)
    assert info.value.code == "candidate_too_large"


def test_size_cap_applies_to_input_and_output() -> None:
    padding = "a=x-pad:" + "p" * (MAX_SDP_BYTES - len(MINIMAL)) + "\r\n"
    with pytest.raises(SignalingError) as info:
        sanitize_sdp(MINIMAL + padding, relay_only=False)
    assert info.value.code == "sdp_too_large"

    small = MINIMAL.replace("\r\n", "\n")
    assert sanitize_sdp(small, relay_only=False, max_bytes=len(MINIMAL)) == MINIMAL
    with pytest.raises(SignalingError) as info:  # fits as LF, grows past the cap as CRLF
        sanitize_sdp(small, relay_only=False, max_bytes=len(small))
    assert info.value.code == "sdp_too_large"

    with pytest.raises(SignalingError) as info:  # bytes, not characters
        sanitize_sdp(
            MINIMAL + "s=" + "é" * 40 + "\r\n", relay_only=False, max_bytes=len(MINIMAL) + 50
        )
    assert info.value.code == "sdp_too_large"


def test_non_string_input_is_refused() -> None:
    with pytest.raises(SignalingError):
        sanitize_sdp(b"v=0", relay_only=False)  # type: ignore[arg-type]


def test_relay_only_removes_addresses_from_unknown_and_free_text_lines() -> None:
    sdp = (
        MINIMAL.replace("s=-", "s=call from 192.168.1.20").replace("o=-", "o=203.0.113.5")
        + "i=reach me at 2001:db8::7\r\n"
        + "a=x-debug:local=10.0.0.3:5000\r\n"
        + "a=x-also:127.0.0.1.10.0.0.4\r\n"
        + "a=x-fine:no address here\r\n"
    )
    out = sanitize_sdp(sdp, relay_only=True)
    assert out == (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
        "a=x-fine:no address here\r\n"
    )
    assert sanitize_sdp(sdp, relay_only=False) == sdp


def test_relay_only_refuses_an_address_in_the_media_line() -> None:
    sdp = MINIMAL.replace("m=audio 9 RTP/AVP 0", "m=application 9 DTLS/SCTP 10.1.2.3")
    with pytest.raises(SignalingError) as info:
        sanitize_sdp(sdp.replace("t=0 0", "t=0 0\r\na=x-drop:10.9.9.9"), relay_only=True)
    assert info.value.code == "sdp_invalid"
    assert info.value.message.startswith("line 6:")  # counted in the input, drops and all
    assert "10.1.2.3" not in info.value.message
    assert sanitize_sdp(sdp, relay_only=False) == sdp


def test_relay_only_allows_the_relay_address_elsewhere() -> None:
    sdp = MINIMAL + f"a=x-turn:198.51.100.20\r\na={RELAY}\r\n"
    assert "a=x-turn:198.51.100.20\r\n" in sanitize_sdp(sdp, relay_only=True)


# --- properties ----------------------------------------------------------------------

ICE_CHARS = st.text("abcdefXYZ0123456789+/", min_size=1, max_size=32)
EXTENSIONS = st.lists(
    st.sampled_from(
        [("generation", "0"), ("ufrag", "Xk2f"), ("network-id", "3"), ("network-cost", "50")]
    ),
    unique_by=lambda pair: pair[0],
    max_size=4,
)


@st.composite
def candidates(draw: st.DrawFn, types: st.SearchStrategy[CandidateType] | None = None) -> Candidate:
    ctype = draw(types or st.sampled_from(list(CandidateType)))
    if ctype is CandidateType.HOST:
        address = draw(
            st.one_of(st.ip_addresses().map(str), st.uuids().map(lambda u: f"{u}.local"))
        )
    else:
        address = str(draw(st.ip_addresses()))
    related = draw(st.none() | st.tuples(st.ip_addresses().map(str), st.integers(0, 65535)))
    transport = draw(st.sampled_from(list(Transport)))
    extensions = draw(EXTENSIONS)
    if transport is Transport.TCP:
        extensions = [("tcptype", draw(st.sampled_from(["active", "passive", "so"]))), *extensions]
    return Candidate(
        foundation=draw(ICE_CHARS),
        component=draw(st.integers(1, 256)),
        transport=transport,
        priority=draw(st.integers(0, 2**32 - 1)),
        address=address,
        port=draw(st.integers(0, 65535)),
        type=ctype,
        related_address=None if related is None else related[0],
        related_port=None if related is None else related[1],
        extensions=tuple(extensions),
    )


@given(candidates())
def test_candidate_format_parse_round_trip(candidate: Candidate) -> None:
    line = format_candidate(candidate)
    assert parse_candidate(line) == candidate
    assert parse_candidate("a=" + line) == candidate


@given(candidates())
def test_relay_only_candidate_reveals_at_most_the_relay(candidate: Candidate) -> None:
    out = sanitize_candidate(format_candidate(candidate), relay_only=True)
    if candidate.type is not CandidateType.RELAY:
        assert out is None
        return
    assert out is not None
    assert address_tokens(out) <= PLACEHOLDERS | {ipaddress.ip_address(candidate.address)}
    assert sanitize_candidate(out, relay_only=True) == out


class Document:
    """A generated SDP plus what the test knows about its addresses."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.secrets: set[IpAddress] = set()
        self.relays: set[IpAddress] = set()
        self.candidates: list[Candidate] = []


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, Document]:
    doc = Document()

    def address(version: Literal[4, 6] | None = None) -> IpAddress:
        found: IpAddress = draw(st.ip_addresses(v=version))
        doc.secrets.add(found)
        return found

    origin = address()
    doc.lines += ["v=0", f"o=- 42 2 IN IP{origin.version} {origin}", "s=-"]
    if draw(st.booleans()):
        session_c = address()
        doc.lines.append(f"c=IN IP{session_c.version} {session_c}")
    doc.lines += ["t=0 0", "a=group:BUNDLE 0", "a=msid-semantic:WMS *"]
    for mid in range(draw(st.integers(1, 3))):
        doc.lines.append(f"m=audio {draw(st.integers(0, 65535))} UDP/TLS/RTP/SAVPF 111")
        if draw(st.booleans()):
            c = address()
            doc.lines.append(f"c=IN IP{c.version} {c}")
        if draw(st.booleans()):
            rtcp = address()
            doc.lines.append(f"a=rtcp:{draw(st.integers(0, 65535))} IN IP{rtcp.version} {rtcp}")
        doc.lines += [f"a=mid:{mid}", "a=ice-ufrag:Xk2f", f"a=fingerprint:sha-256 {FINGERPRINT}"]
        for candidate in draw(st.lists(candidates(), max_size=5)):
            doc.candidates.append(candidate)
            doc.lines.append("a=" + format_candidate(candidate))
            if candidate.related_address is not None:
                doc.secrets.add(ipaddress.ip_address(candidate.related_address))
            if candidate.type is CandidateType.RELAY:
                doc.relays.add(ipaddress.ip_address(candidate.address))
            elif not candidate.address.endswith(".local"):
                doc.secrets.add(ipaddress.ip_address(candidate.address))
        if draw(st.booleans()):
            remote = address()
            doc.lines.append(f"a=remote-candidates:1 {remote} 5000")
        doc.lines += ["a=rtpmap:111 opus/48000/2", "a=end-of-candidates"]
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    return newline.join(doc.lines) + newline, doc


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(documents())
def test_relay_only_output_contains_only_relay_addresses(generated: tuple[str, Document]) -> None:
    sdp, doc = generated
    out = sanitize_sdp(sdp, relay_only=True)
    allowed = PLACEHOLDERS | doc.relays
    assert address_tokens(out) <= allowed
    for secret in doc.secrets - allowed:
        assert not contains_address(out, str(secret)), secret
    kept = [parse_candidate(line) for line in candidate_lines(out)]
    assert all(c.type is CandidateType.RELAY and c.related_address == "0.0.0.0" for c in kept)
    assert len(kept) == sum(c.type is CandidateType.RELAY for c in doc.candidates)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(documents())
def test_without_relay_only_every_candidate_survives(generated: tuple[str, Document]) -> None:
    sdp, doc = generated
    out = sanitize_sdp(sdp, relay_only=False)
    assert [parse_candidate(line) for line in candidate_lines(out)] == doc.candidates
    assert out == sdp.replace("\r\n", "\n").replace("\n", "\r\n")


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(documents(), st.booleans())
def test_sanitizing_is_idempotent(generated: tuple[str, Document], relay_only: bool) -> None:
    once = sanitize_sdp(generated[0], relay_only=relay_only)
    assert sanitize_sdp(once, relay_only=relay_only) == once


def _attempt(action: Callable[[], _R]) -> _R | SignalingError:
    try:
        return action()
    except SignalingError as error:
        return error


def _sanitize_or_refuse(text: str, relay_only: bool) -> None:
    """Either a clean refusal, or output that sanitizes to itself."""
    once = _attempt(lambda: sanitize_sdp(text, relay_only=relay_only))
    if isinstance(once, SignalingError):
        assert once.code in {
            "sdp_invalid",
            "sdp_too_large",
            "candidate_invalid",
            "candidate_too_large",
        }
    else:
        assert sanitize_sdp(once, relay_only=relay_only) == once


@given(st.text(), st.booleans())
def test_arbitrary_text_only_raises_signaling_error(text: str, relay_only: bool) -> None:
    _sanitize_or_refuse(text, relay_only)
    once = _attempt(lambda: sanitize_candidate(text, relay_only=relay_only))
    if isinstance(once, SignalingError):
        assert once.code in {"candidate_invalid", "candidate_too_large"}
    elif once is not None:
        assert sanitize_candidate(once, relay_only=relay_only) == once


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(documents(), st.data(), st.booleans())
def test_mutated_sdp_only_raises_signaling_error(
    generated: tuple[str, Document], data: st.DataObject, relay_only: bool
) -> None:
    sdp = generated[0]
    position = data.draw(st.integers(0, len(sdp)))
    alphabet = st.sampled_from([*" :./=-\r\nabcmotvsIP460123456789", "typ", "raddr", "::"])
    noise = "".join(data.draw(st.lists(alphabet | st.characters(), max_size=8)))
    cut = data.draw(st.integers(0, 5))
    mutated = sdp[:position] + noise + sdp[position + cut :]
    assume(mutated != sdp)
    _sanitize_or_refuse(mutated, relay_only)


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200), st.booleans())
def test_arbitrary_candidate_lines_inside_sdp(line: str, relay_only: bool) -> None:
    _sanitize_or_refuse(MINIMAL + "a=candidate:" + line + "\r\n", relay_only)


# --- relay candidates must really be on the relay ---------------------------------

RELAYS = normalise_relay_addresses(["203.0.113.7", "2001:DB8::7"])


def test_relay_candidate_on_the_relay_passes_with_raddr_blanked() -> None:
    value = "candidate:1 1 udp 16777215 203.0.113.7 40000 typ relay raddr 192.0.2.2 rport 5000"
    assert sanitize_candidate(value, relay_only=True, relay_addresses=RELAYS) == (
        "candidate:1 1 udp 16777215 203.0.113.7 40000 typ relay raddr 0.0.0.0 rport 0"
    )
    v6 = "candidate:2 1 udp 16777215 2001:db8::7 40000 typ relay raddr :: rport 0"
    assert sanitize_candidate(v6, relay_only=True, relay_addresses=RELAYS) is not None


def test_mislabelled_relay_candidate_is_dropped() -> None:
    # A modified client calls its own host address a relay candidate.
    value = "candidate:1 1 udp 16777215 192.0.2.2 50000 typ relay raddr 0.0.0.0 rport 0"
    assert sanitize_candidate(value, relay_only=True, relay_addresses=RELAYS) is None
    # Without known relay addresses the label is all there is to go on.
    assert sanitize_candidate(value, relay_only=True) is not None
    # A side allowed to connect directly is not second-guessed.
    assert sanitize_candidate(value, relay_only=False, relay_addresses=RELAYS) is not None


def test_mislabelled_relay_candidate_is_dropped_from_sdp() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
        "a=candidate:1 1 udp 16777215 192.0.2.2 50000 typ relay raddr 0.0.0.0 rport 0\r\n"
        "a=candidate:2 1 udp 16777215 203.0.113.7 40000 typ relay raddr 0.0.0.0 rport 0\r\n"
    )
    out = sanitize_sdp(sdp, relay_only=True, relay_addresses=RELAYS)
    assert "192.0.2.2" not in out
    assert "203.0.113.7 40000 typ relay" in out


@given(st.ip_addresses())
def test_relay_only_output_never_holds_an_address_but_the_relays(address: object) -> None:
    value = f"candidate:1 1 udp 16777215 {address} 40000 typ relay raddr {address} rport 1"
    out = sanitize_candidate(value, relay_only=True, relay_addresses=RELAYS)
    if out is not None:
        assert str(ipaddress.ip_address(str(address))) in RELAYS
