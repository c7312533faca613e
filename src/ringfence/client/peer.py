"""One WebRTC peer connection, built and checked the way a Ringfence call needs it.

A call may hold two peer connections at once: the one carrying media and, during a
transport switch, the one that replaces it. Both must be made the same way, so that
way lives here, once:

- **Only the server's ICE configuration.** The connection is built from exactly the
  ``ice_servers`` and ``ice_transport_policy`` the server handed out (never aiortc's
  default public STUN server), so a relayed user's address never leaves the relay.
- **Each connection sends its own copy of the local tracks** (:class:`LocalMedia`):
  aiortc stops a sender's track when its connection closes, and a switch closes the
  old connection while the call goes on.
- **The other side's candidates wait** until the remote description is set, and are
  then applied in the order they came.
- **A description that cannot carry the call is refused at once** (no relay candidate
  on a relayed side), within seconds rather than after a media timeout.

This module knows nothing about signaling or the call's state: it reports the tracks
that arrive and the connection's state to the callbacks it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from ringfence.client import call_text as text
from ringfence.client.aiortc_private import nominated_pair, share_certificate
from ringfence.client.api import IceServer
from ringfence.client.call_types import CallEnded, CandidateInfo, SelectedPair

__all__ = [
    "RELAY_GATHER_TIMEOUT_S",
    "LocalMedia",
    "PeerConnection",
    "Policy",
    "gathering_problem",
    "parse_candidate",
    "rtc_configuration",
]

Policy = Literal["relay", "all"]
# aioice gives up on a TURN server that has not answered within this long and gathers
# nothing from it; no relay candidate by then means the relay is unreachable or refused.
RELAY_GATHER_TIMEOUT_S = 5.0


def rtc_configuration(ice_servers: Sequence[IceServer], policy: Policy) -> RTCConfiguration:
    """The server's ICE configuration, and nothing else: an empty list stays empty so
    aiortc never falls back to its default public STUN server."""
    servers = [
        RTCIceServer(
            urls=list(server["urls"]),
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in ice_servers
    ]
    return RTCConfiguration(
        iceServers=servers,
        iceTransportPolicy=(
            RTCIceTransportPolicy.RELAY if policy == "relay" else RTCIceTransportPolicy.ALL
        ),
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,  # one ICE transport: one TURN allocation
    )


def _candidate_lines(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("a=candidate:"))


def _relay_candidates(sdp: str) -> int:
    return sum(
        1 for line in sdp.splitlines() if line.startswith("a=candidate:") and " typ relay" in line
    )


def gathering_problem(sdp: str, policy: Policy) -> str | None:
    """Why the candidates gathered for ``sdp`` cannot carry a call, or None.

    A relayed side needs a relay candidate, and aiortc gives up on a TURN server that
    has not answered within RELAY_GATHER_TIMEOUT_S: so this is known within seconds,
    not after a media timeout."""
    if policy == "relay" and _relay_candidates(sdp) == 0:
        return text.no_relay_candidate(RELAY_GATHER_TIMEOUT_S)
    if _candidate_lines(sdp) == 0:
        return text.NO_CANDIDATES
    return None


def parse_candidate(
    line: str, sdp_mid: str | None, sdp_mline_index: int | None
) -> RTCIceCandidate | None:
    """The other side's trickled candidate as aiortc takes it, or None for the empty
    end-of-candidates one (aiortc learns that from the SDP already). Raises ValueError
    when the line is not a candidate."""
    line = line.strip()
    if not line:
        return None
    line = line.removeprefix("a=").removeprefix("candidate:")
    try:
        parsed = candidate_from_sdp(line)
    except (AssertionError, ValueError, IndexError) as exc:
        raise ValueError("not an ICE candidate") from exc
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = sdp_mline_index
    return parsed


class LocalMedia:
    """This side's tracks, for the whole call. A peer connection sends copies (see the
    module docstring); the tracks themselves are stopped once, when the call ends."""

    def __init__(self) -> None:
        self.tracks: list[MediaStreamTrack] = []
        self._relay = MediaRelay()

    def copy(self, track: MediaStreamTrack) -> MediaStreamTrack:
        return self._relay.subscribe(track)

    def stop(self) -> None:
        for track in self.tracks:
            track.stop()


class PeerConnection:
    """An aiortc peer connection under the server's ICE configuration.

    ``on_track`` and ``on_state`` are called with this object (so a caller holding
    several can tell them apart) for each remote track and each connection state.
    ``certificate_of`` gives it another connection's DTLS certificate: the same
    fingerprints, so the same verification words, after a switch.
    """

    def __init__(
        self,
        ice_servers: Sequence[IceServer],
        policy: Policy,
        *,
        on_track: Callable[[PeerConnection, MediaStreamTrack], None],
        on_state: Callable[[PeerConnection, str], None],
        certificate_of: PeerConnection | None = None,
    ) -> None:
        self.policy: Policy = policy
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers, policy))
        if certificate_of is not None:
            share_certificate(certificate_of.pc, self.pc)
        self._held: list[RTCIceCandidate] = []

        @self.pc.on("track")
        def track(track: MediaStreamTrack) -> None:
            on_track(self, track)

        @self.pc.on("connectionstatechange")
        def state() -> None:
            on_state(self, self.pc.connectionState)

    @property
    def local_sdp(self) -> str:
        return str(self.pc.localDescription.sdp)

    @property
    def remote_sdp(self) -> str:
        return str(self.pc.remoteDescription.sdp)

    def receiving(self) -> list[str]:
        """The kinds of media this connection has transceivers for."""
        return [transceiver.kind for transceiver in self.pc.getTransceivers()]

    # --- descriptions -----------------------------------------------------------------

    def add_media(self, local: LocalMedia, *, receive: Sequence[str]) -> None:
        """Send copies of the local tracks, and receive every kind in ``receive``
        (receive-only where this side sends nothing of that kind)."""
        kinds = {track.kind for track in local.tracks}
        for track in local.tracks:
            self.pc.addTrack(local.copy(track))
        for kind in dict.fromkeys(receive):
            if kind not in kinds:
                self.pc.addTransceiver(kind, direction="recvonly")

    async def make_offer(self) -> str:
        """The offer, with every candidate: aiortc gathers them all before returning."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.local_sdp

    async def take_offer(self, sdp: str, local: LocalMedia) -> list[MediaStreamTrack]:
        """Set the other side's offer and send a copy of each local track of a kind it
        offered. Returns the local tracks it did not offer (not sent)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        offered = set(self.receiving())
        unsent = []
        for track in local.tracks:
            if track.kind in offered:
                self.pc.addTrack(local.copy(track))
            else:
                unsent.append(track)
        return unsent

    async def make_answer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.local_sdp

    async def take_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def check_gathered(self, sdp: str) -> None:
        """Raise :class:`CallEnded` if ``sdp`` cannot carry a call under this policy."""
        problem = gathering_problem(sdp, self.policy)
        if problem is not None:
            raise CallEnded("failed", problem)

    # --- the other side's candidates ----------------------------------------------------

    def hold(self, candidates: Sequence[RTCIceCandidate]) -> None:
        """Keep candidates that came before this connection existed."""
        self._held.extend(candidates)

    async def add_candidate(self, candidate: RTCIceCandidate) -> None:
        """Apply a remote candidate, or hold it until the remote description is set
        (see :meth:`release_candidates`)."""
        if self.pc.remoteDescription is None:
            self._held.append(candidate)
        else:
            await self.pc.addIceCandidate(candidate)

    async def release_candidates(self) -> None:
        """Apply the held candidates, once the remote description is set."""
        held, self._held = self._held, []
        for candidate in held:
            await self.pc.addIceCandidate(candidate)

    # --- what it does -------------------------------------------------------------------

    def selected_pair(self) -> SelectedPair | None:
        """The nominated ICE pair of the (bundled) transport, or None before ICE has
        completed or after teardown."""
        pair = nominated_pair(self.pc)
        if pair is None:
            return None
        local, remote = pair
        return SelectedPair(
            local=CandidateInfo(local.type, local.host, local.port, local.transport),
            remote=CandidateInfo(remote.type, remote.host, remote.port, remote.transport),
        )

    async def packets_received(self) -> int:
        """Packets the connection's transport(s) received so far (RTP, RTCP and DTLS),
        or -1 once it is closed."""
        try:
            report = await self.pc.getStats()
        except Exception:  # closed meanwhile: count it as nothing new
            return -1
        return sum(
            int(getattr(stats, "packetsReceived", 0))
            for stats in report.values()
            if getattr(stats, "type", None) == "transport"
        )

    async def close(self) -> None:
        await self.pc.close()
