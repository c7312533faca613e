"""The call verification code: five words both people read to each other.

WebRTC media is encrypted end to end with DTLS-SRTP, keyed by certificates whose
fingerprints travel in the SDP, through the signaling server. A malicious or
compromised server could swap those fingerprints and sit in the middle. Each client
therefore derives a short code from the fingerprints *as it saw them* (its own, in its
local SDP; the peer's, in its remote SDP) and the call id. Without a man in the middle
both see the same two fingerprints and show the same code; with one, each side sees
the attacker's fingerprint instead of the other person's, and the codes differ.

The exact derivation (docs/verification.md) is shared with the browser client. The word
table is :mod:`ringfence.calls.words`, from which the browser's copy is generated; the
test vectors in ``ringfence/web/verification/vectors.json`` check both clients.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from ringfence.calls.words import WORDS

DOMAIN = b"ringfence/call-verification/v2"
# Hash functions of RFC 8122's registry, strongest first: an SDP's fingerprint is the
# one of its strongest function (what a browser keeps of several, and checks).
STRENGTH = ("sha-512", "sha-384", "sha-256", "sha-224", "sha-1", "md5", "md2")
WORD_COUNT = 5

_FINGERPRINT_LINE = re.compile(r"^a=fingerprint:(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$")


class VerificationError(ValueError):
    """An SDP without a usable DTLS fingerprint: no code can be derived from it."""


def words() -> tuple[str, ...]:
    """The fixed table of 256 words; byte ``b`` of the digest selects ``words()[b]``."""
    return WORDS


def canonical_fingerprint(algorithm: str, value: str) -> str:
    """``"sha-256 AB:CD:..."``: algorithm in lower case, hex in upper case."""
    return f"{algorithm.lower()} {value.upper()}"


def _rank(fingerprint: str) -> tuple[int, bytes]:
    algorithm = fingerprint.split(" ", 1)[0]
    strength = STRENGTH.index(algorithm) if algorithm in STRENGTH else len(STRENGTH)
    return strength, fingerprint.encode("utf-8")


def fingerprints(sdp: str) -> str:
    """The fingerprint that stands for an SDP's certificate, canonical: of its
    ``a=fingerprint`` lines, the one with the strongest hash function (the smallest
    by UTF-8 bytes if that leaves several).

    Not the whole set: aiortc offers sha-256, sha-384 and sha-512 for one certificate,
    and Chromium keeps only the strongest of them in its remote description, so the
    two sides would otherwise see different sets without anyone in between.
    """
    found = {
        canonical_fingerprint(m.group(1), m.group(2))
        for line in sdp.splitlines()
        if (m := _FINGERPRINT_LINE.match(line.strip()))
    }
    if not found:
        raise VerificationError("the SDP carries no DTLS fingerprint")
    return min(found, key=_rank)


def _field(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def digest(call_id: str, local_fingerprints: str, remote_fingerprints: str) -> bytes:
    """SHA-256 over the domain tag, the call id and both fingerprints in canonical
    (sorted) order, each length-prefixed so no two inputs share an encoding."""
    first, second = sorted((local_fingerprints, remote_fingerprints))
    message = DOMAIN + b"\x00" + b"".join(_field(part) for part in (call_id, first, second))
    return hashlib.sha256(message).digest()


def code_words(digest_bytes: Iterable[int]) -> tuple[str, ...]:
    table = words()
    return tuple(table[b] for b in list(digest_bytes)[:WORD_COUNT])


def verification_code(call_id: str, local_sdp: str, remote_sdp: str) -> tuple[str, ...]:
    """The five words to compare, from this side's local and remote SDP."""
    return code_words(digest(call_id, fingerprints(local_sdp), fingerprints(remote_sdp)))
