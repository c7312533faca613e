"""The certificate Ringfence serves HTTPS, WSS and TURN over TLS with.

Browsers give the microphone and camera only to a secure origin, so off loopback the web
client needs HTTPS. An operator with a domain passes its certificate (``tls_cert`` and
``tls_key``). On a LAN there is usually no domain, so ``tls_self_signed`` makes one
certificate for this server and keeps it in the data directory: browsers warn once, and
after that the page is a secure context and calls work. The same files serve coturn's
TURN over TLS, so one certificate covers everything the server offers.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ringfence.config import Settings

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 365
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    self_signed: bool


def tls_files(settings: Settings) -> TlsFiles | None:
    """The certificate and key to serve, or None for plain HTTP.

    Idempotent: a self-signed certificate is made once, and made again only when it is
    about to expire or the names it must cover have changed."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return TlsFiles(settings.tls_cert, settings.tls_key, self_signed=False)
    if not settings.tls_self_signed:
        return None
    folder = (settings.data_dir / "tls").resolve()
    cert, key = folder / "self-signed.crt", folder / "self-signed.key"
    names, addresses = _subject_names(settings)
    if not _still_good(cert, names, addresses):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_self_signed(cert, key, names, addresses)
        log.info(
            "made a self-signed certificate for %s in %s",
            ", ".join([*names, *map(str, addresses)]),
            folder,
        )
    return TlsFiles(cert, key, self_signed=True)


def _subject_names(
    settings: Settings,
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """Every name and address a browser or TURN client may use for this server."""
    names = {"localhost"}
    addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    hosts = [settings.host, settings.turn_listen_ip, settings.turn_external_ip, settings.turn_host]
    hosts += [urlsplit(url).hostname for url in settings.public_urls]
    for host in hosts:
        if not host:
            continue
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            names.add(host.lower())
            continue
        if not address.is_unspecified:
            addresses.add(address)
    name = socket.gethostname()
    if name:
        names.add(name.lower())
    return sorted(names), sorted(addresses, key=lambda a: (a.version, int(a)))


def _still_good(
    cert_path: Path,
    names: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    if not cert_path.with_suffix(".key").is_file():
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    if left < datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(san.get_values_for_type(x509.DNSName)) == set(names) and set(
        san.get_values_for_type(x509.IPAddress)
    ) == set(addresses)


def _write_self_signed(
    cert_path: Path,
    key_path: Path,
    names: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Ringfence on {names[0]}")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt_names += [x509.IPAddress(a) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    # The key first, private from the moment it exists; then the certificate.
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(data)
