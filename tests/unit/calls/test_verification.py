"""The verification code: shared test vectors, an independent re-derivation from the
documented encoding, and the properties that make it useful."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringfence
from ringfence.calls.verification import (
    VerificationError,
    digest,
    fingerprints,
    verification_code,
    words,
)

# The test vectors both clients are checked against.
DATA_DIR = Path(ringfence.__file__).resolve().parent / "web" / "verification"
VECTORS = json.loads((DATA_DIR / "vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"] for v in VECTORS])
def test_vectors(vector: dict[str, object]) -> None:
    assert fingerprints(str(vector["local_sdp"])) == vector["local_fingerprints"]
    assert fingerprints(str(vector["remote_sdp"])) == vector["remote_fingerprints"]
    code = verification_code(
        str(vector["call_id"]), str(vector["local_sdp"]), str(vector["remote_sdp"])
    )
    assert list(code) == vector["words"]


def test_documented_derivation_by_hand() -> None:
    """docs/verification.md, step by step, without the module's helpers."""
    vector = VECTORS[0]
    parts = sorted([vector["local_fingerprints"], vector["remote_fingerprints"]])
    message = b"ringfence/call-verification/v2\x00"
    for part in [vector["call_id"], *parts]:
        raw = part.encode()
        message += len(raw).to_bytes(4, "big") + raw
    hashed = hashlib.sha256(message).digest()
    assert hashed.hex() == vector["sha256"]
    table = json.loads((DATA_DIR / "words.json").read_text())["words"]
    assert [table[b] for b in hashed[:5]] == vector["words"]


def test_both_sides_agree_and_a_swapped_fingerprint_disagrees() -> None:
    by_description = {v["description"]: v for v in VECTORS}
    caller = by_description["plain call, caller's view"]
    callee = by_description["the same call, callee's view: local and remote swapped"]
    attacked = by_description["a man in the middle: the caller sees the attacker's fingerprint"]
    assert caller["words"] == callee["words"]
    assert attacked["words"] != caller["words"]


def test_a_browser_and_aiortc_agree_although_the_browser_drops_two_fingerprints() -> None:
    """aiortc offers sha-256, sha-384 and sha-512 for its certificate; Chromium keeps
    only the sha-512 in its remote description. Both sides still read the same words."""
    by_description = {v["description"]: v for v in VECTORS}
    python_side = by_description["aiortc offers three hash functions: the Python side's view"]
    browser_side = by_description["the same call, the browser's view: it kept only sha-512"]
    assert python_side["local_sdp"].count("a=fingerprint:") == 3
    assert browser_side["remote_sdp"].count("a=fingerprint:") == 1
    assert python_side["words"] == browser_side["words"]


hex_fp = st.lists(st.integers(0, 255), min_size=32, max_size=32).map(
    lambda bs: "sha-256 " + ":".join(f"{b:02X}" for b in bs)
)


@given(st.text(min_size=8, max_size=64), hex_fp, hex_fp)
def test_order_of_the_two_sides_never_matters(call_id: str, a: str, b: str) -> None:
    assert digest(call_id, a, b) == digest(call_id, b, a)


@given(hex_fp, hex_fp, hex_fp)
def test_changing_one_fingerprint_changes_the_digest(a: str, b: str, m: str) -> None:
    if m not in (a, b):
        assert digest("call-1", a, b) != digest("call-1", a, m)


def test_an_sdp_without_fingerprint_is_refused() -> None:
    with pytest.raises(VerificationError):
        fingerprints("v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")


def test_word_table_is_256_distinct_speakable_words() -> None:
    table = words()
    assert len(table) == len(set(table)) == 256
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 10 for w in table)
