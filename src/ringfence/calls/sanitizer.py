"""Server-side validation and sanitising of SDP and ICE candidates.

Ringfence promises that calling someone never reveals their address. Browsers
honour ``iceTransportPolicy: "relay"``, but the server does not trust that: a
buggy client, an old browser or a hand-written client could still put host or
server-reflexive addresses into its SDP. Every description and trickled
candidate from a relay-only party therefore passes through this module before it
is forwarded, and everything from anyone is checked against a strict grammar so
that malformed input is refused at the edge instead of reaching the other
browser.

The module is sans-I/O, in the spirit of aioice's ``stun.py``: strings in,
strings (or a :class:`SignalingError`) out.

Error messages never quote the offending input. They end up in logs, and the
input is exactly the kind of text that may contain somebody's address.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeVar

__all__ = [
    "MAX_CANDIDATE_BYTES",
    "MAX_SDP_BYTES",
    "Candidate",
    "CandidateType",
    "SignalingError",
    "Transport",
    "format_candidate",
    "parse_candidate",
    "sanitize_candidate",
    "sanitize_sdp",
]

MAX_SDP_BYTES: Final = 16 * 1024
MAX_CANDIDATE_BYTES: Final = 1024

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_E = TypeVar("_E", bound=enum.StrEnum)

# Addresses that say nothing about where anybody is. They are what the
# sanitizer itself writes in place of real ones, so they are always allowed.
_PLACEHOLDERS: Final[frozenset[IpAddress]] = frozenset(
    ipaddress.ip_address(a)
    for a in ("0.0.0.0", "::", "127.0.0.1", "::1")  # noqa: S104
)
_UNSPECIFIED: Final = {"IP4": "0.0.0.0", "IP6": "::"}  # noqa: S104
_LOOPBACK: Final = {"IP4": "127.0.0.1", "IP6": "::1"}
_DISCARD_PORT: Final = 9  # RFC 8840: the port to use when there is no real default candidate


class SignalingError(ValueError):
    """Signaling input was refused; ``code`` is a short machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CandidateType(enum.StrEnum):
    HOST = "host"
    SRFLX = "srflx"
    PRFLX = "prflx"
    RELAY = "relay"


class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"


_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]{1,32}")
_DIGITS = re.compile(r"[0-9]{1,10}")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_EXT_VALUE = re.compile(r"[\x21-\x7e]+")
_CANDIDATE_TEXT = re.compile(r"[\x20-\x7e]+")
_MDNS_NAME = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.local", re.IGNORECASE
)
_RESERVED_EXTENSIONS: Final = frozenset({"typ", "raddr", "rport"})
_TCPTYPES: Final = frozenset({"active", "passive", "so"})


def _candidate_error(message: str) -> SignalingError:
    return SignalingError("candidate_invalid", message)


def _normalise_address(text: str, *, allow_mdns: bool, what: str) -> str:
    """Return the canonical spelling of an IP literal (or mDNS name).

    Canonical spelling matters for privacy, not just tidiness: comparisons
    against the set of allowed addresses must not be fooled by ``FD00::02``.
    """
    if _MDNS_NAME.fullmatch(text):
        if not allow_mdns:
            raise _candidate_error(f"{what} must be an IP address")
        return text.lower()
    if "%" in text:  # zone ids are meaningless to the other peer
        raise _candidate_error(f"{what} is not an IP address or mDNS name")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _candidate_error(f"{what} is not an IP address or mDNS name") from None


def _parse_enum(kind: type[_E], text: str, what: str) -> _E:
    try:
        return kind(text.lower())  # RFC 8839 grammar literals are case-insensitive
    except ValueError:
        raise _candidate_error(f"unknown {what}") from None


def _check_int(value: object, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _candidate_error(f"{what} must be an integer in {low}..{high}")
    return value


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate (RFC 8839 section 5.1), validated and canonical.

    Construction validates and normalises, so every ``Candidate`` that exists
    formats to a line that :func:`parse_candidate` accepts again.
    """

    foundation: str
    component: int
    transport: Transport
    priority: int
    address: str
    port: int
    type: CandidateType
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.foundation, str) or not _ICE_CHARS.fullmatch(self.foundation):
            raise _candidate_error("foundation must be 1-32 ice-chars")
        _check_int(self.component, 1, 256, "component")
        _check_int(self.priority, 0, 2**32 - 1, "priority")
        _check_int(self.port, 0, 65535, "port")
        transport = _parse_enum(Transport, str(self.transport), "transport")
        ctype = _parse_enum(CandidateType, str(self.type), "candidate type")
        address = _normalise_address(
            str(self.address), allow_mdns=ctype is CandidateType.HOST, what="address"
        )
        if (self.related_address is None) != (self.related_port is None):
            raise _candidate_error("raddr and rport must appear together")
        related = None
        if self.related_address is not None:
            related = _normalise_address(self.related_address, allow_mdns=True, what="raddr")
            _check_int(self.related_port, 0, 65535, "rport")
        seen: set[str] = set()
        for name, value in self.extensions:
            lowered = name.lower()
            if not _TOKEN.fullmatch(name) or not _EXT_VALUE.fullmatch(value):
                raise _candidate_error("malformed extension attribute")
            if lowered in _RESERVED_EXTENSIONS or lowered in seen:
                raise _candidate_error("misplaced or repeated extension attribute")
            if lowered == "tcptype" and value not in _TCPTYPES:
                raise _candidate_error("tcptype must be active, passive or so")
            seen.add(lowered)
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "type", ctype)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "related_address", related)
        object.__setattr__(self, "extensions", tuple(self.extensions))


def _parse_uint(text: str, what: str) -> int:
    # int() alone would also accept "+5", " 5" and "5_0".
    if not _DIGITS.fullmatch(text):
        raise _candidate_error(f"{what} must be decimal digits")
    return int(text)


def parse_candidate(line: str) -> Candidate:
    """Parse a candidate attribute value, with or without ``candidate:``/``a=candidate:``.

    The grammar is strict (single spaces, ASCII only, raddr/rport only in their
    RFC position) because a lenient parser is where smuggling starts: a second
    ``raddr`` after the extensions is exactly what a naive rewrite would miss.
    """
    if not isinstance(line, str):
        raise _candidate_error("candidate must be a string")
    if len(line) > MAX_CANDIDATE_BYTES or len(line.encode("utf-8", "surrogatepass")) > (
        MAX_CANDIDATE_BYTES
    ):
        raise SignalingError("candidate_too_large", f"candidate exceeds {MAX_CANDIDATE_BYTES} B")
    for prefix in ("a=candidate:", "candidate:"):
        if line.startswith(prefix):
            return _parse_candidate_value(line[len(prefix) :])
    return _parse_candidate_value(line)


def _parse_candidate_value(body: str) -> Candidate:
    """Parse the part after ``candidate:``; no prefix is accepted here."""
    if len(body) > MAX_CANDIDATE_BYTES:
        raise SignalingError("candidate_too_large", f"candidate exceeds {MAX_CANDIDATE_BYTES} B")
    if not _CANDIDATE_TEXT.fullmatch(body):
        raise _candidate_error("candidate must be printable ASCII")
    fields = body.split(" ")
    if len(fields) < 8 or fields[6].lower() != "typ":
        raise _candidate_error("candidate has too few fields or no typ")
    rest = fields[8:]
    related_address: str | None = None
    related_port: int | None = None
    if len(rest) >= 2 and rest[0].lower() == "raddr":
        related_address, rest = rest[1], rest[2:]
    if len(rest) >= 2 and rest[0].lower() == "rport":
        related_port, rest = _parse_uint(rest[1], "rport"), rest[2:]
    if len(rest) % 2:
        raise _candidate_error("extension attributes must come in name/value pairs")
    return Candidate(
        foundation=fields[0],
        component=_parse_uint(fields[1], "component"),
        transport=_parse_enum(Transport, fields[2], "transport"),
        priority=_parse_uint(fields[3], "priority"),
        address=fields[4],
        port=_parse_uint(fields[5], "port"),
        type=_parse_enum(CandidateType, fields[7], "candidate type"),
        related_address=related_address,
        related_port=related_port,
        extensions=tuple(zip(rest[::2], rest[1::2], strict=True)),
    )


def format_candidate(candidate: Candidate) -> str:
    """Serialise to ``candidate:...`` (the form RTCIceCandidate.candidate uses)."""
    c = candidate
    parts = [
        c.foundation,
        str(c.component),
        c.transport.value,
        str(c.priority),
        c.address,
        str(c.port),
        "typ",
        c.type.value,
    ]
    if c.related_address is not None:
        parts += ["raddr", c.related_address, "rport", str(c.related_port)]
    for name, value in c.extensions:
        parts += [name, value]
    return "candidate:" + " ".join(parts)


# --- finding stray addresses -------------------------------------------------

# Overlapping matches (the lookahead) so that "127.0.0.1.2.3.4" still yields 1.2.3.4.
_IPV4_LITERAL = re.compile(r"(?=(?<![0-9])([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3}))")
_HEX_RUN = re.compile(r"[0-9A-Fa-f:.]+")
_MAX_IPV6_TEXT = 45  # "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"


def _find_addresses(text: str) -> set[IpAddress]:
    """Every IP address literal that appears in ``text``, over-approximated.

    This is the safety net for places no WebRTC stack puts an address (unknown
    attributes, free text). It errs on the side of seeing an address: a line
    wrongly flagged is merely dropped from a relay-only description.
    """
    found: set[IpAddress] = set()
    for match in _IPV4_LITERAL.finditer(text):
        octets = [int(o) for o in match.groups()]
        if all(o <= 255 for o in octets):
            found.add(ipaddress.IPv4Address(bytes(octets)))
    for run in _HEX_RUN.findall(text):
        if run.count(":") < 2:
            continue
        for variant in {run, run.strip(":."), run.lstrip(":."), run.rstrip(":.")}:
            if len(variant) > _MAX_IPV6_TEXT:
                continue
            try:
                found.add(ipaddress.IPv6Address(variant))
            except ValueError:
                continue
    return found


def _leaks(text: str, allowed: frozenset[IpAddress]) -> bool:
    return not _find_addresses(text) <= allowed


RelayAddresses = frozenset[str] | None


def _relay_view(candidate: Candidate, relay_addresses: RelayAddresses) -> Candidate | None:
    """What a relay-only party may reveal of one candidate, or None for nothing.

    A relay candidate's own address belongs to the TURN server, which is the
    whole point of relaying; its raddr, however, is the client's own
    server-reflexive or host address, so it is replaced. When the relay's
    addresses are known, a "relay" candidate on any other address is a client
    mislabelling its own address, and is dropped too.
    """
    if candidate.type is not CandidateType.RELAY:
        return None
    if relay_addresses is not None and candidate.address not in relay_addresses:
        return None
    allowed = _PLACEHOLDERS | {ipaddress.ip_address(candidate.address)}
    return dataclasses.replace(
        candidate,
        related_address="0.0.0.0",  # noqa: S104
        related_port=0,
        extensions=tuple(
            (name, value)
            for name, value in candidate.extensions
            if not _leaks(f"{name} {value}", allowed)  # "10.0.0.5" is a valid token, too
        ),
    )


def normalise_relay_addresses(addresses: Iterable[str]) -> frozenset[str]:
    """The relay's addresses in the form :class:`Candidate` stores them."""
    return frozenset(str(ipaddress.ip_address(address)) for address in addresses)


def sanitize_candidate(
    value: str, *, relay_only: bool, relay_addresses: RelayAddresses = None
) -> str | None:
    """Validate a trickled candidate; return what may be forwarded, or None.

    ``""`` is WebRTC's end-of-candidates signal and passes through unchanged.
    ``relay_addresses`` (from :func:`normalise_relay_addresses`), when given,
    are the only addresses a relay candidate of a relay-only party may carry.
    """
    if value == "":
        return ""
    candidate = parse_candidate(value)
    if relay_only:
        relayed = _relay_view(candidate, relay_addresses)
        return None if relayed is None else format_candidate(relayed)
    return format_candidate(candidate)


# --- SDP ------------------------------------------------------------------------

_SDP_LINE = re.compile(r"([a-z])=(.+)", re.DOTALL)
_SESSION_KINDS: Final = frozenset("iuepcbtrza")
_MEDIA_KINDS: Final = frozenset("icba")
_ORIGIN = re.compile(r"(\S+) ([0-9]{1,20}) ([0-9]{1,20}) IN (IP4|IP6) (\S+)")
_CONNECTION = re.compile(r"IN (IP4|IP6) (\S+)")
_TIMING = re.compile(r"[0-9]{1,20} [0-9]{1,20}")
_REPEAT = re.compile(r"-?[0-9]{1,20}[dhms]?(?: -?[0-9]{1,20}[dhms]?)*")
_BANDWIDTH = re.compile(r"[A-Za-z0-9_.-]+:[0-9]{1,20}")
_MEDIA = re.compile(
    r"([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+) ([0-9]{1,5})(/[0-9]{1,5})? ([A-Za-z0-9/_.-]+)"
    r"((?: [!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)+)"
)
_ATTRIBUTE = re.compile(r"([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)(?::(.*))?", re.DOTALL)
_RTCP = re.compile(r"([0-9]{1,5})(?: IN (IP4|IP6) (\S+))?")


def _sdp_error(number: int, message: str) -> SignalingError:
    return SignalingError("sdp_invalid", f"line {number}: {message}")


def _check_ip(number: int, addrtype: str, text: str) -> None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _sdp_error(number, "address is not an IP literal") from None
    if f"IP{address.version}" != addrtype:
        raise _sdp_error(number, "address does not match its address type")


def _check_port(number: int, text: str) -> None:
    if int(text) > 65535:
        raise _sdp_error(number, "port out of range")


def _split_lines(sdp: str) -> list[tuple[str, str]]:
    """Split into (kind, value) pairs, enforcing the per-line grammar."""
    raw = sdp.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    lines: list[tuple[str, str]] = []
    for number, line in enumerate(raw, start=1):
        line = line.removesuffix("\r")
        match = _SDP_LINE.fullmatch(line)
        if match is None or not match[2].isprintable():
            raise _sdp_error(number, "not a <letter>=<printable value> line")
        lines.append((match[1], match[2]))
    if not lines or lines[0] != ("v", "0"):
        raise _sdp_error(1, "first line must be v=0")
    if len(lines) < 3 or lines[1][0] != "o" or lines[2][0] != "s":
        raise _sdp_error(2, "o= and s= must follow v=")
    return lines


def _check_structure(lines: list[tuple[str, str]]) -> None:
    """Check line order: v o s, session lines with t=, then one or more m= sections."""
    in_media = False
    seen_timing = False
    media_count = 0
    for number, (kind, _value) in enumerate(lines[3:], start=4):
        if kind == "m":
            in_media = True
            media_count += 1
        elif kind not in (_MEDIA_KINDS if in_media else _SESSION_KINDS):
            raise _sdp_error(number, f"{kind}= is not allowed here")
        seen_timing = seen_timing or kind == "t"
    if not seen_timing:
        raise SignalingError("sdp_invalid", "no t= line")
    if media_count == 0:
        raise SignalingError("sdp_invalid", "no m= line")


def _sanitize_line(
    number: int, kind: str, value: str, *, relay_only: bool, relay_addresses: RelayAddresses
) -> tuple[str, str, Candidate | None] | None:
    """Validate one line and rewrite it for a relay-only party.

    Returns ``(kind, value, candidate)`` to keep (``candidate`` is set for
    a=candidate lines) or None to drop the line.
    """
    if kind == "o":
        origin = _ORIGIN.fullmatch(value)
        if origin is None:
            raise _sdp_error(number, "malformed o= line")
        username, sess_id, version, addrtype, address = origin.groups()
        _check_ip(number, addrtype, address)
        if relay_only:
            address = _LOOPBACK[addrtype]
        return kind, f"{username} {sess_id} {version} IN {addrtype} {address}", None
    if kind == "c":
        connection = _CONNECTION.fullmatch(value)
        if connection is None:
            raise _sdp_error(number, "malformed c= line")
        addrtype, address = connection.groups()
        _check_ip(number, addrtype, address)
        if relay_only:
            address = _UNSPECIFIED[addrtype]
        return kind, f"IN {addrtype} {address}", None
    if kind == "m":
        media = _MEDIA.fullmatch(value)
        if media is None:
            raise _sdp_error(number, "malformed m= line")
        name, port, count, proto, formats = media.groups()
        _check_port(number, port)
        if relay_only and int(port) != 0:  # port 0 means "rejected"; keep that meaning
            port = str(_DISCARD_PORT)
        return kind, f"{name} {port}{count or ''} {proto}{formats}", None
    if kind == "t" and not _TIMING.fullmatch(value):
        raise _sdp_error(number, "malformed t= line")
    if kind in "rz" and not _REPEAT.fullmatch(value):
        raise _sdp_error(number, f"malformed {kind}= line")
    if kind == "b" and not _BANDWIDTH.fullmatch(value):
        raise _sdp_error(number, "malformed b= line")
    if kind == "a":
        return _sanitize_attribute(
            number, value, relay_only=relay_only, relay_addresses=relay_addresses
        )
    return kind, value, None


def _sanitize_attribute(
    number: int, value: str, *, relay_only: bool, relay_addresses: RelayAddresses
) -> tuple[str, str, Candidate | None] | None:
    attribute = _ATTRIBUTE.fullmatch(value)
    if attribute is None:
        raise _sdp_error(number, "malformed a= line")
    name, argument = attribute.groups()
    if name == "candidate":
        try:
            candidate: Candidate | None = _parse_candidate_value(argument or "")
        except SignalingError as error:
            raise SignalingError(error.code, f"line {number}: {error.message}") from None
        if relay_only and candidate is not None:
            candidate = _relay_view(candidate, relay_addresses)
        if candidate is None:
            return None
        return "a", format_candidate(candidate), candidate
    if name == "rtcp":
        rtcp = _RTCP.fullmatch(argument or "")
        if rtcp is None:
            raise _sdp_error(number, "malformed a=rtcp")
        port, addrtype, address = rtcp.groups()
        _check_port(number, port)
        if addrtype is not None:
            _check_ip(number, addrtype, address)
        if relay_only:
            tail = "" if addrtype is None else f" IN {addrtype} {_UNSPECIFIED[addrtype]}"
            return "a", f"rtcp:{_DISCARD_PORT}{tail}", None
    if name == "remote-candidates" and relay_only:
        return None  # lists addresses of the ICE pairing; nothing a relay-only party may say
    return "a", value, None


def _guard(lines: list[tuple[int, str, str, Candidate | None]]) -> list[tuple[str, str]]:
    """Last line of defence for relay-only descriptions.

    After the structural rewrites, no line may mention an address other than a
    placeholder or a relay candidate's (TURN server's) address. Optional lines
    that do are dropped; required ones are neutralised or refused.
    """
    allowed = _PLACEHOLDERS | {ipaddress.ip_address(c.address) for *_, c in lines if c is not None}
    kept: list[tuple[str, str]] = []
    for number, kind, value, candidate in lines:
        if candidate is not None or not _leaks(value, allowed):
            kept.append((kind, value))
        elif kind in "aiuepb":
            continue
        elif kind == "s":
            kept.append(("s", "-"))
        elif kind == "o":  # only the username can still leak; the address is loopback by now
            kept.append(("o", "- " + value.split(" ", 1)[1]))
        else:
            raise _sdp_error(number, "line carries an address")
    return kept


def sanitize_sdp(
    sdp: str,
    *,
    relay_only: bool,
    max_bytes: int = MAX_SDP_BYTES,
    relay_addresses: RelayAddresses = None,
) -> str:
    """Validate an SDP offer/answer and, for relay-only parties, strip every address.

    Relay-only rewriting: non-relay candidates and a=remote-candidates are
    dropped; relay candidates get ``raddr 0.0.0.0 rport 0``; c= becomes the
    unspecified address; the o= address becomes loopback; a=rtcp becomes
    ``9 IN IP4 0.0.0.0``; non-zero m= ports become the discard port 9 (they are
    the port of the default, usually host, candidate). With ``relay_addresses``,
    relay candidates on any other address are dropped as well. Everything else
    (fingerprints, ICE credentials, codecs) passes through untouched.

    The result always uses CRLF and is a fixed point: sanitising it again with
    the same arguments returns it unchanged.
    """
    if not isinstance(sdp, str):
        raise SignalingError("sdp_invalid", "SDP must be a string")
    if len(sdp) > max_bytes or len(sdp.encode("utf-8", "surrogatepass")) > max_bytes:
        raise SignalingError("sdp_too_large", f"SDP exceeds {max_bytes} bytes")
    lines = _split_lines(sdp)
    _check_structure(lines)
    sanitized: list[tuple[int, str, str, Candidate | None]] = []
    for number, (kind, value) in enumerate(lines, start=1):
        kept = _sanitize_line(
            number, kind, value, relay_only=relay_only, relay_addresses=relay_addresses
        )
        if kept is not None:
            sanitized.append((number, *kept))
    output_lines = _guard(sanitized) if relay_only else [(k, v) for _, k, v, _ in sanitized]
    output = "".join(f"{kind}={value}\r\n" for kind, value in output_lines)
    # LF -> CRLF and placeholder rewrites can grow the text; the cap holds for output too,
    # which also keeps sanitising idempotent at the boundary.
    if len(output.encode("utf-8")) > max_bytes:
        raise SignalingError("sdp_too_large", f"SDP exceeds {max_bytes} bytes")
    return output
