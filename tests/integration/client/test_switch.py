"""Switching a connected call between direct and relayed, without hanging up.

Two real aiortc clients call each other through the in-process server and its embedded
coturn. A switch is an ICE restart under the new policy: the DTLS session (and so the
verification code) carries on, the media moves to a new candidate pair, and from the
moment the server switches, nothing but relay addresses reaches either side.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ringfence.client import (
    CallState,
    IncomingCall,
    OutgoingCall,
    ToneTrack,
    TransportSwitchFailed,
    WavRecorder,
    dominant_frequency,
    place_call,
    wait_for_incoming,
)
from tests.conftest import LiveServer
from tests.integration.calls.conftest import machine_addresses
from tests.integration.client.conftest import TIMEOUT, Person

pytestmark = pytest.mark.integration


def candidate_types(sdp: str) -> set[str]:
    return {
        line.split(" typ ")[1].split()[0]
        for line in sdp.splitlines()
        if line.startswith("a=candidate:")
    }


def leaked(texts: list[str]) -> set[str]:
    """Which of this machine's own (non-loopback) addresses appear in the texts."""
    return {addr for addr in machine_addresses() if any(addr in text for text in texts)}


async def connect(
    alice: Person, bob: Person, tmp_path: Path
) -> tuple[OutgoingCall, IncomingCall, WavRecorder, WavRecorder]:
    heard_by_alice = WavRecorder(tmp_path / "alice.wav")
    heard_by_bob = WavRecorder(tmp_path / "bob.wav")
    call = await place_call(
        alice.client, alice.events, "bob", tracks=[ToneTrack(440)], sink=heard_by_alice
    )
    async with asyncio.timeout(TIMEOUT):
        incoming = await wait_for_incoming(bob.events, from_user="alice")
    await incoming.accept(tracks=[ToneTrack(660)], sink=heard_by_bob)
    await call.wait_connected(TIMEOUT)
    await incoming.wait_connected(TIMEOUT)
    return call, incoming, heard_by_alice, heard_by_bob


async def keeps_hearing(*recorders: WavRecorder, seconds: float = 1.0) -> None:
    """Until each recorder has taken in another ``seconds`` of audio: media flows."""
    targets = [(r, r.duration_s + seconds) for r in recorders]
    async with asyncio.timeout(TIMEOUT):
        while any(r.duration_s < target for r, target in targets):
            await asyncio.sleep(0.1)


async def allow_direct(*people: Person) -> None:
    for person in people:
        await person.client.update_settings(direct_connections="everyone")


async def wait_for_pair(side: OutgoingCall | IncomingCall, relayed: bool) -> None:
    """Until the side's nominated pair is (or is not) relayed at both ends."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            pair = side.selected_candidate_pair()
            if (
                pair is not None
                and (pair.local.type == "relay") == relayed
                and (pair.remote.type == "relay") == relayed
            ):
                return
            await asyncio.sleep(0.05)


async def test_a_direct_call_switches_to_the_relay_and_back_without_hanging_up(
    alice_bob: tuple[Person, Person], tmp_path: Path
) -> None:
    alice, bob = alice_bob
    await allow_direct(alice, bob)
    call, incoming, heard_by_alice, heard_by_bob = await connect(alice, bob, tmp_path)
    for side in (call, incoming):
        assert side.ice_transport_policy == "all"
        assert side.direct_allowed
        pair = side.selected_candidate_pair()
        assert pair is not None
        assert not pair.relayed
    code = call.verification_code
    assert code is not None
    assert code == incoming.verification_code
    seen_before = len(incoming.remote_candidates), len(call.remote_candidates)

    # Alice hides her address: the call moves to the relay and stays up.
    await call.switch_transport("relay")
    await wait_for_pair(call, relayed=True)
    await wait_for_pair(incoming, relayed=True)
    for side in (call, incoming):
        assert side.state is CallState.CONNECTED
        assert side.ice_transport_policy == "relay"
        assert side.local_sdp is not None
        assert candidate_types(side.local_sdp) == {"relay"}
        assert side.remote_sdp is not None
        assert candidate_types(side.remote_sdp) <= {"relay"}
    # What each side received since the switch names no address of this machine.
    after = [
        incoming.remote_sdp or "",
        call.remote_sdp or "",
        *incoming.remote_candidates[seen_before[0] :],
        *call.remote_candidates[seen_before[1] :],
    ]
    assert leaked(after) == set()
    # The same DTLS session: the five words are unchanged.
    assert call.verification_code == code == incoming.verification_code

    # Media keeps flowing both ways over the relay.
    await keeps_hearing(heard_by_alice, heard_by_bob)

    # Both still allow direct connections: Bob switches it back.
    assert incoming.direct_allowed
    await incoming.switch_transport("direct")
    await wait_for_pair(call, relayed=False)
    await wait_for_pair(incoming, relayed=False)
    assert call.verification_code == code == incoming.verification_code
    await keeps_hearing(heard_by_alice, heard_by_bob)

    assert await call.hangup() == "hangup"
    assert await incoming.wait_ended() == "hangup"
    assert [c.state for c in call.changes][-2:] == [CallState.CONNECTED, CallState.ENDED]
    assert dominant_frequency(heard_by_bob.path) == pytest.approx(440, abs=5)
    assert dominant_frequency(heard_by_alice.path) == pytest.approx(660, abs=5)


async def test_direct_is_refused_unless_both_settings_allow_it(
    alice_bob: tuple[Person, Person], tmp_path: Path
) -> None:
    alice, bob = alice_bob
    await allow_direct(alice)  # Bob keeps the default: relayed
    call, incoming, _, _ = await connect(alice, bob, tmp_path)
    assert not call.direct_allowed
    assert not incoming.direct_allowed
    with pytest.raises(TransportSwitchFailed) as refused:
        await call.switch_transport("direct")
    assert refused.value.code == "direct_not_allowed"
    # The call goes on, relayed on Bob's side as before.
    assert call.state is CallState.CONNECTED
    assert incoming.state is CallState.CONNECTED
    pair = incoming.selected_candidate_pair()
    assert pair is not None
    assert pair.local.type == "relay"
    assert await call.hangup() == "hangup"


async def test_settings_changed_mid_call_are_what_a_switch_obeys(
    alice_bob: tuple[Person, Person], tmp_path: Path
) -> None:
    alice, bob = alice_bob
    await allow_direct(alice, bob)
    call, incoming, _, _ = await connect(alice, bob, tmp_path)
    await incoming.switch_transport("relay")
    await wait_for_pair(call, relayed=True)
    # Bob withdraws direct connections during the call: switching back is refused.
    await bob.client.update_settings(direct_connections="nobody")
    with pytest.raises(TransportSwitchFailed) as refused:
        await call.switch_transport("direct")
    assert refused.value.code == "direct_not_allowed"
    assert await incoming.hangup() == "hangup"
    assert await call.wait_ended() == "hangup"


@pytest.mark.server_settings(call_switches_per_minute=1)
async def test_switches_are_rate_limited(
    alice_bob: tuple[Person, Person], tmp_path: Path, relay_server: LiveServer
) -> None:
    alice, bob = alice_bob
    await allow_direct(alice, bob)
    call, incoming, _, _ = await connect(alice, bob, tmp_path)
    await call.switch_transport("relay")
    with pytest.raises(TransportSwitchFailed) as refused:
        await call.switch_transport("direct")
    assert refused.value.code == "call_rate_limited"
    assert call.state is CallState.CONNECTED
    assert await call.hangup() == "hangup"
    assert await incoming.wait_ended() == "hangup"


async def test_withdrawing_direct_connections_moves_a_call_in_progress_to_the_relay(
    alice_bob: tuple[Person, Person], tmp_path: Path
) -> None:
    alice, bob = alice_bob
    await allow_direct(alice, bob)
    call, incoming, heard_by_alice, heard_by_bob = await connect(alice, bob, tmp_path)
    pair = incoming.selected_candidate_pair()
    assert pair is not None
    assert not pair.relayed
    code = call.verification_code

    # Bob changes his mind during the call (from any client): the call obeys at once.
    await bob.client.update_settings(direct_connections="nobody")
    await wait_for_pair(incoming, relayed=True)
    await wait_for_pair(call, relayed=True)
    for side in (call, incoming):
        assert side.state is CallState.CONNECTED
        assert side.ice_transport_policy == "relay"
        assert not side.direct_allowed
    assert call.verification_code == code == incoming.verification_code
    await keeps_hearing(heard_by_alice, heard_by_bob)
    assert await call.hangup() == "hangup"
    assert await incoming.wait_ended() == "hangup"
