"""Per-account TURN user names: stable per account, opaque, and unlinkable across
deployments; the key that makes them survives restarts and stays private."""

from __future__ import annotations

import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ringfence.turn.credentials import TurnCredentialIssuer, load_pseudonym_key

SECRET = b"ringfence-test-secret"
URLS = ("turn:turn.example.org:3478?transport=udp",)
KEY = b"k" * 32


def issuer(key: bytes | None = KEY, now: float = 1_700_000_000.0) -> TurnCredentialIssuer:
    return TurnCredentialIssuer(SECRET, URLS, ttl_s=600, clock=lambda: now, pseudonym_key=key)


def test_every_credential_of_an_account_carries_its_one_pseudonym() -> None:
    early, late = issuer(now=1_700_000_000.0), issuer(now=1_700_000_500.0)
    first, second = early.issue_for(7), late.issue_for(7)

    assert first.username != second.username  # a new expiry: a new credential...
    assert first.username.split(":")[1] == second.username.split(":")[1]  # ...one account
    assert first.username == f"1700000600:{early.pseudonym(7)}"
    assert first.credential == early.password_for(first.username)


def test_pseudonyms_are_opaque_and_differ_per_account_and_per_deployment() -> None:
    names = {issuer().pseudonym(account) for account in range(1, 1001)}
    assert len(names) == 1000
    for name in names:
        # As long as the random part it replaces; never all digits (coturn would then
        # take it for the expiry) and nothing of the account in it.
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", name)
    other_deployment = issuer(key=b"another deployment's key 0123456")
    assert other_deployment.pseudonym(1) != issuer().pseudonym(1)


def test_probes_and_accounts_never_share_a_name() -> None:
    probe = issuer().issue()
    assert probe.username.split(":")[1] not in {issuer().pseudonym(a) for a in range(1, 100)}


def test_an_issuer_without_a_key_cannot_issue_for_accounts() -> None:
    with pytest.raises(RuntimeError, match="no pseudonym key"):
        issuer(key=None).issue_for(1)


@pytest.mark.parametrize(
    ("key", "message"),
    [(b"short", "at least 16 bytes"), (SECRET + b"", "must not be the TURN shared secret")],
)
def test_bad_keys_are_refused(key: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issuer(key=key)


def test_the_key_is_made_once_private_and_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "data" / "turn-pseudonym.key"

    first = load_pseudonym_key(path)
    again = load_pseudonym_key(path)

    assert first == again
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["turn-pseudonym.key"]  # no drafts


def test_nodes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "turn-pseudonym.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_pseudonym_key(path), range(16)))
    assert keys == {path.read_bytes().strip()}


def test_an_unreadable_or_short_key_stops_start_up(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"tiny\n")
    with pytest.raises(ValueError, match="too short"):
        load_pseudonym_key(short)
    if os.geteuid() != 0:  # root reads anything
        unreadable = tmp_path / "unreadable.key"
        unreadable.write_bytes(b"x" * 64)
        unreadable.chmod(0)
        with pytest.raises(ValueError, match="cannot read"):
            load_pseudonym_key(unreadable)
