"""ICE restarts for aiortc, which has none of its own.

Switching a call between relayed and direct mid-call means an ICE restart: a new ICE
username and password, candidates gathered under the new transport policy (only
relay candidates, when switching to the relay), fresh connectivity checks, and then
the media moving to the new pair. The DTLS session - and with it the SRTP keys and the
verification code - carries on unchanged, exactly as in a browser.

aiortc 1.16 runs one aioice ``Connection`` per ICE transport for the transport's whole
life. An :class:`IceRestart` puts a second, freshly gathered ``Connection`` in its
place: the gatherer and transport hand the new agent's ufrag, password and candidates
to the next description, remote candidates go to it, and once it has nominated a pair
the transport's send and receive move over to it and the old agent is closed. The
DTLS reader that is already waiting on the old agent's queue keeps reading, because
the new agent delivers into that same queue. Until the new pair is up, media goes on
over the old one, so the switch causes no gap.

This leans on aiortc's and aioice's private attributes, so the versions are pinned in
``pyproject.toml`` and :func:`check_supported` refuses to run against anything else
rather than corrupting a live call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

from aioice import Connection, TransportPolicy
from aioice.ice import ConnectionEvent
from aiortc import RTCIceServer, RTCPeerConnection
from aiortc.rtcicetransport import RTCIceTransport, connection_kwargs
from aiortc.sdp import SessionDescription

log = logging.getLogger(__name__)

__all__ = ["IceRestart", "IceRestartUnsupported", "check_supported"]

_PRIVATE = (
    (RTCIceTransport, ("_connection", "_recv", "_send", "iceGatherer")),
    (Connection, ("_queue", "_nominated", "_emit_event", "ice_controlling")),
)


class IceRestartUnsupported(RuntimeError):
    """The installed aiortc/aioice do not have the internals this module relies on."""


def check_supported(transport: RTCIceTransport) -> None:
    for kind, names in _PRIVATE:
        subject: Any = transport if kind is RTCIceTransport else transport._connection
        missing = [name for name in names if not hasattr(subject, name)]
        if missing:
            raise IceRestartUnsupported(
                f"this aiortc/aioice cannot restart ICE (no {', '.join(missing)}); "
                "install the versions pinned by Ringfence"
            )


def ice_transports(pc: RTCPeerConnection) -> list[RTCIceTransport]:
    """The distinct ICE transports of a connection (one, with max-bundle)."""
    found: dict[int, RTCIceTransport] = {}
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport.transport
        if transport.state != "closed":
            found.setdefault(id(transport), transport)
    return list(found.values())


def remote_ice_parameters(sdp: str) -> tuple[str, str]:
    """The remote ICE username fragment and password a description announces."""
    description = SessionDescription.parse(sdp)
    for media in description.media:
        if media.ice is not None and media.ice.usernameFragment and media.ice.password:
            return media.ice.usernameFragment, media.ice.password
    raise ValueError("the description has no ICE username fragment and password")


class IceRestart:
    """One ICE restart of one peer connection.

    Call :meth:`prepare` before creating the offer or answer that announces the
    restart, then :meth:`complete` with the remote description of the restart, and
    :meth:`abandon` if the call ends or the restart fails in between.
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        ice_servers: Sequence[RTCIceServer],
        policy: Literal["relay", "all"],
    ) -> None:
        transports = ice_transports(pc)
        if len(transports) != 1:
            raise IceRestartUnsupported(
                f"an ICE restart needs exactly one (bundled) ICE transport, not {len(transports)}"
            )
        self._transport = transports[0]
        check_supported(self._transport)
        self._old: Connection = self._transport._connection
        self._new = Connection(
            ice_controlling=self._old.ice_controlling,
            components=1,
            transport_policy=TransportPolicy.RELAY if policy == "relay" else TransportPolicy.ALL,
            **connection_kwargs(list(ice_servers)),
        )
        # The DTLS reader already awaits the old agent's queue; the new agent feeds it.
        self._new._queue = self._old._queue
        self._installed = False
        self._done = False

    @property
    def local_candidate_count(self) -> int:
        return len(self._new.local_candidates)

    async def prepare(self) -> None:
        """Gather under the new policy and make the new agent the one the next local
        description announces and remote candidates go to."""
        await self._new.gather_candidates()
        gatherer = self._transport.iceGatherer
        gatherer._connection = self._new
        gatherer._remote_candidates_end = False
        self._transport._connection = self._new
        self._installed = True

    async def complete(self, remote_sdp: str) -> None:
        """Run the new connectivity checks against the remote side of the restart, then
        move the media to the new pair and close the old agent.

        Raises ConnectionError (or TimeoutError from an enclosing timeout) when no pair
        succeeds; the caller then abandons the restart."""
        if not self._installed:
            raise RuntimeError("prepare() the restart first")
        ufrag, password = remote_ice_parameters(remote_sdp)
        self._new.remote_username = ufrag
        self._new.remote_password = password
        await self._new.connect()
        self._transport._recv = self._new.recv
        self._transport._send = self._new.send
        self._done = True
        await self._retire(self._old)
        log.info("ICE restart complete")

    async def abandon(self) -> None:
        """Close the new agent and give the transport back its old one, so that closing
        the peer connection closes (and frees the relay allocation of) each agent once."""
        if self._done:
            return
        self._done = True
        if self._installed:
            self._transport.iceGatherer._connection = self._old
            self._transport._connection = self._old
        await self._retire(self._new)

    async def _retire(self, agent: Connection) -> None:
        # Detach the shared queue first: closing an agent wakes its queue's reader with
        # "connection lost", which must not reach the DTLS reader of the live agent.
        agent._queue = asyncio.Queue()
        # The transport's monitor waits on the old agent's events; wake it with a
        # harmless event so that it goes on to watch the agent now in place, instead
        # of taking this agent's closing for the transport failing.
        agent._emit_event(ConnectionEvent())
        await agent.close()
