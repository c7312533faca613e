"""A local Web Push service for tests: what a browser vendor's push service does with
a push (RFC 8030), minus the delivery.

It receives each push on 127.0.0.1, checks its VAPID JWT (RFC 8292, ES256) against
the server's public key (``aud`` the endpoint's origin, ``exp`` at most 24 hours
ahead, ``sub`` present), and decrypts the aes128gcm body (RFC 8291) with the private
key of a subscription made here as a browser makes one. Nothing of Ringfence's own
code is used for either.

Each subscription's path chooses the answer: ``/gone/...`` answers 410, ``/hang/...``
holds the request until :meth:`LocalPushService.release` (a push service that hangs).
A thread-per-request server, so it serves async tests and browser tests alike.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """A browser's side of a push subscription: its endpoint, its key pair, its auth."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def path(self) -> str:
        return "/" + self.endpoint.split("/", 3)[3]

    def to_json(self) -> dict[str, Any]:
        """As ``PushSubscription.toJSON()`` gives it."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


def make_subscription(endpoint: str) -> Subscription:
    """A subscription as a browser makes one: a fresh P-256 key pair and auth secret."""
    return Subscription(endpoint, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    payload: dict[str, Any] | None  # decrypted; None when no subscription here matched


def verify_vapid(authorization: str, public_key: str, origin: str) -> dict[str, Any]:
    """The claims of a ``vapid t=..., k=...`` header, checked; AssertionError if not."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization[:10]
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == public_key, "signed with another key"
    header_b64, claims_b64, sig_b64 = parts["t"].split(".")
    header = json.loads(unb64url(header_b64))
    assert header["alg"] == "ES256", header
    signature = unb64url(sig_b64)
    assert len(signature) == 64
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    try:
        key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID JWT's signature does not verify") from None
    claims: dict[str, Any] = json.loads(unb64url(claims_b64))
    assert claims["aud"] == origin, claims
    now = time.time()
    assert now < claims["exp"] <= now + 24 * 3600, claims
    assert claims.get("sub"), claims
    return claims


class LocalPushService:
    def __init__(self, vapid_public_key: str = "") -> None:
        self.vapid_public_key = vapid_public_key  # set once the server under test is up
        self.subscriptions: dict[str, Subscription] = {}
        self.pushes: list[Push] = []
        self.errors: list[str] = []
        self.hung = threading.Event()  # a /hang/ request has arrived
        self._release = threading.Event()
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                service._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalPushService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self._release.set()

    def subscribe(self, kind: str = "ok") -> Subscription:
        """A new browser subscription on this service; ``kind`` "gone" or "hang"
        chooses how its pushes are answered."""
        sub = make_subscription(f"{self.origin}/{kind}/{secrets.token_urlsafe(16)}")
        self.subscriptions[sub.path] = sub
        return sub

    def payloads(self, sub: Subscription) -> list[dict[str, Any]]:
        with self._lock:
            return [p.payload for p in self.pushes if p.path == sub.path and p.payload]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        try:
            length = int(request.headers.get("Content-Length", "0"))
            body = request.rfile.read(length)
            headers = {k.lower(): v for k, v in request.headers.items()}
            claims = verify_vapid(headers["authorization"], self.vapid_public_key, self.origin)
            assert headers["content-encoding"] == "aes128gcm", headers
            sub = self.subscriptions.get(request.path)
            payload = None
            if sub is not None:
                plain = http_ece.decrypt(
                    body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
                )
                payload = json.loads(plain)
            with self._lock:
                self.pushes.append(Push(request.path, headers, claims, payload))
        except Exception as exc:  # reported by the test, which asserts errors == []
            self.errors.append(f"{type(exc).__name__}: {exc}")
            request.send_response(400)
            request.end_headers()
            return
        if request.path.startswith("/hang/"):
            self.hung.set()
            self._release.wait(30)
        status = 410 if request.path.startswith("/gone/") else 201
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()
