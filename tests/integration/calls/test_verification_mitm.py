"""A signaling server that swaps DTLS fingerprints to sit in the middle of a call is
caught by the verification code: the two people see different words.

Real aiortc peers on real sockets. The "server" here is the attacker: it answers the
caller with a peer of its own and calls the callee with another, relaying signaling
as a compromised Ringfence server could.
"""

from __future__ import annotations

import asyncio

from ringfence.calls.verification import fingerprints, verification_code
from tests.conftest import Api, LiveServer, open_socket
from tests.integration.calls.conftest import Peer, befriend, start_call

CALL_ID = "mitm-test-call-0001"


async def test_fingerprint_swapping_man_in_the_middle_changes_the_codes() -> None:
    alice = Peer("all", [], tone=440)
    bob = Peer("all", [], tone=660)
    towards_alice = Peer("all", [], tone=500)  # the attacker's peer facing Alice
    towards_bob = Peer("all", [], tone=500)  # and the one facing Bob
    try:
        offer = await alice.offer()
        await alice.accept_answer(await towards_alice.answer(offer))
        await towards_bob.accept_answer(await bob.answer(await towards_bob.offer()))
        await asyncio.gather(
            alice.wait_connected(),
            bob.wait_connected(),
            towards_alice.wait_connected(),
            towards_bob.wait_connected(),
        )
        # The attack worked: each person is connected, encrypted, to the attacker.
        alice_sees = fingerprints(str(alice.pc.remoteDescription.sdp))
        assert alice_sees == fingerprints(str(towards_alice.pc.localDescription.sdp))
        assert alice_sees != fingerprints(str(bob.pc.localDescription.sdp))

        alice_code = verification_code(
            CALL_ID, str(alice.pc.localDescription.sdp), str(alice.pc.remoteDescription.sdp)
        )
        bob_code = verification_code(
            CALL_ID, str(bob.pc.localDescription.sdp), str(bob.pc.remoteDescription.sdp)
        )
        assert len(alice_code) == len(bob_code) == 5
        assert alice_code != bob_code
    finally:
        for peer in (alice, bob, towards_alice, towards_bob):
            await peer.close()


async def test_an_honest_server_gives_both_sides_the_same_code(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice_token, bob_token = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice_token)
    b_ws = await open_socket(live.ws_url, bob_token)
    started = (await start_call(api, alice_token, "bob")).json()
    call_id = started["call_id"]
    caller = Peer(started["ice_transport_policy"], started["ice_servers"], tone=440)
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": await caller.offer()})
    incoming = await b_ws.recv_type("call.incoming")
    callee = Peer(incoming["ice_transport_policy"], incoming["ice_servers"], tone=660)
    try:
        answer = await callee.answer(incoming["sdp"])
        await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
        await caller.accept_answer((await a_ws.recv_type("call.answer"))["sdp"])
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        # Each side derives the code from the SDP it holds: the server sanitised both
        # descriptions on the way, but left the fingerprints alone.
        caller_code = verification_code(
            call_id, str(caller.pc.localDescription.sdp), str(caller.pc.remoteDescription.sdp)
        )
        callee_code = verification_code(
            call_id, str(callee.pc.localDescription.sdp), str(callee.pc.remoteDescription.sdp)
        )
        assert caller_code == callee_code
    finally:
        await caller.close()
        await callee.close()
