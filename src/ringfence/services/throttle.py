"""Throttling of logins and registrations, against guessing and mass sign-ups.

Logins are limited per account (so a password cannot be guessed from many addresses)
and per client address (so one address cannot try many accounts). Registrations are
limited per address. Addresses are used only as counter keys in ephemeral state (memory
or Redis, expiring with the window) and never stored or logged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ringfence.realtime.ephemeral import RateLimiter, retry_after
from ringfence.services.errors import RateLimited

LOGIN_ACCOUNT_WINDOW_S = 15 * 60
LOGIN_ADDRESS_WINDOW_S = 60
REGISTRATION_WINDOW_S = 60 * 60


def address_bucket(address: str) -> str:
    """The key one client address is counted under: the address itself for IPv4, its
    /64 for IPv6. One subscriber gets a whole /64 and can use any of its 2^64 addresses,
    so counting full IPv6 addresses would give every client unlimited keys. An
    IPv4-mapped IPv6 address counts as the IPv4 address. Anything that is not an address
    (a Unix socket path) is used as it is, shortened."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class AccountLimits:
    login_attempts_per_account: int = 20  # per 15 minutes
    login_attempts_per_address: int = 30  # per minute
    registrations_per_address: int = 30  # per hour


class AccountThrottle:
    def __init__(self, limiter: RateLimiter, limits: AccountLimits) -> None:
        self._limiter = limiter
        self._limits = limits

    async def login(self, username: str, address: str | None) -> None:
        if address is not None:
            await self._hit(
                f"login:addr:{address}",
                self._limits.login_attempts_per_address,
                LOGIN_ADDRESS_WINDOW_S,
            )
        await self._hit(
            f"login:user:{username[:64]}",
            self._limits.login_attempts_per_account,
            LOGIN_ACCOUNT_WINDOW_S,
        )

    async def register(self, address: str | None) -> None:
        if address is not None:
            await self._hit(
                f"register:addr:{address}",
                self._limits.registrations_per_address,
                REGISTRATION_WINDOW_S,
            )

    async def _hit(self, key: str, limit: int, window_s: int) -> None:
        wait = await self._limiter.hit(key, limit=limit, window_s=window_s)
        if wait is not None:
            raise RateLimited(
                "too_many_attempts", "too many attempts; try again later", retry_after(wait)
            )
