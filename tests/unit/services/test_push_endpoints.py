"""Which addresses a push may go to (services/push/endpoints.py), and the VAPID key
file: the parts of Web Push that need no server (tests/integration/test_push.py has
the rest)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest

from ringfence.services.push.endpoints import RefusedEndpoint, is_public, parse, resolve
from ringfence.services.push.vapid import VapidKey

NOT_PUBLIC = [
    "127.0.0.1",
    "127.255.0.1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.251",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "::",
    "::1",
    "fc00::1",
    "fd00:1::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2001::1",  # Teredo
    "2001:db8::1",
    "100::1",
]
PUBLIC = [
    "8.8.8.8",
    "142.250.74.10",
    "2a00:1450:4001:80e::200a",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_only_plain_https_urls_parse() -> None:
    assert parse("https://push.example.com/a?b=c", allow_insecure=False) == (
        "https",
        "push.example.com",
        443,
        "/a?b=c",
    )
    for bad in (
        "http://push.example.com/",
        "https://u@push.example.com/",
        "https://push.example.com/#x",
        "https:///nohost",
        "https://push.example.com:99999/",
        "https://push.exa mple.com/",
        "https://push.example.com/" + "a" * 3000,
        "https://püsh.example.com/",
    ):
        with pytest.raises(RefusedEndpoint):
            parse(bad, allow_insecure=False)
    assert parse("http://127.0.0.1:9/x", allow_insecure=True)[:3] == ("http", "127.0.0.1", 9)


async def test_a_name_is_checked_by_what_it_resolves_to() -> None:
    with pytest.raises(RefusedEndpoint) as refused:
        await resolve("https://localhost/x", allow_insecure=False)
    assert refused.value.status == 422
    target = await resolve("http://localhost:8/x", allow_insecure=True)
    assert ipaddress.ip_address(target.address).is_loopback
    assert target.origin == "http://localhost:8"
    assert target.host == "localhost"


def test_the_vapid_key_is_made_once_0600_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vapid.pem"
    first = VapidKey.load(path, "mailto:ops@example.com")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert VapidKey.load(path, "mailto:ops@example.com").public_key == first.public_key
    assert first.authorization("https://push.example.com").startswith("vapid t=")
    path.write_text("not a key")
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        VapidKey.load(path, "mailto:ops@example.com")
