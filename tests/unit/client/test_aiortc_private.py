"""The aiortc internals the Python client relies on (client/aiortc_private.py) are
where it looks for them, in the aiortc installed: a real connection between two real
aiortc peers on this machine. If an aiortc upgrade moves them, this fails loudly
instead of the CLI quietly losing "relayed/direct" and switches quietly changing the
verification words."""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection

from ringfence.calls.verification import fingerprints
from ringfence.client.aiortc_private import nominated_pair, share_certificate


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    offerer.addTransceiver("audio")
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    async with asyncio.timeout(20):
        while "connected" not in (offerer.connectionState, answerer.connectionState) or (
            offerer.connectionState != answerer.connectionState
        ):
            assert "failed" not in (offerer.connectionState, answerer.connectionState)
            await asyncio.sleep(0.05)
    return offerer, answerer


async def test_the_nominated_pair_is_found_on_a_real_connection() -> None:
    offerer, answerer = await connected_pair()
    try:
        pair = nominated_pair(offerer)
        assert pair is not None, "aiortc/aioice no longer keep the nominated pair there"
        local, remote = pair
        assert (local.type, remote.type) == ("host", "host")
        assert local.transport == remote.transport == "udp"
        assert local.port > 0
        assert remote.port > 0
    finally:
        await offerer.close()
        await answerer.close()


async def test_no_pair_before_ice_has_run() -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    try:
        assert nominated_pair(pc) is None
    finally:
        await pc.close()


async def test_a_second_connection_can_reuse_the_first_ones_certificate() -> None:
    first, second, other = RTCPeerConnection(), RTCPeerConnection(), RTCPeerConnection()
    try:
        assert share_certificate(first, second), "aiortc no longer keeps certificates there"
        sdps = []
        for pc in (first, second, other):
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
            sdps.append(fingerprints(pc.localDescription.sdp))
        assert sdps[0] == sdps[1]  # the same words after a switch
        assert sdps[0] != sdps[2]
    finally:
        for pc in (first, second, other):
            await pc.close()
