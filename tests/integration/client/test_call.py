"""Real aiortc calls between two Python clients, through the server and its coturn.

The server runs in-process but supervises a real coturn child, so these are marked
``integration``. Media is real: a tone goes in one end and is measured at the other.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ringfence.client import (
    CallEnded,
    CallState,
    RingfenceError,
    ToneTrack,
    WavRecorder,
    dominant_frequency,
    place_call,
    wait_for_incoming,
)
from tests.conftest import LiveServer
from tests.integration.client.conftest import TIMEOUT, Person, ring

pytestmark = pytest.mark.integration


async def call_record(person: Person) -> dict[str, object]:
    """The kind="call" message the server appends to the thread when a call ends."""
    while True:
        event = await person.events.next_event("message.new", timeout=TIMEOUT)
        if event["message"]["kind"] == "call":
            record: dict[str, object] = event["message"]["call"]
            return record


def candidate_types(sdp: str) -> set[str]:
    return {
        line.split(" typ ")[1].split()[0]
        for line in sdp.splitlines()
        if line.startswith("a=candidate:")
    }


async def test_a_relayed_call_carries_audio_both_ways(
    alice_bob: tuple[Person, Person], tmp_path: Path
) -> None:
    alice, bob = alice_bob
    heard_by_bob, heard_by_alice = tmp_path / "bob.wav", tmp_path / "alice.wav"
    call = await place_call(
        alice.client,
        alice.events,
        "bob",
        tracks=[ToneTrack(440)],
        sink=WavRecorder(heard_by_alice),
    )
    assert call.state is CallState.RINGING
    async with asyncio.timeout(TIMEOUT):
        incoming = await wait_for_incoming(bob.events, from_user="alice")
    assert incoming.caller.username == "alice"
    assert incoming.media == "audio"

    # Ringing reveals nothing: no peer connection, no SDP, no candidates from Bob.
    assert incoming.local_sdp is None
    assert incoming.selected_candidate_pair() is None
    assert call.remote_sdp is None

    await incoming.accept(tracks=[ToneTrack(660)], sink=WavRecorder(heard_by_bob))
    await call.wait_connected(TIMEOUT)
    await incoming.wait_connected(TIMEOUT)
    # Both people read the same five words: nobody swapped the DTLS fingerprints.
    assert call.verification_code is not None
    assert len(call.verification_code) == 5
    assert call.verification_code == incoming.verification_code

    for side in (call, incoming):
        assert side.ice_transport_policy == "relay"
        assert side.local_sdp is not None
        assert candidate_types(side.local_sdp) == {"relay"}
        pair = side.selected_candidate_pair()
        assert pair is not None
        assert (pair.local.type, pair.remote.type) == ("relay", "relay")
        assert pair.relayed
        assert side.remote_candidates == []  # aiortc puts every candidate in the SDP

    # Let a couple of seconds of audio through, then hang up from Alice's side.
    await asyncio.sleep(2)
    assert await call.hangup() == "hangup"
    assert await incoming.wait_ended() == "hangup"
    assert [c.state for c in call.changes] == [
        CallState.NEW,
        CallState.RINGING,
        CallState.CONNECTING,
        CallState.CONNECTED,
        CallState.ENDED,
    ]
    assert dominant_frequency(heard_by_bob) == pytest.approx(440, abs=5)
    assert dominant_frequency(heard_by_alice) == pytest.approx(660, abs=5)

    record = await call_record(alice)
    assert (record["outcome"], record["media"]) == ("completed", "audio")


async def test_rejecting_ends_the_call_on_both_sides(alice_bob: tuple[Person, Person]) -> None:
    alice, bob = alice_bob
    call, incoming = await ring(alice, bob)
    assert await incoming.reject() == "rejected"
    assert await call.wait_ended() == "rejected"
    with pytest.raises(CallEnded) as ended:
        await call.wait_connected(1)
    assert ended.value.reason == "rejected"
    assert (await call_record(alice))["outcome"] == "rejected"


async def test_caller_cancelling_stops_the_ringing(alice_bob: tuple[Person, Person]) -> None:
    alice, bob = alice_bob
    call, incoming = await ring(alice, bob)
    assert await call.hangup() == "cancelled"
    assert await incoming.wait_ended() == "cancelled"
    with pytest.raises(CallEnded):
        await incoming.accept()


async def test_answering_on_one_device_stops_the_others(
    relay_server: LiveServer, alice_bob: tuple[Person, Person]
) -> None:
    alice, bob = alice_bob
    phone = await bob.second_device(relay_server)
    try:
        call = await place_call(alice.client, alice.events, "bob", tracks=[ToneTrack(440)])
        async with asyncio.timeout(TIMEOUT):
            on_laptop = await wait_for_incoming(bob.events)
            on_phone = await wait_for_incoming(phone)
        assert on_laptop.call_id == on_phone.call_id == call.call_id

        await on_laptop.accept(tracks=[ToneTrack(660)])
        assert await on_phone.wait_ended() == "answered_elsewhere"
        assert on_phone.selected_candidate_pair() is None  # it never gathered anything
        await call.wait_connected(TIMEOUT)
        await on_laptop.hangup()
        assert await call.wait_ended() == "hangup"
    finally:
        await phone.close()


async def test_a_call_survives_its_websocket_dropping(alice_bob: tuple[Person, Person]) -> None:
    """The event stream reconnects with the same device id, so the server keeps the
    call, and signaling (here: the hang-up) still works afterwards."""
    alice, bob = alice_bob
    call, incoming = await ring(alice, bob)
    await incoming.accept(tracks=[ToneTrack(660)])
    await call.wait_connected(TIMEOUT)

    ws = alice.events._ws
    assert ws is not None
    ws.transport.abort()
    ready = await alice.events.next_event("ready", timeout=TIMEOUT)
    assert ready["device_id"] == alice.events.device_id
    assert call.state is CallState.CONNECTED

    assert await call.hangup() == "hangup"
    assert await incoming.wait_ended() == "hangup"


async def test_the_server_policy_is_what_the_client_uses(
    alice_bob: tuple[Person, Person],
) -> None:
    """With direct connections allowed on both sides the server hands out "all", and
    the client gathers host candidates too; by default it gathered only relay ones."""
    alice, bob = alice_bob
    await alice.client.update_settings(direct_connections="everyone")
    await bob.client.update_settings(direct_connections="everyone")
    call, incoming = await ring(alice, bob)
    assert call.ice_transport_policy == incoming.ice_transport_policy == "all"
    await incoming.accept(tracks=[ToneTrack(660)])
    await call.wait_connected(TIMEOUT)
    assert call.local_sdp is not None
    assert {"host", "relay"} <= candidate_types(call.local_sdp)
    assert call.selected_candidate_pair() is not None
    await call.hangup()
    await incoming.wait_ended()


async def test_an_unknown_callee_is_refused_like_any_other(
    alice_bob: tuple[Person, Person],
) -> None:
    alice, _ = alice_bob
    with pytest.raises(RingfenceError) as refused:
        await place_call(alice.client, alice.events, "nobody", tracks=[ToneTrack(440)])
    assert (refused.value.status, refused.value.code) == (403, "call_not_allowed")
