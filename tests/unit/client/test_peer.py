"""The peer-connection wrapper of the Python client (client/peer.py), with real aiortc
connections on this machine: it takes only the server's ICE configuration, refuses a
description that cannot carry a call, holds the other side's candidates until they can
be applied, and keeps the DTLS certificate across connections."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from ringfence.calls.verification import fingerprints
from ringfence.client.api import IceServer
from ringfence.client.call_types import CallEnded
from ringfence.client.media import ColourBarsTrack, ToneTrack
from ringfence.client.peer import (
    LocalMedia,
    PeerConnection,
    gathering_problem,
    parse_candidate,
    rtc_configuration,
)

HOST = "a=candidate:1 1 udp 2130706431 192.0.2.2 40000 typ host"
RELAY = "a=candidate:2 1 udp 16777215 198.51.100.7 50000 typ relay raddr 0.0.0.0 rport 0"


class Seen:
    """What one connection reported to its callbacks."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.tracks: list[MediaStreamTrack] = []
        self._changed = asyncio.Event()

    def track(self, connection: PeerConnection, track: MediaStreamTrack) -> None:
        self.tracks.append(track)

    def state(self, connection: PeerConnection, state: str) -> None:
        self.states.append(state)
        self._changed.set()

    async def connected(self) -> None:
        async with asyncio.timeout(30):  # a bound against hanging, not a measurement
            while "connected" not in self.states:
                assert "failed" not in self.states
                self._changed.clear()
                await self._changed.wait()


def connection(seen: Seen, certificate_of: PeerConnection | None = None) -> PeerConnection:
    return PeerConnection(
        [], "all", on_track=seen.track, on_state=seen.state, certificate_of=certificate_of
    )


def without_candidates(sdp: str) -> tuple[str, list[tuple[str, str, int]]]:
    """The SDP with its candidate lines taken out, and those candidates as they would
    be trickled: (line, sdpMid, sdpMLineIndex)."""
    kept, found, mids, index = [], [], [], -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        if line.startswith("a=mid:"):
            mids.append(line.removeprefix("a=mid:"))
        if line.startswith("a=candidate:"):
            found.append((line, index))
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", [(line, mids[i], i) for line, i in found]


def test_the_configuration_is_the_servers_and_nothing_else() -> None:
    empty = rtc_configuration([], "relay")
    assert empty.iceServers == []  # never aiortc's default public STUN server
    assert empty.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    assert empty.bundlePolicy is RTCBundlePolicy.MAX_BUNDLE
    turn: IceServer = {"urls": ["turn:turn.example:3478"], "username": "u", "credential": "c"}
    configured = rtc_configuration([turn], "all")
    assert configured.iceTransportPolicy is RTCIceTransportPolicy.ALL
    assert configured.iceServers is not None
    [server] = configured.iceServers
    assert (server.urls, server.username, server.credential) == (turn["urls"], "u", "c")


def test_a_relayed_side_needs_a_relay_candidate_and_any_side_needs_one() -> None:
    relayed = gathering_problem(f"v=0\r\n{HOST}\r\n", "relay")
    assert relayed is not None
    assert relayed.startswith("could not reach the relay server")
    assert gathering_problem(f"v=0\r\n{RELAY}\r\n", "relay") is None
    assert gathering_problem(f"v=0\r\n{HOST}\r\n", "all") is None
    nothing = gathering_problem("v=0\r\n", "all")
    assert nothing is not None
    assert nothing.startswith("no ICE candidates could be gathered")


async def test_a_relayed_connection_without_a_relay_is_refused_before_anything_is_sent() -> None:
    seen = Seen()
    relayed = PeerConnection([], "relay", on_track=seen.track, on_state=seen.state)
    try:
        relayed.add_media(LocalMedia(), receive=["audio"])
        offer = await relayed.make_offer()
        with pytest.raises(CallEnded) as refused:
            relayed.check_gathered(offer)
        assert refused.value.reason == "failed"
        assert "could not reach the relay server" in (refused.value.detail or "")
    finally:
        await relayed.close()


def test_trickled_candidates_are_parsed_with_their_media_section() -> None:
    for text in (HOST, HOST.removeprefix("a="), HOST.removeprefix("a=candidate:")):
        parsed = parse_candidate(text, "0", 0)
        assert parsed is not None
        assert (parsed.type, parsed.ip, parsed.port) == ("host", "192.0.2.2", 40000)
        assert (parsed.sdpMid, parsed.sdpMLineIndex) == ("0", 0)
    assert parse_candidate("  ", "0", 0) is None  # end of candidates
    with pytest.raises(ValueError, match="not an ICE candidate"):
        parse_candidate("candidate:nonsense", "0", 0)


async def test_candidates_held_until_the_descriptions_are_set_carry_the_call() -> None:
    """Both descriptions travel without candidates, which come before them (as a
    trickled candidate may overtake its description): the call connects only if every
    held candidate is applied once its description is set."""
    caller_seen, callee_seen = Seen(), Seen()
    caller, callee = connection(caller_seen), connection(callee_seen)
    tone, bars = ToneTrack(440), ColourBarsTrack()
    caller_media, callee_media = LocalMedia(), LocalMedia()
    caller_media.tracks = [tone]
    callee_media.tracks = [ToneTrack(880), bars]
    try:
        caller.add_media(caller_media, receive=["audio"])
        full_offer = await caller.make_offer()
        caller.check_gathered(full_offer)
        offer, offered = without_candidates(full_offer)
        assert offered, "no host candidate was gathered"
        callee.hold([c for line, mid, i in offered if (c := parse_candidate(line, mid, i))])
        unsent = await callee.take_offer(offer, callee_media)
        assert unsent == [bars]  # only audio was offered
        answer, answered = without_candidates(await callee.make_answer())
        for line, mid, index in answered:
            candidate = parse_candidate(line, mid, index)
            assert candidate is not None
            await caller.add_candidate(candidate)  # no answer yet: held
        await callee.release_candidates()
        await caller.take_answer(answer)
        await caller.release_candidates()
        await caller_seen.connected()
        await callee_seen.connected()
        assert [track.kind for track in callee_seen.tracks] == ["audio"]
        pair = caller.selected_pair()
        assert pair is not None
        assert not pair.relayed
        assert pair.local.type == "host"
        assert await caller.packets_received() > 0
    finally:
        await caller.close()
        await callee.close()
        caller_media.stop()
        callee_media.stop()


async def test_a_connection_made_from_another_keeps_its_fingerprints() -> None:
    seen = Seen()
    first = connection(seen)
    second = connection(seen, certificate_of=first)
    other = connection(seen)
    try:
        sdps = []
        for made in (first, second, other):
            made.add_media(LocalMedia(), receive=["audio"])
            sdps.append(fingerprints(await made.make_offer()))
        assert sdps[0] == sdps[1]  # the same verification words after a switch
        assert sdps[0] != sdps[2]
        assert first.selected_pair() is None  # ICE has not run
    finally:
        for made in (first, second, other):
            await made.close()
