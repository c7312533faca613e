import base64
import re
from pathlib import Path

import pytest

from ringfence.turn.credentials import (
    IceServer,
    TurnCredentialIssuer,
    generate_secret,
    load_secret,
    validate_turn_url,
)

SECRET = b"ringfence-test-secret"
URLS = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp")
NOW = 1_700_000_000.9


def make_issuer(ttl_s: int = 300, secret: bytes = SECRET) -> TurnCredentialIssuer:
    return TurnCredentialIssuer(secret, URLS, ttl_s=ttl_s, clock=lambda: NOW)


def test_username_is_expiry_then_opaque_token() -> None:
    server = make_issuer(ttl_s=300).issue()

    expiry, opaque = server.username.split(":")
    assert expiry == "1700000300"
    # token_urlsafe(16): 22 characters of the URL-safe base64 alphabet, nothing else.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", opaque)


def test_credential_is_base64_hmac_sha1_of_the_username() -> None:
    # Expected value computed independently with:
    #   printf '1700000300:opaque' | openssl dgst -sha1 -hmac 'ringfence-test-secret' -binary \
    #     | base64
    assert make_issuer().password_for("1700000300:opaque") == "/2THCEjI1sj/6VpFSsW4rWv0m3o="


def test_issued_credential_matches_its_username() -> None:
    issuer = make_issuer()
    server = issuer.issue()

    assert server.credential == issuer.password_for(server.username)
    assert len(base64.b64decode(server.credential)) == 20  # a SHA-1 digest


def test_every_credential_is_fresh_and_unlinkable() -> None:
    issuer = make_issuer()
    servers = [issuer.issue() for _ in range(50)]

    opaque_parts = {server.username.split(":")[1] for server in servers}
    assert len(opaque_parts) == 50
    assert len({server.credential for server in servers}) == 50


def test_issued_server_carries_the_urls_and_serialises_as_rtc_ice_server() -> None:
    server = make_issuer().issue()

    assert server.urls == URLS
    assert server.to_json() == {
        "urls": list(URLS),
        "username": server.username,
        "credential": server.credential,
    }


def test_ice_server_json_has_exactly_the_webrtc_keys() -> None:
    server = IceServer(urls=("turn:a.example:3478",), username="1:x", credential="c")

    assert server.to_json() == {
        "urls": ["turn:a.example:3478"],
        "username": "1:x",
        "credential": "c",
    }


def test_different_secrets_give_different_credentials() -> None:
    username = "1700000300:opaque"

    assert make_issuer().password_for(username) != make_issuer(
        secret=b"another-secret-of-enough-bytes"
    ).password_for(username)


@pytest.mark.parametrize("ttl_s", [1, 600])
def test_ttl_bounds_are_accepted(ttl_s: int) -> None:
    assert make_issuer(ttl_s=ttl_s).ttl_s == ttl_s


@pytest.mark.parametrize("ttl_s", [0, -5, 601, 86_400])
def test_ttl_outside_policy_is_refused(ttl_s: int) -> None:
    with pytest.raises(ValueError, match="short-lived by policy"):
        make_issuer(ttl_s=ttl_s)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        TurnCredentialIssuer(b"short", URLS, ttl_s=60)


def test_no_urls_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one TURN URL"):
        TurnCredentialIssuer(SECRET, [], ttl_s=60)


def test_a_single_string_is_not_mistaken_for_a_list_of_urls() -> None:
    with pytest.raises(TypeError):
        TurnCredentialIssuer(SECRET, "turn:a.example", ttl_s=60)


@pytest.mark.parametrize(
    "url",
    [
        "turn:127.0.0.1",
        "turn:127.0.0.1:3478",
        "turn:127.0.0.1:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:5349?transport=tcp",
        "turns:turn.example.org",
        "turn:[::1]:3478?transport=udp",
        "turn:[2001:db8::5]",
        "turn:localhost:65535",
    ],
)
def test_valid_turn_urls_are_accepted(url: str) -> None:
    assert validate_turn_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "stun:turn.example.org:3478",
        "https://turn.example.org",
        "turn:",
        "turn://turn.example.org:3478",
        "turn:turn.example.org:0",
        "turn:turn.example.org:70000",
        "turn:turn.example.org:3478?transport=sctp",
        "turn:turn.example.org:3478?foo=bar",
        "turn:-bad.example.org",
        "turn:user@turn.example.org",
        "turn:[not:an:address:zz]",
        "turn:turn.example.org:3478 ",
        "TURN:turn.example.org",
    ],
)
def test_invalid_turn_urls_are_refused_by_name(url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(url))):
        TurnCredentialIssuer(SECRET, [URLS[0], url], ttl_s=60)


def test_load_secret_from_value() -> None:
    assert load_secret("0123456789abcdef0123", None) == b"0123456789abcdef0123"


def test_load_secret_from_file_strips_the_trailing_newline(tmp_path: Path) -> None:
    file = tmp_path / "turn_secret"
    file.write_bytes(b"0123456789abcdef0123\n")

    assert load_secret(None, file) == b"0123456789abcdef0123"


def test_load_secret_keeps_inner_characters(tmp_path: Path) -> None:
    file = tmp_path / "turn_secret"
    file.write_bytes(b" spaces inside are kept \r\n")

    assert load_secret(None, file) == b" spaces inside are kept "


def test_load_secret_refuses_both_sources(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        load_secret("0123456789abcdef0123", tmp_path / "turn_secret")


def test_load_secret_refuses_no_source() -> None:
    with pytest.raises(ValueError, match="no TURN secret"):
        load_secret(None, None)


def test_load_secret_refuses_an_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "turn_secret"
    file.write_bytes(b"\n")

    with pytest.raises(ValueError, match=r"turn_secret is empty"):
        load_secret(None, file)


def test_load_secret_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match=r"too short \(5 bytes\)"):
        load_secret("short", None)


def test_load_secret_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(ValueError, match=re.escape(str(missing))):
        load_secret(None, missing)


def test_generated_secret_is_256_bits_of_hex_and_loadable() -> None:
    secret = generate_secret()

    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert secret != generate_secret()
    assert load_secret(secret, None) == secret.encode()
