"""A modified client that tries to leak its address through a relayed call still can't:
the server removes host candidates and rewrites addresses on the way."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, LiveServer, Socket, open_socket
from tests.integration.calls.conftest import befriend, collect, machine_addresses, start_call
from tests.integration.calls.sdp import sdp_pair


async def ringing_call(live: LiveServer, api: Api) -> tuple[str, Socket, Socket, dict[str, Any]]:
    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, alice, "bob")).json()
    assert started["ice_transport_policy"] == "relay"
    offer, _ = await sdp_pair()
    assert any(addr in offer for addr in machine_addresses()), "test SDP should hold host data"
    await a_ws.send({"type": "call.offer", "call_id": started["call_id"], "sdp": offer})
    incoming = await b_ws.recv_type("call.incoming")
    return started["call_id"], a_ws, b_ws, incoming


async def test_host_candidates_and_addresses_are_stripped_from_a_relayed_offer(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    _, _, _, incoming = await ringing_call(live, api)
    sdp = incoming["sdp"]
    for address in machine_addresses():
        assert address not in sdp
    assert "typ host" not in sdp
    assert "typ srflx" not in sdp
    for line in sdp.splitlines():
        if line.startswith("c="):
            assert line in ("c=IN IP4 0.0.0.0", "c=IN IP6 ::")


async def test_trickled_host_candidates_never_reach_the_callee(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    call_id, a_ws, b_ws, _ = await ringing_call(live, api)
    address = sorted(machine_addresses())[0]
    leaky = [
        f"candidate:1 1 udp 2130706431 {address} 50000 typ host",
        f"candidate:2 1 udp 1694498815 203.0.113.9 50001 typ srflx raddr {address} rport 50000",
        f"candidate:3 1 udp 16777215 127.0.0.1 40001 typ relay raddr {address} rport 50000",
    ]
    for cand in leaky:
        await a_ws.send(
            {
                "type": "call.candidate",
                "call_id": call_id,
                "candidate": {"candidate": cand, "sdpMid": "0", "sdpMLineIndex": 0},
            }
        )
    # Nothing reaches Bob's ringing device: candidates wait for the answering device.
    await b_ws.nothing_within(0.5)
    _, answer = await sdp_pair()
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    got = await collect(b_ws, 1.0)
    forwarded = [e["candidate"]["candidate"] for e in got if e["type"] == "call.candidate"]
    # Only the relay candidate, with its related address blanked.
    assert forwarded == [
        "candidate:3 1 udp 16777215 127.0.0.1 40001 typ relay raddr 0.0.0.0 rport 0"
    ]
    assert all(address not in str(e) for e in got)
    # After the answer, a host candidate trickled live is still dropped.
    await a_ws.send(
        {
            "type": "call.candidate",
            "call_id": call_id,
            "candidate": {"candidate": leaky[0], "sdpMid": "0", "sdpMLineIndex": 0},
        }
    )
    await b_ws.nothing_within(0.5)


async def test_a_host_address_labelled_relay_is_dropped(server: tuple[LiveServer, Api]) -> None:
    """A modified client calls its own address a relay candidate: the server knows where
    the relay is, and drops it."""
    live, api = server
    call_id, a_ws, b_ws, _ = await ringing_call(live, api)
    _, answer = await sdp_pair()
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    address = sorted(machine_addresses())[0]
    await a_ws.send(
        {
            "type": "call.candidate",
            "call_id": call_id,
            "candidate": {
                "candidate": f"candidate:9 1 udp 16777215 {address} 50009 typ relay",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            },
        }
    )
    await b_ws.nothing_within(0.5)


async def test_callee_can_send_nothing_before_answering(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    call_id, a_ws, b_ws, _ = await ringing_call(live, api)
    await b_ws.send(
        {
            "type": "call.candidate",
            "call_id": call_id,
            "candidate": {
                "candidate": (
                    "candidate:1 1 udp 16777215 127.0.0.1 40002 typ relay raddr 0.0.0.0 rport 0"
                ),
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            },
        }
    )
    error = await b_ws.recv_type("error")
    assert error["error"] == "call_state"
    assert error["call_id"] == call_id
    await a_ws.nothing_within(0.5)


async def test_relayed_answer_is_stripped_too(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    call_id, a_ws, b_ws, _ = await ringing_call(live, api)
    _, answer = await sdp_pair()
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    got = await a_ws.recv_type("call.answer")
    for address in machine_addresses():
        assert address not in got["sdp"]
    assert "typ host" not in got["sdp"]


async def test_outsiders_and_malformed_frames_get_errors(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    call_id, a_ws, b_ws, _ = await ringing_call(live, api)
    mallory = await api.register("mallory")
    m_ws = await open_socket(live.ws_url, mallory)
    await m_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await m_ws.recv_type("error"))["error"] == "call_not_found"
    await m_ws.send({"type": "call.answer", "call_id": call_id, "sdp": "v=0"})
    assert (await m_ws.recv_type("error"))["error"] in ("call_not_found", "sdp_invalid")
    # Malformed frames from a participant: an error event, and the call goes on.
    await a_ws.send({"type": "call.offer", "call_id": call_id})
    assert (await a_ws.recv_type("error"))["error"] == "malformed"
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": "not sdp"})
    error = await a_ws.recv_type("error")
    assert error["error"] in ("sdp_invalid", "call_state")
    # A duplicate offer is refused.
    offer, _ = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    assert (await a_ws.recv_type("error"))["error"] == "call_state"
    # Bob can still answer.
    _, answer = await sdp_pair()
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    assert (await a_ws.recv_type("call.answer"))["call_id"] == call_id
    # A second answer (a duplicate, or another device late) is refused.
    await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
    assert (await b_ws.recv_type("error"))["error"] == "call_state"
