"""Short-lived TURN credentials in coturn's shared-secret scheme.

Ringfence never hands out long-lived TURN accounts. Every call gets a fresh
credential pair that the relay can verify on its own, without a database
shared with Ringfence, using the scheme coturn calls the "TURN REST API"
(``use-auth-secret``):

* username   = ``"<unix expiry>:<opaque>"``
* credential = ``base64(HMAC-SHA1(shared secret, username))``

The opaque part of a user's credential is a *pseudonym* of their account:
``HMAC-SHA256(pseudonym key, account id)``, the same for every credential the
account gets. coturn counts ``user-quota`` by that part (it drops the expiry
before counting), so one account can hold only so many allocations however many
credentials it collects; with a random part every credential was a fresh "user"
and a few accounts could fill ``total-quota``.

What the pseudonym gives away, and what it does not:

* Synapse puts the Matrix user id there; Ringfence does not. The key is the
  deployment's own (not the TURN secret), so the relay operator's logs show a
  stable opaque name per account, not who it is, and the same person has
  unrelated pseudonyms on two deployments.
* Within one deployment the relay can now tell that two allocations belong to
  the same account. That is the price of a per-account quota; the relay never
  learns whom they called.

Credentials that belong to no account (the relay self-checks of
:mod:`ringfence.turn.verify`) keep a random part, so a check never counts
against anyone's quota.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_TTL_S = 1
MAX_TTL_S = 600
MIN_SECRET_BYTES = 16
PSEUDONYM_KEY_BYTES = 32
# 128 bits of the HMAC: collisions between accounts are out of reach, and it is
# as long as the random part it replaces.
_PSEUDONYM_BYTES = 16

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
        *,
        pseudonym_key: bytes | None = None,
    ) -> None:
        if pseudonym_key is not None:
            if len(pseudonym_key) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"the TURN pseudonym key must be at least {MIN_SECRET_BYTES} bytes"
                )
            if hmac.compare_digest(pseudonym_key, secret):
                # The key must not be something the relay (and whoever reads its
                # configuration) knows: pseudonyms would be as good as account ids.
                raise ValueError("the TURN pseudonym key must not be the TURN shared secret")
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
        self._pseudonym_key = pseudonym_key

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    def issue(self) -> IceServer:
        """Return a credential that belongs to no account: a random user name, its own
        quota. For the relay's self-checks and tests, never for a user."""
        return self._issue(secrets.token_urlsafe(_PSEUDONYM_BYTES))

    def issue_for(self, account_id: int) -> IceServer:
        """Return a credential for ``account_id``, under its stable pseudonym, so that
        the relay's per-user quota counts every allocation of the account together."""
        return self._issue(self.pseudonym(account_id))

    def pseudonym(self, account_id: int) -> str:
        """The account's TURN user name (without the expiry): opaque and stable."""
        if self._pseudonym_key is None:
            raise RuntimeError("this issuer has no pseudonym key: it cannot issue for accounts")
        message = f"ringfence-turn-user:{account_id}".encode()
        digest = hmac.new(self._pseudonym_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_PSEUDONYM_BYTES]).decode("ascii").rstrip("=")

    def _issue(self, opaque: str) -> IceServer:
        expiry = int(self._clock()) + self._ttl_s
        username = f"{expiry}:{opaque}"
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


def load_pseudonym_key(path: Path) -> bytes:
    """Read the key that turns account ids into TURN pseudonyms, creating it (0600, in a
    0700 directory) on first use.

    It must outlive restarts: a new key would give every account a new pseudonym, and
    the allocations of the old one would not count against the new. It lives apart
    from the TURN secret, which the embedded relay renews at every start. Several
    nodes behind one relay must share the file, or each counts its own quota.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = _create_pseudonym_key(path)
    except OSError as exc:
        raise ValueError(f"cannot read the TURN pseudonym key {path}: {exc.strerror}") from exc
    key = raw.strip()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the TURN pseudonym key {path} is too short ({len(key)} bytes): use at least "
            f"{MIN_SECRET_BYTES}, or delete it to have a new one made"
        )
    return key


def _create_pseudonym_key(path: Path) -> bytes:
    key = secrets.token_hex(PSEUDONYM_KEY_BYTES).encode("ascii")
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
        try:
            # A hard link appears whole or not at all: of two processes starting at
            # once, one links its key and both use it.
            os.link(draft, path)
        except FileExistsError:
            return path.read_bytes()
        finally:
            draft.unlink()
    except OSError as exc:
        raise ValueError(f"cannot create the TURN pseudonym key {path}: {exc.strerror}") from exc
    return key


def generate_secret() -> str:
    """Return a new 256-bit secret, hex-encoded so it is safe in any config file."""
    return secrets.token_hex(32)
