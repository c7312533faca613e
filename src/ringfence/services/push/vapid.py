"""The server's VAPID key (RFC 8292): it signs every push request, so that a push
service accepts pushes to a subscription only from the server it was made for.

The key lives in the data dir (``vapid-private.pem``, 0600, made on first start) or
in the file ``push_vapid_private_key_file`` names. It must outlive restarts and be
shared by every node: browsers subscribed with its public key, and a new key would
silently orphan every subscription.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

# How long a signed request stays valid (RFC 8292 allows at most 24 hours).
TOKEN_LIFETIME_S = 12 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class VapidKey:
    def __init__(self, pem: bytes, subject: str) -> None:
        # no-strict: the subject is checked by Settings (mailto: or https:).
        self._vapid = Vapid02.from_pem(pem)
        self._vapid.conf["no-strict"] = True
        self._subject = subject
        point = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = b64url(point)  # what browsers subscribe with

    def authorization(self, origin: str) -> str:
        """The ``Authorization: vapid t=..., k=...`` value for a push to ``origin``."""
        claims = {"aud": origin, "exp": int(time.time()) + TOKEN_LIFETIME_S, "sub": self._subject}
        header: str = self._vapid.sign(claims)["Authorization"]
        return header

    @classmethod
    def load(cls, path: Path, subject: str) -> VapidKey:
        """Read the PEM key at ``path``, creating it (0600) on first use. ValueError
        says what is wrong with a file that is there."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            pem = _create(path)
        except OSError as exc:
            raise ValueError(f"cannot read the VAPID key {path}: {exc.strerror}") from exc
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"{path} is not an unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError(f"{path} is not a P-256 (prime256v1) key")
        return cls(pem, subject)


def _create(path: Path) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written under another name and linked into place, so that two nodes starting at
    # once keep one key between them (the second link fails and it reads the first's).
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(draft)
    return pem
