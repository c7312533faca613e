"""One push request: encrypt (RFC 8291, aes128gcm, through pywebpush), sign (RFC 8292
VAPID) and POST it (RFC 8030) to an address checked right before (endpoints.py).

No redirect is followed, every request has a short timeout, and nothing here logs the
endpoint URL: it is a capability, whoever holds it can push to that browser.
"""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

import httpx
from pywebpush import WebPusher

from ringfence.services.push.endpoints import RefusedEndpoint, resolve
from ringfence.services.push.vapid import VapidKey


class Outcome(enum.Enum):
    SENT = "sent"
    GONE = "gone"  # 404/410: the subscription no longer exists; delete it
    REFUSED = "refused"  # the endpoint's host no longer resolves to a public address
    FAILED = "failed"  # any other answer, a timeout or a network error


def encrypt(payload: dict[str, Any], p256dh: str, auth: str) -> bytes:
    """The aes128gcm body of ``payload`` for the browser that holds these keys."""
    pusher = WebPusher({"endpoint": "unused", "keys": {"p256dh": p256dh, "auth": auth}})
    data = json.dumps(payload, separators=(",", ":")).encode()
    body: bytes = pusher.encode(data, content_encoding="aes128gcm")["body"]
    return body


class Sender:
    def __init__(self, key: VapidKey, *, timeout_s: float, allow_insecure: bool) -> None:
        self._key = key
        self._allow_insecure = allow_insecure
        # httpx logs every request's URL at INFO ("HTTP Request: POST https://..."),
        # and a push's URL is the endpoint: keep those lines out of the log.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s),
            trust_env=False,  # no proxy from the environment sees the endpoints
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    async def send(
        self,
        endpoint: str,
        p256dh: str,
        auth: str,
        payload: dict[str, Any],
        *,
        ttl_s: int,
        urgency: str,
        topic: str | None = None,
    ) -> Outcome:
        try:
            target = await resolve(endpoint, allow_insecure=self._allow_insecure)
        except RefusedEndpoint:
            return Outcome.REFUSED
        body = encrypt(payload, p256dh, auth)
        host = target.origin.split("://", 1)[1]
        headers = {
            "Host": host,
            "TTL": str(ttl_s),
            "Urgency": urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self._key.authorization(target.origin),
        }
        if topic is not None:
            headers["Topic"] = topic  # a newer push of the same topic replaces a waiting one
        try:
            response = await self._client.post(
                target.url,
                content=body,
                headers=headers,
                # TLS to the checked address, with the certificate checked for the name.
                extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
            )
        except httpx.HTTPError:
            return Outcome.FAILED
        if response.status_code in (404, 410):
            return Outcome.GONE
        if 200 <= response.status_code < 300:
            return Outcome.SENT
        return Outcome.FAILED

    async def close(self) -> None:
        await self._client.aclose()
