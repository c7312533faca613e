"""Short-lived TURN credentials in coturn's shared-secret scheme.

Ringfence never hands out long-lived TURN accounts. Every call gets a fresh
credential pair that the relay can verify on its own, without a database
shared with Ringfence, using the scheme coturn calls the "TURN REST API"
(``use-auth-secret``):

* username   = ``"<unix expiry>:<opaque>"``
* credential = ``base64(HMAC-SHA1(shared secret, username))``

The opaque part is random on purpose. Synapse puts the Matrix user id there;
Ringfence does not, so the relay operator's logs cannot tell who is calling
whom, and two calls by the same person cannot be linked by their TURN
username.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_TTL_S = 1
MAX_TTL_S = 600
MIN_SECRET_BYTES = 16

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TURN_URL = re.compile(
    r"(?P<scheme>turns?):"
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)


@dataclass(frozen=True)
class IceServer:
    """One entry of ``RTCConfiguration.iceServers``, ready to send to a client."""

    urls: tuple[str, ...]
    username: str
    credential: str

    def to_json(self) -> dict[str, object]:
        """Shape the entry exactly like WebRTC's ``RTCIceServer`` dictionary."""
        return {"urls": list(self.urls), "username": self.username, "credential": self.credential}


def validate_turn_url(url: str) -> str:
    """Refuse anything but a ``turn:``/``turns:`` URL (RFC 7065).

    A ``stun:`` URL or a typo here would make clients fall back to direct
    candidates, which is exactly the IP leak Ringfence exists to prevent, so
    a bad URL must stop start-up instead of being passed along.
    """
    match = _TURN_URL.fullmatch(url)
    if match is None:
        raise ValueError(
            f"invalid TURN URL {url!r}: expected turn:HOST[:PORT][?transport=udp|tcp] "
            "or turns:HOST[:PORT][?transport=udp|tcp]"
        )
    host = match.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid TURN URL {url!r}: {host} is not an IPv6 address") from None
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid TURN URL {url!r}: port {port} is out of range")
    return url


class TurnCredentialIssuer:
    """Mints per-call TURN credentials that the relay checks with the shared secret.

    The TTL is capped at ten minutes: the credential only has to survive
    until the client's first Allocate, and coturn keeps an allocation alive
    for as long as the same client session refreshes it, so a long TTL would
    only lengthen the window in which a leaked credential is useful.
    """

    def __init__(
        self,
        secret: bytes,
        urls: Sequence[str],
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the TURN shared secret must be at least {MIN_SECRET_BYTES} bytes")
        if isinstance(urls, str):
            raise TypeError("urls must be a sequence of URLs, not a single string")
        if not urls:
            raise ValueError("at least one TURN URL is required")
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise ValueError(
                f"TURN credential TTL must be between {MIN_TTL_S} and {MAX_TTL_S} seconds, "
                f"got {ttl_s}: credentials are short-lived by policy"
            )
        self._secret = secret
        self._urls = tuple(validate_turn_url(url) for url in urls)
        self._ttl_s = ttl_s
        self._clock = clock

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    def issue(self) -> IceServer:
        """Return a fresh credential, unlinkable to the caller and to earlier ones."""
        expiry = int(self._clock()) + self._ttl_s
        username = f"{expiry}:{secrets.token_urlsafe(16)}"
        return IceServer(urls=self._urls, username=username, credential=self.password_for(username))

    def password_for(self, username: str) -> str:
        """Compute the password coturn expects for ``username`` under our secret."""
        digest = hmac.new(self._secret, username.encode("utf-8"), hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")


def load_secret(value: str | None, file: Path | None) -> bytes:
    """Read the TURN shared secret from a value or, preferably, a file.

    A file keeps the secret out of the environment and ``ps`` output. Both at
    once is refused because silently preferring one hides a misconfiguration.
    A short secret is refused because anyone who guesses it can mint
    credentials and use the relay as an open proxy.
    """
    if value is not None and file is not None:
        raise ValueError("give the TURN secret either as a value or as a file, not both")
    if file is not None:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the TURN secret file {file}: {exc.strerror}") from exc
        secret = raw.rstrip(b"\r\n")
        source = f"the TURN secret file {file}"
    elif value is not None:
        secret = value.rstrip("\r\n").encode("utf-8")
        source = "the TURN secret"
    else:
        raise ValueError("no TURN secret given: set a value or a file")
    if not secret:
        raise ValueError(f"{source} is empty")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{source} is too short ({len(secret)} bytes): use at least {MIN_SECRET_BYTES} "
            "bytes, for example the output of generate_secret()"
        )
    return secret


def generate_secret() -> str:
    """Return a new 256-bit secret, hex-encoded so it is safe in any config file."""
    return secrets.token_hex(32)
