"""Addresses out of the coturn output that Ringfence passes on to its own log.

The supervisor logs each line coturn prints at DEBUG, and, at WARNING or ERROR, coturn's
last lines whenever it fails a check or is restarted. At coturn's default level (no
``verbose``, which Ringfence never sets) those lines name no client's own address, but
they do name every peer address a client asked the relay to reach and was refused
(``ERROR: A peer IP 192.168.1.20 denied in the range: ...``): an address taken from
someone's ICE candidates, often their home network's. So every IP address in those
records is masked, except the relay's own (what an operator needs to read a failure to
listen or to bind).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

MASK = "<address>"
# Candidates only: each match is checked with ipaddress before it is masked, so that
# times (12:34:56) and version numbers stay.
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
    r"(?:%[\w.-]+)?(?![0-9A-Fa-f:])"
)
# The loggers that carry coturn's output (ringfence.turn.supervisor).
RELAY_LOGGERS = ("ringfence.turn.supervisor", "ringfence.turn.coturn")


def _normal(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return None


def scrub(text: str, keep: Iterable[str] = ()) -> str:
    """``text`` with every IP address but those in ``keep`` replaced by ``<address>``."""
    kept = {_normal(address) for address in keep}

    def mask(match: re.Match[str]) -> str:
        found = _normal(match.group(0))
        if found is None or found in kept:
            return match.group(0)
        return MASK

    return _IPV4.sub(mask, _IPV6.sub(mask, text))


class AddressScrubber(logging.Filter):
    """A logger filter that masks addresses in each record's message (see
    :func:`scrub`). ``keep`` holds the relay's own addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.keep: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message, self.keep)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_SCRUBBER = AddressScrubber()


def scrub_relay_logs(relay_addresses: Iterable[str | None]) -> None:
    """Mask client-named addresses in coturn's output as Ringfence logs it, keeping
    ``relay_addresses`` (the relay's own). Process-wide; each relay started adds its
    addresses to those kept."""
    _SCRUBBER.keep.update(a for a in (_normal(x) for x in relay_addresses if x) if a)
    for name in RELAY_LOGGERS:
        logger = logging.getLogger(name)
        if _SCRUBBER not in logger.filters:
            logger.addFilter(_SCRUBBER)
