"""Real SDP for signaling-only tests, made once by aiortc on this machine."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription

_cached: tuple[str, str] | None = None


async def sdp_pair() -> tuple[str, str]:
    """(offer, answer) full of this machine's host candidates and addresses."""
    global _cached
    if _cached is None:
        offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
        offerer.addTransceiver("audio")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(
            RTCSessionDescription(offerer.localDescription.sdp, "offer")
        )
        await answerer.setLocalDescription(await answerer.createAnswer())
        _cached = (offerer.localDescription.sdp, answerer.localDescription.sdp)
        await offerer.close()
        await answerer.close()
    return _cached
