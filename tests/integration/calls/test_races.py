"""Two writers of one call at the same moment must not undo each other.

A call's live state is written by whoever acts on it: the device that queues a
candidate, the one that says media connected, a settings change that tightens the
call's policy, a switch. Each reads the call, decides, and writes. If a writer that
read the call *before* the policy was tightened could still write, it would write the
looser policy back, and the server would forward what it had just stopped forwarding.
The store's compare-and-set is on a revision, and every writer reads again and decides
again when it loses (``Signaling._step``). These tests make the other writer land exactly
between one writer's read and its write, by wrapping the store the server really uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ringfence.calls.live import LiveCall
from ringfence.services.calls.store import CallStore
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


class InterleavingStore:
    """The server's own call store, plus one write of somebody else's that lands just
    before the server's next ``replace``: as if another node had written the call
    between this node's read and its write."""

    def __init__(self, inner: CallStore) -> None:
        self.inner = inner
        self.before_next_replace: Callable[[], Awaitable[None]] | None = None
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def replace(self, expected: LiveCall, live: LiveCall) -> bool:
        interleave, self.before_next_replace = self.before_next_replace, None
        if interleave is not None:
            await interleave()
        done = await self.inner.replace(expected, live)
        self.lost += not done
        return done


@dataclass
class Ringing:
    store: InterleavingStore
    call_id: str
    bob: str  # Bob's token
    a_ws: Socket
    b_ws: Socket
    answer: str  # an answer SDP for Bob to send


async def direct_call_ringing(live: LiveServer, api: Api) -> Ringing:
    """Alice calls Bob, both allowing direct connections; it rings. The server's call
    store is wrapped so a test can land a write between a read and a write of its own."""
    store = InterleavingStore(live.services.calls.store)
    live.services.calls.store = store
    alice, bob = await befriend(api, "alice", "bob")
    await allow_direct(api, alice, bob)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    call_id = (await start_call(api, alice, "bob")).json()["call_id"]
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    assert (await b_ws.recv_type("call.incoming"))["direct_allowed"] is True
    return Ringing(store, call_id, bob, a_ws, b_ws, answer)


async def test_a_candidate_queued_as_consent_is_withdrawn_never_reaches_the_callee(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    r = await direct_call_ringing(live, api)

    async def bob_withdraws() -> None:
        resp = await api.call(
            "PATCH", "/api/v1/me/settings", r.bob, json={"direct_connections": "nobody"}
        )
        assert resp.status_code == 200, resp.text

    # Alice's host candidate was read and sanitised under "all"; Bob's withdrawal is
    # stored before it is queued.
    r.store.before_next_replace = bob_withdraws
    await r.a_ws.send(
        {"type": "call.candidate", "call_id": r.call_id, "candidate": host_candidate(1)}
    )
    await r.a_ws.nothing_within(0.3)
    assert r.store.lost == 1  # the queueing lost to the withdrawal, then read it again
    stored = await r.store.get(r.call_id)
    assert stored is not None
    assert (stored.caller_policy, stored.callee_policy) == ("relay", "relay")
    assert stored.pending_candidates == ()
    await r.b_ws.send({"type": "call.answer", "call_id": r.call_id, "sdp": r.answer})
    assert (await r.a_ws.recv_type("call.answer"))["direct_allowed"] is False
    seen = await collect(r.b_ws, 0.5)
    for address in machine_addresses():
        assert all(address not in str(frame) for frame in seen), seen


async def test_media_connecting_as_the_call_moves_to_the_relay_keeps_it_relayed(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    r = await direct_call_ringing(live, api)
    await r.b_ws.send({"type": "call.answer", "call_id": r.call_id, "sdp": r.answer})
    assert (await r.a_ws.recv_type("call.answer"))["direct_allowed"] is True

    async def alice_hides_her_address() -> None:
        await r.a_ws.send({"type": "call.transport", "call_id": r.call_id, "transport": "relay"})
        assert (await r.a_ws.recv_type("call.transport"))["ice_transport_policy"] == "relay"

    # Bob's "media connected" read the call while it was direct; Alice's switch to the
    # relay is stored before his write.
    r.store.before_next_replace = alice_hides_her_address
    await r.b_ws.send({"type": "call.connected", "call_id": r.call_id})
    assert (await r.b_ws.recv_type("call.transport"))["ice_transport_policy"] == "relay"
    stored = await r.store.get(r.call_id)
    assert stored is not None
    assert stored.call.state.value == "connected"
    assert (stored.caller_policy, stored.callee_policy) == ("relay", "relay")
    # And from now on Bob's host candidates are dropped, not forwarded.
    await r.b_ws.send(
        {"type": "call.candidate", "call_id": r.call_id, "candidate": host_candidate(2)}
    )
    await r.a_ws.nothing_within(0.3)


async def test_consent_withdrawn_before_the_call_was_stored_holds_at_the_offer(
    server: tuple[LiveServer, Api],
) -> None:
    """The call's policies are read when it starts, a moment before it is stored; a
    withdrawal that commits in that moment finds no call to tighten. The offer reads
    the settings again for a direct call, so the caller's addresses still stay home."""
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    await allow_direct(api, alice, bob)
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, alice, "bob")).json()
    assert started["ice_transport_policy"] == "all"
    # Bob's withdrawal commits, but (as if the call were not stored yet) reaches no call.
    user_settings = live.services.user_settings
    hook = user_settings._direct_connections_changed
    user_settings._direct_connections_changed = None
    try:
        resp = await api.call(
            "PATCH", "/api/v1/me/settings", bob, json={"direct_connections": "nobody"}
        )
        assert resp.status_code == 200, resp.text
    finally:
        user_settings._direct_connections_changed = hook
    offer, _ = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": started["call_id"], "sdp": offer})
    incoming = await b_ws.recv_type("call.incoming")
    assert incoming["ice_transport_policy"] == "relay"
    assert incoming["direct_allowed"] is False
    for address in machine_addresses():
        assert address not in incoming["sdp"]
