"""How calls end: timeout, reject, hangup, cancel, busy, answered elsewhere, dropped
connections, each seen correctly on both sides and recorded in the thread.

The SDP here is real but media never flows, so a device says ``call.connected`` itself
where a test needs a call that connected (as real clients do once ICE and DTLS are up);
tests/integration/calls/test_connected.py covers that frame on its own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, LiveServer, Socket, open_socket
from tests.integration.calls.conftest import befriend, start_call
from tests.integration.calls.sdp import sdp_pair


async def ring(
    live: LiveServer, api: Api, caller: str, callee: str, *, callee_devices: int = 1
) -> tuple[str, Socket, list[Socket]]:
    a_ws = await open_socket(live.ws_url, caller)
    b_socks = [await open_socket(live.ws_url, callee) for _ in range(callee_devices)]
    resp = await start_call(api, caller, "bob")
    assert resp.status_code == 201, resp.text
    call_id: str = resp.json()["call_id"]
    offer, _ = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    for sock in b_socks:
        assert (await sock.recv_type("call.incoming"))["call_id"] == call_id
    return call_id, a_ws, b_socks


async def answer(sock: Socket, call_id: str) -> None:
    _, sdp = await sdp_pair()
    await sock.send({"type": "call.answer", "call_id": call_id, "sdp": sdp})


async def media_connected(sock: Socket, call_id: str) -> None:
    """What an in-call device says once its peer connection is up."""
    await sock.send({"type": "call.connected", "call_id": call_id})


async def ended_and_recorded(
    sock: Socket, call_id: str, reason: str, outcome: str
) -> dict[str, Any]:
    """The call record (committed first) and then call.ended, as the server sends them."""
    record = (await sock.recv_type("message.new", timeout=10))["message"]
    ended = await sock.recv_type("call.ended")
    assert ended == {"type": "call.ended", "call_id": call_id, "reason": reason}
    assert record["kind"] == "call"
    assert record["call"]["call_id"] == call_id
    assert record["call"]["outcome"] == outcome
    return record


@pytest.mark.server_settings(ring_timeout_s=2)
async def test_unanswered_call_times_out_as_missed(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await ended_and_recorded(a_ws, call_id, "timeout", "missed")
    await ended_and_recorded(b_ws, call_id, "timeout", "missed")
    history = (await api.call("GET", "/api/v1/calls", bob)).json()["calls"]
    assert history[0]["call"]["outcome"] == "missed"
    assert history[0]["direction"] == "incoming"
    assert history[0]["peer"]["username"] == "alice"


async def test_reject_from_any_device_ends_the_call(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b1, b2) = await ring(live, api, alice, bob, callee_devices=2)
    await b2.send({"type": "call.reject", "call_id": call_id})
    await ended_and_recorded(a_ws, call_id, "rejected", "rejected")
    await ended_and_recorded(b1, call_id, "rejected", "rejected")
    await ended_and_recorded(b2, call_id, "rejected", "rejected")


async def test_caller_cancels_while_ringing(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    await ended_and_recorded(a_ws, call_id, "cancelled", "cancelled")
    await ended_and_recorded(b_ws, call_id, "cancelled", "cancelled")


async def test_hangup_after_media_connected_is_completed(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await answer(b_ws, call_id)
    await a_ws.recv_type("call.answer")
    await media_connected(b_ws, call_id)
    await b_ws.send({"type": "call.hangup", "call_id": call_id})
    rec_a = await ended_and_recorded(a_ws, call_id, "hangup", "completed")
    rec_b = await ended_and_recorded(b_ws, call_id, "hangup", "completed")
    assert rec_a["id"] == rec_b["id"]
    assert rec_a["sender"] == "alice"
    assert rec_a["recipient"] == "bob"
    thread = (await api.call("GET", "/api/v1/conversations/alice/messages", bob)).json()
    assert thread["messages"][-1]["kind"] == "call"


async def test_hangup_after_answer_without_media_is_not_connected(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await answer(b_ws, call_id)
    await a_ws.recv_type("call.answer")
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    for sock in (a_ws, b_ws):
        record = await ended_and_recorded(sock, call_id, "hangup", "not_connected")
        assert record["call"]["duration_s"] == 0


async def test_first_answer_wins_and_other_devices_stop_ringing(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b1, b2) = await ring(live, api, alice, bob, callee_devices=2)
    await answer(b1, call_id)
    assert (await b2.recv_type("call.ended"))["reason"] == "answered_elsewhere"
    await b1.nothing_within(0.3)  # the answering device is not told to stop
    await answer(b2, call_id)
    assert (await b2.recv_type("error"))["error"] == "call_state"
    assert (await a_ws.recv_type("call.answer"))["call_id"] == call_id
    await a_ws.nothing_within(0.3)  # exactly one answer reached the caller


async def test_callee_in_a_call_is_busy(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    # Carol is in a call with Bob.
    carol = await api.register("carol")
    await api.call("PUT", "/api/v1/me/following/carol", bob)
    await api.send(carol, "bob", "hi")
    c_ws = await open_socket(live.ws_url, carol)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, carol, "bob")).json()
    offer, _ = await sdp_pair()
    await c_ws.send({"type": "call.offer", "call_id": started["call_id"], "sdp": offer})
    await b_ws.recv_type("call.incoming")
    await answer(b_ws, started["call_id"])
    await c_ws.recv_type("call.answer")
    # Alice calls Bob: busy. Bob's devices don't ring.
    a_ws = await open_socket(live.ws_url, alice)
    resp = await start_call(api, alice, "bob")
    assert resp.status_code == 201
    call_id = resp.json()["call_id"]
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    rec = await ended_and_recorded(a_ws, call_id, "busy", "busy")
    assert rec["recipient"] == "bob"
    events = []
    while True:
        event = await b_ws.recv(timeout=2)
        events.append(event)
        if event["type"] == "message.new":
            break
    assert [e["type"] for e in events] == ["message.new"]  # a busy record, no ringing


@pytest.mark.server_settings(call_grace_s=0.5)
async def test_dropped_connection_ends_the_call_after_grace(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await answer(b_ws, call_id)
    await a_ws.recv_type("call.answer")
    await media_connected(a_ws, call_id)
    await a_ws.close()
    await ended_and_recorded(b_ws, call_id, "failed", "completed")


@pytest.mark.server_settings(call_grace_s=3)
async def test_reconnecting_within_grace_keeps_the_call(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await answer(b_ws, call_id)
    await a_ws.recv_type("call.answer")
    await media_connected(b_ws, call_id)
    device_id = a_ws.ready["device_id"]
    await a_ws.close()
    a2 = await open_socket(live.ws_url, alice, device_id=device_id)
    assert a2.ready["device_id"] == device_id
    await b_ws.nothing_within(3.5)  # no call.ended: the call survived
    await a2.send({"type": "call.hangup", "call_id": call_id})
    await ended_and_recorded(b_ws, call_id, "hangup", "completed")


async def test_call_that_never_rang_leaves_no_trace_for_the_callee(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    call_id = (await start_call(api, alice, "bob")).json()["call_id"]
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await a_ws.recv_type("call.ended"))["reason"] == "cancelled"
    await b_ws.nothing_within(0.5)


async def test_candidates_still_in_flight_after_the_end_are_dropped_quietly(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    await b_ws.send({"type": "call.reject", "call_id": call_id})
    await ended_and_recorded(a_ws, call_id, "rejected", "rejected")
    late = "candidate:1 1 udp 16777215 127.0.0.1 40001 typ relay raddr 0.0.0.0 rport 0"
    await a_ws.send(
        {
            "type": "call.candidate",
            "call_id": call_id,
            "candidate": {"candidate": late, "sdpMid": "0", "sdpMLineIndex": 0},
        }
    )
    await a_ws.nothing_within(0.5)  # no error that could be mistaken for a failure
    # Other frames for a call that is gone are still refused.
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await a_ws.recv_type("error"))["error"] == "call_not_found"


async def test_a_caller_renamed_since_their_socket_opened_rings_under_the_new_name(
    server: tuple[LiveServer, Api],
) -> None:
    """The ringing screen shows the name as it is now: the socket the offer comes on
    was authenticated before the change, and its copy of the caller is older."""
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    resp = await api.call("PATCH", "/api/v1/me", alice, json={"display_name": "Alice Liddell"})
    assert resp.status_code == 200, resp.text
    resp = await start_call(api, alice, "bob")
    assert resp.status_code == 201, resp.text
    call_id = resp.json()["call_id"]
    offer, _ = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    incoming = await b_ws.recv_type("call.incoming")
    caller = incoming["from"]
    assert (caller["username"], caller["display_name"]) == ("alice", "Alice Liddell")
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    await ended_and_recorded(b_ws, call_id, "cancelled", "cancelled")
    for sock in (a_ws, b_ws):
        await sock.close()
