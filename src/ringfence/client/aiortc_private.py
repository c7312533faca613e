"""The two things the Python client needs that aiortc keeps private, in one place.

aiortc has no public API for either, and both are worth having:

- :func:`nominated_pair`: which ICE candidate pair carries the call, so the CLI can say
  "relayed" or "direct" and tests can check whose address was used. aiortc does not
  implement ``RTCIceTransport.getSelectedCandidatePair()``; aioice keeps the nominated
  pair per component in ``Connection._nominated``.
- :func:`share_certificate`: a transport switch builds a second peer connection, and
  giving it the first one's DTLS certificate keeps the fingerprints, and so the
  verification words, the same. aiortc takes no certificate in its configuration; it
  keeps them in the name-mangled ``RTCPeerConnection.__certificates``.

Each degrades instead of breaking when aiortc changes (no pair is reported; a switch
gets new words that both people can compare again), and
tests/unit/client/test_aiortc_private.py fails loudly against the aiortc installed, so
an upgrade that moves either attribute is noticed at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

_CERTIFICATES = "_RTCPeerConnection__certificates"


@dataclass(frozen=True, slots=True)
class PairEnd:
    type: str  # host, srflx, prflx, relay
    host: str
    port: int
    transport: str  # udp, tcp


def nominated_pair(pc: RTCPeerConnection) -> tuple[PairEnd, PairEnd] | None:
    """The nominated (local, remote) candidates of the connection's bundled transport,
    or None before ICE has completed, after teardown, or with an aiortc that no longer
    keeps them where this looks."""
    for transceiver in pc.getTransceivers():
        ice: Any = transceiver.sender.transport.transport
        connection = getattr(ice, "_connection", None)
        nominated = getattr(connection, "_nominated", None)
        if not isinstance(nominated, dict):
            return None
        # RTP and RTCP share component 1 (rtcp-mux).
        pair = nominated.get(1)
        if pair is not None:
            local, remote = pair.local_candidate, pair.remote_candidate
            return (
                PairEnd(local.type, local.host, local.port, local.transport),
                PairEnd(remote.type, remote.host, remote.port, remote.transport),
            )
    return None


def share_certificate(old: RTCPeerConnection, new: RTCPeerConnection) -> bool:
    """Give ``new`` the DTLS certificate of ``old`` (before ``new`` makes an offer or an
    answer). False, with a warning, when this aiortc keeps it elsewhere."""
    certificates = getattr(old, _CERTIFICATES, None)
    if certificates is None or not hasattr(new, _CERTIFICATES):
        log.warning("this aiortc cannot reuse the DTLS certificate: the words will change")
        return False
    setattr(new, _CERTIFICATES, certificates)
    return True
