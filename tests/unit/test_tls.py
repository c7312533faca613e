"""The certificate `--tls-self-signed` makes: private key, the server's names, kept."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from cryptography import x509

from ringfence.config import load_settings
from ringfence.tls import tls_files


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RINGFENCE_"):
            monkeypatch.delenv(key)


def names_in(cert: Path) -> tuple[set[str], set[str]]:
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def test_plain_http_without_tls_settings(tmp_path: Path) -> None:
    assert tls_files(load_settings({"data_dir": tmp_path})) is None


def test_a_given_certificate_is_used_as_it_is(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    files = tls_files(load_settings({"data_dir": tmp_path, "tls_cert": cert, "tls_key": key}))
    assert files is not None
    assert (files.cert, files.key, files.self_signed) == (cert.resolve(), key.resolve(), False)


def test_self_signed_covers_the_servers_addresses_and_is_kept(tmp_path: Path) -> None:
    settings = load_settings(
        {"data_dir": tmp_path / "data", "host": "192.168.1.20", "tls_self_signed": True}
    )
    files = tls_files(settings)
    assert files is not None
    assert files.self_signed
    assert files.cert.parent == (tmp_path / "data" / "tls").resolve()
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert files.cert.parent.stat().st_mode & 0o777 == 0o700
    dns, ips = names_in(files.cert)
    assert "localhost" in dns
    assert {"192.168.1.20", "127.0.0.1", "::1"} <= ips
    before = files.cert.read_bytes()
    # Started again with the same names: the same certificate (browsers' exception holds).
    again = tls_files(settings)
    assert again is not None
    assert again.cert.read_bytes() == before


def test_self_signed_is_made_again_when_the_names_change(tmp_path: Path) -> None:
    first = tls_files(
        load_settings({"data_dir": tmp_path, "host": "192.168.1.20", "tls_self_signed": True})
    )
    assert first is not None
    before = first.cert.read_bytes()
    moved = tls_files(
        load_settings({"data_dir": tmp_path, "host": "10.8.0.1", "tls_self_signed": True})
    )
    assert moved is not None
    assert moved.cert.read_bytes() != before
    _, ips = names_in(moved.cert)
    assert ipaddress.ip_address("10.8.0.1") in {ipaddress.ip_address(a) for a in ips}
    assert "192.168.1.20" not in ips
