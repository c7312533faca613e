"""Slow and oversized request heads, and connections per client address.

uvicorn bounds none of these for a server exposed directly. Measured on uvicorn 0.55
with httptools (what ``uvicorn[standard]`` runs): a connection that never sends a byte,
or sends a header line every few seconds, stays open for ever, and 20 MB of headers are
read and kept in memory. ``timeout_keep_alive`` only covers the quiet time *between*
requests, and ``h11_max_incomplete_event_size`` only the h11 implementation. An ASGI
middleware sees a request only once its headers are complete, too late for either.

So Ringfence serves HTTP through :func:`guarded_protocol`, uvicorn's own httptools
protocol with three additions:

- **a head deadline**: a new connection, and every request on it, must deliver its
  request line and headers within ``header_read_timeout_s``. A request cut off
  mid-head is answered 408 and closed; a connection that said nothing is closed;
- **a head size cap**: more than ``max_header_bytes`` before the headers end is
  answered 431 and closed;
- **connections per address**: one address (an IPv6 /64) may hold at most
  ``max_connections_per_address`` HTTP connections at once; the next is answered 503
  and closed. Trusted proxies are not counted (they carry everyone's connections).
  A connection that becomes a WebSocket leaves the count: sockets are bounded by their
  auth timeout and by ``ws_max_connections_per_user``.

The body (after the head) is bounded by :class:`ringfence.api.limits.BodyLimit`, and
the total number of connections by uvicorn's ``limit_concurrency`` (``max_connections``).
What stays open: a client may still read its *response* slowly; a reverse proxy in
front (docs/deployment.md) is the complete answer for a server on the internet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ringfence.services.throttle import address_bucket

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConnectionGuard:
    """The limits, and the open connections per address, shared by every connection
    of one server. Addresses live here only while their connections are open."""

    def __init__(
        self,
        *,
        header_timeout_s: float,
        max_header_bytes: int,
        per_address: int,
        trusted_proxies: Sequence[str],
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_header_bytes = max_header_bytes
        self.per_address = per_address
        self._trust_all = "*" in trusted_proxies
        self._trusted: list[IPNetwork] = []
        for proxy in trusted_proxies:
            try:
                self._trusted.append(ipaddress.ip_network(proxy, strict=False))
            except ValueError:
                continue  # uvicorn treats it as a literal (a socket path); so do we
        self._open: dict[str, int] = {}

    def open_count(self, bucket: str) -> int:
        return self._open.get(bucket, 0)

    def admit(self, host: str | None) -> tuple[bool, str | None]:
        """(admitted, the bucket to release when the connection ends, or None)."""
        if host is None or self._is_trusted(host):
            return True, None
        bucket = address_bucket(host)
        count = self._open.get(bucket, 0)
        if count >= self.per_address:
            return False, None
        self._open[bucket] = count + 1
        return True, bucket

    def release(self, bucket: str) -> None:
        count = self._open.get(bucket, 0) - 1
        if count > 0:
            self._open[bucket] = count
        else:
            self._open.pop(bucket, None)

    def _is_trusted(self, host: str) -> bool:
        if self._trust_all:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)


def guarded_protocol(guard: ConnectionGuard) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol bound to ``guard`` (for ``uvicorn.Config(http=...)``)."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": guard})


class GuardedHttpProtocol(HttpToolsProtocol):
    """See the module doc. Overrides only uvicorn's connection and parser callbacks,
    and calls each original."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rf_timer: asyncio.TimerHandle | None = None
        self._rf_bucket: str | None = None
        self._rf_in_head = False
        self._rf_head_bytes = 0
        self._rf_upgraded = False  # a WebSocket now: none of this applies any more

    # --- connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        admitted, self._rf_bucket = self.guard.admit(self.client[0] if self.client else None)
        if not admitted:
            self._rf_answer(
                503,
                "too_many_connections",
                "too many open connections from your address; try again shortly",
                extra=b"retry-after: 5\r\n",
            )
            return
        self._rf_arm()  # a new connection must start its first request in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._rf_end()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # From here on it is a WebSocket, with bounds of its own (module doc).
        self._rf_upgraded = True
        self._rf_end()
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._rf_upgraded or self.transport.is_closing():
            return
        if self._rf_in_head:
            self._rf_head_bytes += len(data)
            if self._rf_head_bytes > self.guard.max_header_bytes:
                self._rf_answer(
                    431,
                    "headers_too_large",
                    f"the request line and headers exceed {self.guard.max_header_bytes} bytes",
                )
        elif self._rf_timer is None and (self.cycle is None or self.cycle.response_complete):
            # Bytes that start no request (blank lines, the rest of a body the route
            # did not read) do not keep a connection open either.
            self._rf_arm()

    # --- parser callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._rf_in_head = True
        self._rf_head_bytes = 0
        self._rf_arm()

    def on_headers_complete(self) -> None:
        self._rf_in_head = False
        self._rf_disarm()
        super().on_headers_complete()

    # --- helpers -------------------------------------------------------------------

    def _rf_arm(self) -> None:
        self._rf_disarm()
        if self._rf_upgraded:
            return
        self._rf_timer = self.loop.call_later(self.guard.header_timeout_s, self._rf_timed_out)

    def _rf_disarm(self) -> None:
        if self._rf_timer is not None:
            self._rf_timer.cancel()
            self._rf_timer = None

    def _rf_end(self) -> None:
        self._rf_disarm()
        if self._rf_bucket is not None:
            self.guard.release(self._rf_bucket)
            self._rf_bucket = None

    def _rf_timed_out(self) -> None:
        self._rf_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier request is still being answered: the wait is the server's, not
            # the client's (a pipelined head). Give the head its time after that.
            self._rf_arm()
        elif self._rf_in_head and self._rf_head_bytes > 0:
            self._rf_answer(408, "request_timeout", "the request headers did not arrive in time")
        else:
            self.transport.close()  # a connection that asked for nothing

    def _rf_answer(self, status: int, code: str, detail: str, extra: bytes = b"") -> None:
        """Write a complete JSON error response and close: the request (if any) was
        never handed to the app."""
        self._rf_disarm()
        body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}.get(
            status, b"Service Unavailable"
        )
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, reason)
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n"
            + extra
            + b"\r\n"
            + body
        )
        self.transport.close()
