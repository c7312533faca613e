"""Several real ``ringfence serve`` nodes sharing PostgreSQL, Redis and coturn.

Users on different nodes message and call each other with real media; a node killed
with SIGKILL mid-ring or mid-call still gets its calls ended, by the survivor, with a
clear reason and no state left behind; a Redis restart heals by itself, and nothing a
node acknowledged is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PG_URL, Socket, open_socket
from tests.integration.calls.conftest import Peer, befriend, start_call
from tests.integration.calls.sdp import sdp_pair
from tests.integration.scale.conftest import Cluster, Node, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not PG_URL,
        reason="several nodes need PostgreSQL (RINGFENCE_TEST_DATABASE_URL): "
        "an SQLite database belongs to one node",
    ),
]

# A node's devices count as gone 6 s after its last heartbeat; a call's devices are
# checked every 2 s and then get the grace period. All this well within a minute.
DEAD_NODE_NOTICED_S = 60


async def events_until(sock: Socket, type_: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event up to and including the first of ``type_``."""
    seen = []
    while True:
        event = await sock.recv(timeout)
        seen.append(event)
        if event["type"] == type_:
            return seen


async def no_live_calls(cluster: Cluster) -> bool:
    return not await cluster.redis_keys("call:*") and not await cluster.redis_keys("user-calls:*")


async def test_users_on_two_nodes_message_and_call_with_relayed_media(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory()
    node1, node2 = await cluster.start_node(), await cluster.start_node()
    alice, bob = await befriend(node1.api, "alice", "bob")  # befriend's DM is on node 1

    a_ws = await open_socket(node1.ws_url, alice)
    phone = await open_socket(node2.ws_url, bob)  # Bob's phone is on node 2
    laptop = await open_socket(node1.ws_url, bob)  # and his laptop on node 1
    sent = await node1.api.send(alice, "bob", "hello across nodes", txn_id="x1")
    assert sent.status_code == 201
    for sock in (phone, laptop, a_ws):
        event = await sock.recv_type("message.new")
        assert event["message"]["text"] == "hello across nodes"
    reply = await node2.api.send(bob, "alice", "hi from node 2")
    assert reply.status_code == 201
    assert (await a_ws.recv_type("message.new"))["message"]["text"] == "hi from node 2"

    resp = await start_call(node1.api, alice, "bob")
    assert resp.status_code == 201, resp.text
    started = resp.json()
    call_id = started["call_id"]
    caller = Peer(started["ice_transport_policy"], started["ice_servers"], tone=440)
    callee: Peer | None = None
    try:
        await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": await caller.offer()})
        incoming = await phone.recv_type("call.incoming")
        assert (await laptop.recv_type("call.incoming"))["call_id"] == call_id
        callee = Peer(incoming["ice_transport_policy"], incoming["ice_servers"], tone=660)
        answer = await callee.answer(incoming["sdp"])
        await phone.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
        # The answer crosses from node 2 to the caller on node 1, and the laptop on
        # node 1 stops ringing.
        await caller.accept_answer((await a_ws.recv_type("call.answer"))["sdp"])
        assert (await laptop.recv_type("call.ended"))["reason"] == "answered_elsewhere"

        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        # As Ringfence's clients do once media is up (recorded on node 2's store entry).
        await phone.send({"type": "call.connected", "call_id": call_id})
        await asyncio.sleep(3)  # let a few seconds of audio flow both ways
        assert abs(callee.dominant_frequency() - 440) < 5
        assert abs(caller.dominant_frequency() - 660) < 5
        assert caller.selected_pair_types() == ("relay", "relay")
        assert callee.selected_pair_types() == ("relay", "relay")

        await phone.send({"type": "call.hangup", "call_id": call_id})
        for sock in (a_ws, phone):
            record = (await sock.recv_type("message.new"))["message"]
            assert record["call"]["outcome"] == "completed"
            assert (await sock.recv_type("call.ended"))["reason"] == "hangup"
        assert await no_live_calls(cluster)
    finally:
        await caller.close()
        if callee is not None:
            await callee.close()
        for sock in (a_ws, phone, laptop):
            await sock.close()


@pytest.mark.parametrize("moment", ["ringing", "answered"])
async def test_killing_the_callers_node_ends_the_call_on_the_other_node(
    cluster_factory: Callable[..., Cluster], moment: str
) -> None:
    cluster = cluster_factory(call_grace_s=1)
    node1, node2 = await cluster.start_node(), await cluster.start_node()
    alice, bob = await befriend(node1.api, "alice", "bob")
    a_ws = await open_socket(node1.ws_url, alice)
    b_ws = await open_socket(node2.ws_url, bob)
    offer, answer = await sdp_pair()
    # The call starts on node 1, which holds the caller's socket and set its deadlines.
    call_id = (await start_call(node1.api, alice, "bob")).json()["call_id"]
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    await b_ws.recv_type("call.incoming")
    if moment == "answered":
        await b_ws.send({"type": "call.answer", "call_id": call_id, "sdp": answer})
        await a_ws.recv_type("call.answer")
    last_seen = a_ws.ready["pos"]  # call signaling has no positions

    node1.kill()
    seen = await events_until(b_ws, "call.ended", timeout=DEAD_NODE_NOTICED_S)
    record = next(e for e in seen if e["type"] == "message.new")["message"]
    assert seen[-1] == {"type": "call.ended", "call_id": call_id, "reason": "failed"}
    # Answered, but media never connected (no media flows in this test).
    assert record["call"]["outcome"] == ("not_connected" if moment == "answered" else "cancelled")
    assert await no_live_calls(cluster)

    # Alice's app reconnects, to the surviving node, with the last position it saw.
    await node2.api.send(bob, "alice", "are you still there?")
    a2 = await open_socket(node2.ws_url, alice, since=last_seen)
    missed = [await a2.recv() for _ in range(2)]
    assert [e["pos"] for e in missed] == [last_seen + 1, last_seen + 2]
    assert missed[0]["message"]["call"]["call_id"] == call_id
    assert missed[1]["message"]["text"] == "are you still there?"
    await a2.nothing_within(0.3)
    for sock in (a2, b_ws):
        await sock.close()


async def test_killing_the_callees_node_mid_ring_times_out_on_the_callers_node(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(ring_timeout_s=6)
    node1, node2 = await cluster.start_node(), await cluster.start_node()
    alice, bob = await befriend(node1.api, "alice", "bob")
    a_ws = await open_socket(node1.ws_url, alice)
    b_ws = await open_socket(node2.ws_url, bob)
    offer, _ = await sdp_pair()
    call_id = (await start_call(node2.api, alice, "bob")).json()["call_id"]  # on node 2
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    await b_ws.recv_type("call.incoming")

    node2.kill()  # Bob's only device, and the node the call was started on
    seen = await events_until(a_ws, "call.ended", timeout=DEAD_NODE_NOTICED_S)
    assert seen[-1] == {"type": "call.ended", "call_id": call_id, "reason": "timeout"}
    record = next(e for e in seen if e["type"] == "message.new")["message"]
    assert record["call"]["outcome"] == "missed"
    assert await no_live_calls(cluster)
    await a_ws.close()


async def test_fan_out_recovers_after_a_redis_restart_and_nothing_acknowledged_is_lost(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory()
    node1, node2 = await cluster.start_node(), await cluster.start_node()
    alice = await node1.api.register("alice")
    await node1.api.register("bob")
    bob = (
        await node2.api.client.post(
            "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
        )
    ).json()["token"]
    b_ws = await open_socket(node2.ws_url, bob)

    async def send(text: str) -> int:
        resp = await node1.api.send(alice, "bob", text)
        assert resp.status_code == 201, resp.text  # acknowledged: committed
        message_id: int = resp.json()["message"]["id"]
        return message_id

    acked = [await send("before the restart")]
    assert (await b_ws.recv_type("message.new"))["pos"] == 1

    cluster.redis.kill()
    acked += [await send("while Redis is down 1"), await send("while Redis is down 2")]
    await cluster.redis.start()  # empty: no subscriptions, no presence, nothing

    # Node 2 reconnects, subscribes again, and Bob's socket reads back what it missed.
    got = [await b_ws.recv_type("message.new", timeout=DEAD_NODE_NOTICED_S) for _ in range(2)]
    assert [e["pos"] for e in got] == [2, 3]
    assert [e["message"]["id"] for e in got] == acked[1:]

    # Live fan-out works again, from node 1 to node 2.
    async def delivered_live() -> bool:
        message_id = await send("after the restart")
        acked.append(message_id)
        try:
            event = await b_ws.recv_type("message.new", timeout=1)
        except TimeoutError:
            return False
        return bool(event["message"]["id"] == message_id)

    await until(delivered_live, DEAD_NODE_NOTICED_S, "live delivery after the restart")
    # Any event not delivered live arrived by gap-fill; none was lost or duplicated.
    history = (
        await node2.api.call(
            "GET", "/api/v1/conversations/alice/messages", bob, params={"limit": 100}
        )
    ).json()["messages"]
    assert [m["id"] for m in history] == acked

    # Another client catching up through since gets everything, once, in order.
    fresh = await open_socket(node1.ws_url, bob, since=0)
    replayed = [await fresh.recv_type("message.new") for _ in acked]
    assert [e["message"]["id"] for e in replayed] == acked
    await fresh.nothing_within(0.3)
    for sock in (fresh, b_ws):
        await sock.close()


async def test_a_call_while_redis_is_down_is_refused_with_503_then_works_again(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory()
    node = await cluster.start_node()
    alice, _bob = await befriend(node.api, "alice", "bob")
    cluster.redis.kill()
    # Live calls live in Redis: none can start now, and the answer says so, with a
    # time to retry: never a 500, and nothing that reads as a refusal by Bob.
    refused = await start_call(node.api, alice, "bob")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "unavailable"
    assert refused.headers["Retry-After"] == "5"
    await cluster.redis.start()

    async def call_starts() -> bool:
        resp = await start_call(node.api, alice, "bob")
        return resp.status_code == 201

    await until(call_starts, DEAD_NODE_NOTICED_S, "a call to start once Redis is back")


async def test_a_new_name_is_what_every_node_answers_at_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Each node caches who a token belongs to for a few seconds; a rename on one
    node tells the others to forget it, so none of them answers with the old name."""
    cluster = cluster_factory(auth_cache_ttl_s=60)  # long enough to show it isn't the TTL
    node1, node2 = await cluster.start_node(), await cluster.start_node()
    alice = await node1.api.register("alice")

    async def name_on(node: Node) -> str:
        resp = await node.api.call("GET", "/api/v1/me", alice)
        assert resp.status_code == 200, resp.text
        name: str = resp.json()["user"]["display_name"]
        return name

    assert await name_on(node2) == "alice"  # node 2 now has alice's token cached
    resp = await node1.api.call("PATCH", "/api/v1/me", alice, json={"display_name": "Alice L."})
    assert resp.status_code == 200, resp.text

    async def renamed_on_node2() -> bool:
        return await name_on(node2) == "Alice L."

    # Within seconds (a Bus notice), not the minute its cache would keep it.
    await until(renamed_on_node2, 10, "node 2 to forget the old name")
    assert await name_on(node1) == "Alice L."
