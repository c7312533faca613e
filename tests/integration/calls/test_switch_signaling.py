"""The server's half of switching an answered call between direct and relayed, played
frame by frame by clients that misbehave on purpose.

The switch is decided on the server: from the moment it stores the new policy, every
SDP and candidate of the call is sanitised with it, whatever the clients do.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, LiveServer, Socket, open_socket
from tests.integration.calls.conftest import (
    allow_direct,
    befriend,
    collect,
    host_candidate,
    machine_addresses,
    start_call,
)
from tests.integration.calls.sdp import sdp_pair


async def answered_call(
    live: LiveServer, api: Api, *, direct: bool
) -> tuple[str, Socket, Socket, dict[str, Any]]:
    """Alice calls Bob and Bob answers; with ``direct`` both allow direct connections."""
    alice, bob = await befriend(api, "alice", "bob")
    if direct:
        await allow_direct(api, alice, bob)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, alice, "bob")).json()
    call_id = started["call_id"]
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    incoming = await b_ws.recv_type("call.incoming")
    assert incoming["direct_allowed"] is direct
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    answered = await a_ws.recv_type("call.answer")
    assert answered["direct_allowed"] is direct
    return call_id, a_ws, b_ws, started


async def test_after_a_switch_to_relay_a_peer_that_ignores_it_leaks_nothing(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    call_id, a_ws, b_ws, _ = await answered_call(live, api, direct=True)
    # Before the switch, a direct call forwards host candidates: both sides allowed it.
    await b_ws.send({"type": "call.candidate", "call_id": call_id, "candidate": host_candidate()})
    assert (await a_ws.recv_type("call.candidate"))["candidate"] == host_candidate()

    await a_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    mine = await a_ws.recv_type("call.transport")
    theirs = await b_ws.recv_type("call.transport")
    assert (mine["restart"], theirs["restart"]) == (True, False)
    for frame in (mine, theirs):
        assert frame["transport"] == "relay"
        assert frame["ice_transport_policy"] == "relay"
        assert frame["direct_allowed"] is True
        (ice,) = frame["ice_servers"]
        assert ice["username"]
        assert ice["credential"]
    # Fresh credentials for each device.
    assert mine["ice_servers"] != theirs["ice_servers"]

    # Bob's modified client ignores the switch and keeps sending its host address...
    await b_ws.send({"type": "call.candidate", "call_id": call_id, "candidate": host_candidate()})
    # ...and Alice's sends a restart offer full of host data: the server strips it.
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.reoffer", "call_id": call_id, "sdp": offer})
    reoffer = await b_ws.recv_type("call.reoffer")
    await b_ws.send({"type": "call.reanswer", "call_id": call_id, "sdp": answer})
    reanswer = await a_ws.recv_type("call.reanswer")
    received = [reoffer, reanswer, *await collect(a_ws, 0.5), *await collect(b_ws, 0.5)]
    for address in machine_addresses():
        assert address not in str(received)
    for frame in (reoffer, reanswer):
        assert "typ host" not in frame["sdp"]
    assert not [e for e in received if e["type"] == "call.candidate"]


async def test_direct_is_refused_when_a_side_keeps_its_address_hidden(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    call_id, a_ws, b_ws, _ = await answered_call(live, api, direct=False)
    await a_ws.send({"type": "call.transport", "call_id": call_id, "transport": "direct"})
    error = await a_ws.recv_type("error")
    assert (error["error"], error["call_id"]) == ("direct_not_allowed", call_id)
    await b_ws.nothing_within(0.3)
    # Still relayed: a host candidate from either side goes nowhere.
    await b_ws.send({"type": "call.candidate", "call_id": call_id, "candidate": host_candidate()})
    await a_ws.nothing_within(0.3)


async def test_out_of_turn_switch_frames_are_refused(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    call_id = (await start_call(api, alice, "bob")).json()["call_id"]
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    await b_ws.recv_type("call.incoming")

    # Ringing: no switch, no restart, and the ringing callee stays silent.
    for ws, frame in (
        (a_ws, {"type": "call.transport", "call_id": call_id, "transport": "relay"}),
        (b_ws, {"type": "call.transport", "call_id": call_id, "transport": "relay"}),
        (b_ws, {"type": "call.reoffer", "call_id": call_id, "sdp": answer}),
    ):
        await ws.send(frame)
        assert (await ws.recv_type("error"))["error"] == "call_state"

    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    await a_ws.recv_type("call.answer")
    # A restart offer nobody asked the server for, and an answer to no restart.
    await a_ws.send({"type": "call.reoffer", "call_id": call_id, "sdp": offer})
    assert (await a_ws.recv_type("error"))["error"] == "call_state"
    await b_ws.send({"type": "call.reanswer", "call_id": call_id, "sdp": answer})
    assert (await b_ws.recv_type("error"))["error"] == "call_state"

    # Bob's other device is not in the call and cannot switch it.
    other = await open_socket(live.ws_url, bob)
    await other.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    assert (await other.recv_type("error"))["error"] == "call_state"

    # A switch under way blocks a second one until it is answered.
    await a_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    await a_ws.recv_type("call.transport")
    await b_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    assert (await b_ws.recv_type("error"))["error"] == "call_state"
    # Only the device that asked may send the restart offer.
    await b_ws.send({"type": "call.reoffer", "call_id": call_id, "sdp": answer})
    assert (await b_ws.recv_type("error"))["error"] == "call_state"
    await a_ws.send({"type": "call.reoffer", "call_id": call_id, "sdp": offer})
    await b_ws.recv_type("call.reoffer")
    await b_ws.send({"type": "call.reanswer", "call_id": call_id, "sdp": answer})
    await a_ws.recv_type("call.reanswer")
    # Done: the next switch may begin.
    await b_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    assert (await b_ws.recv_type("call.transport"))["restart"] is True


async def test_withdrawing_direct_connections_while_ringing_holds_for_the_answer(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await allow_direct(api, alice, bob)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    call_id = (await start_call(api, alice, "bob")).json()["call_id"]
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    assert (await b_ws.recv_type("call.incoming"))["ice_transport_policy"] == "all"
    # Bob withdraws direct connections while it rings, then answers with host data.
    resp = await api.call(
        "PATCH", "/api/v1/me/settings", bob, json={"direct_connections": "nobody"}
    )
    assert resp.status_code == 200, resp.text
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    answered = await a_ws.recv_type("call.answer")
    for address in machine_addresses():
        assert address not in answered["sdp"]
    await b_ws.send({"type": "call.candidate", "call_id": call_id, "candidate": host_candidate()})
    await a_ws.nothing_within(0.3)


async def test_withdrawing_consent_while_ringing_stops_what_was_queued_for_the_callee(
    server: tuple[LiveServer, Api],
) -> None:
    """Both allowed direct when the call began; the callee withdraws while it rings.
    The caller's host addresses that the server holds for the callee (its offer, for a
    device that connects later, and candidates queued until the answer) must not be
    handed to any of the callee's devices any more."""
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await allow_direct(api, alice, bob)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    call_id = (await start_call(api, alice, "bob")).json()["call_id"]
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    assert (await b_ws.recv_type("call.incoming"))["direct_allowed"] is True
    await a_ws.send(
        {"type": "call.candidate", "call_id": call_id, "candidate": host_candidate(50002)}
    )
    resp = await api.call(
        "PATCH", "/api/v1/me/settings", bob, json={"direct_connections": "nobody"}
    )
    assert resp.status_code == 200, resp.text
    # A second device of Bob's connects while it still rings: it rings with a clean offer.
    b2_ws = await open_socket(live.ws_url, bob)
    incoming = await b2_ws.recv_type("call.incoming")
    assert incoming["ice_transport_policy"] == "relay"
    assert incoming["direct_allowed"] is False
    for address in machine_addresses():
        assert address not in incoming["sdp"]
    # The answering device gets none of the candidates queued before the withdrawal.
    await b2_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    answered = await a_ws.recv_type("call.answer")
    assert answered["direct_allowed"] is False
    seen = await collect(b2_ws, 0.5)
    for address in machine_addresses():
        assert all(address not in str(frame) for frame in seen), seen
