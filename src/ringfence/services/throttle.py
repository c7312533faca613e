"""Throttling of logins and registrations, against guessing and mass sign-ups.

Logins are limited three ways, none of which locks an account's owner out:

- per client address, whatever the account (one address cannot try many accounts);
- per account *and* address (one address cannot guess one account for long);
- per account, from all addresses together: an account under guessing is *slowed*,
  meaning that each address may then try it only a few times per window. An address
  that has been guessing is refused; its owner, from an address that has not, still
  gets in. (The old rule refused every login to an account after 20 attempts from
  anywhere, so anyone could lock anyone out for 15 minutes.)

Registrations are limited per address. An address is counted by
:func:`address_bucket` (an IPv6 address by its /64). Addresses are used only as
counter keys in ephemeral state (memory or Redis, expiring with the window) and never
stored or logged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ringfence.services.errors import RateLimited
from ringfence.services.ratelimit import RateLimiter, retry_after

LOGIN_ACCOUNT_WINDOW_S = 15 * 60
LOGIN_ADDRESS_WINDOW_S = 60
REGISTRATION_WINDOW_S = 60 * 60
# The bucket of logins whose client address is unknown (no peer address at all).
UNKNOWN_ADDRESS = "-"


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
    login_attempts_per_account: int = 20  # per 15 minutes, all addresses: then slowed
    login_attempts_per_account_from_address: int = 10  # per 15 minutes
    login_attempts_when_slowed: int = 3  # per 15 minutes and address, once slowed
    login_attempts_per_address: int = 30  # per minute, any account
    registrations_per_address: int = 30  # per hour


class AccountThrottle:
    def __init__(self, limiter: RateLimiter, limits: AccountLimits) -> None:
        self._limiter = limiter
        self._limits = limits

    async def login(self, username: str, address: str | None) -> None:
        """Count a login attempt before its password is checked; raise RateLimited
        (429) if it may not be made now. Refused attempts are not counted."""
        limits = self._limits
        bucket = UNKNOWN_ADDRESS if address is None else address_bucket(address)
        if address is not None:
            await self._hit(
                f"login:addr:{bucket}", limits.login_attempts_per_address, LOGIN_ADDRESS_WINDOW_S
            )
        account = username[:64]
        # Every attempt on the account counts here, refused or not below, so that one
        # address hammering it slows it as surely as many addresses do.
        slowed = (
            await self._limiter.hit(
                f"login:user:{account}",
                limit=limits.login_attempts_per_account,
                window_s=LOGIN_ACCOUNT_WINDOW_S,
            )
            is not None
        )
        per_address = (
            limits.login_attempts_when_slowed
            if slowed
            else limits.login_attempts_per_account_from_address
        )
        # One key, two limits: an address that guessed before the account was slowed
        # is over the tighter limit at once; one that did not still has its tries.
        await self._hit(f"login:pair:{account}:{bucket}", per_address, LOGIN_ACCOUNT_WINDOW_S)

    async def register(self, address: str | None) -> None:
        if address is not None:
            await self._hit(
                f"register:addr:{address_bucket(address)}",
                self._limits.registrations_per_address,
                REGISTRATION_WINDOW_S,
            )

    async def _hit(self, key: str, limit: int, window_s: int) -> None:
        wait = await self._limiter.hit(key, limit=limit, window_s=window_s)
        if wait is not None:
            raise RateLimited(
                "too_many_attempts", "too many attempts; try again later", retry_after(wait)
            )
