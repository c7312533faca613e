"""Which push endpoints this server may send requests to (SSRF).

A push endpoint is a URL a browser hands in; the server later POSTs to it. Unchecked,
that lets anyone make the server send requests into its own network (a database, a
cloud metadata service, an admin page on loopback). So an endpoint must be ``https://``
on a host whose every address is public, and the host is resolved again right before
each send, and the request goes to an address checked then (DNS rebinding).

``push_allow_insecure_endpoints`` (tests only) lifts both rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ringfence.services.errors import ServiceError
from ringfence.wire.requests import ENDPOINT_MAX

RESOLVE_TIMEOUT_S = 3.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Prefixes that carry an IPv4 address inside an IPv6 one (RFC 6052 NAT64, well-known
# and local-use), so that the embedded address is what gets checked.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# Not globally reachable (the IANA special-purpose registries) where Python's
# is_global still says they are.
_NOT_GLOBAL = (ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv4Network("198.18.0.0/15"))
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class RefusedEndpoint(ServiceError):
    """A push endpoint this server will not send to: 422."""

    status = 422


@dataclass(frozen=True, slots=True)
class Target:
    """Where one push goes: the endpoint's parts, and the checked address to connect to."""

    scheme: str
    host: str  # as in the URL, for Host and TLS (SNI, certificate)
    port: int
    path: str  # path and query
    address: str

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    @property
    def url(self) -> str:
        """The URL the request is made to: the checked address, not the name."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{address}:{self.port}{self.path}"


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address, looking inside the IPv6 forms that
    embed an IPv4 one (mapped, 6to4, NAT64); Teredo is refused outright."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_public(ip.sixtofour)
        if ip.teredo is not None:
            return False
        if any(ip in net for net in _NAT64):
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if isinstance(ip, ipaddress.IPv4Address) and any(ip in net for net in _NOT_GLOBAL):
        return False
    return (
        ip.is_global
        and not ip.is_private
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
        and not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def parse(endpoint: str, *, allow_insecure: bool) -> tuple[str, str, int, str]:
    """The endpoint's scheme, host, port and path, or RefusedEndpoint."""
    if len(endpoint) > ENDPOINT_MAX or not endpoint.isascii() or not endpoint.isprintable():
        raise RefusedEndpoint("invalid_push_endpoint", "the push endpoint is not a valid URL")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise RefusedEndpoint(
            "invalid_push_endpoint", "the push endpoint is not a valid URL"
        ) from None
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise RefusedEndpoint("push_endpoint_not_https", "a push endpoint must be https://")
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise RefusedEndpoint("invalid_push_endpoint", "the push endpoint is not a valid URL")
    if not _HOSTNAME.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise RefusedEndpoint(
                "invalid_push_endpoint", "the push endpoint is not a valid URL"
            ) from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


async def resolve(endpoint: str, *, allow_insecure: bool) -> Target:
    """Check ``endpoint`` and resolve its host; every address must be public (unless
    insecure endpoints are allowed). RefusedEndpoint otherwise."""
    scheme, host, port, path = parse(endpoint, allow_insecure=allow_insecure)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
            )
        except (OSError, TimeoutError, UnicodeError):
            raise RefusedEndpoint(
                "push_endpoint_unresolvable", "the push endpoint's host does not resolve"
            ) from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise RefusedEndpoint(
                "push_endpoint_unresolvable", "the push endpoint's host does not resolve"
            )
    if not allow_insecure and not all(is_public(ip) for ip in addresses):
        raise RefusedEndpoint(
            "push_endpoint_not_public", "a push endpoint must be on a public address"
        )
    return Target(scheme, host, port, path, str(addresses[0]))
