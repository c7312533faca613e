"""TURN credentials are a budget per account, on every path that hands them out, and
each carries the account's stable pseudonym (so the relay's quota is per account).

Before: reconnecting a ringing callee's WebSocket 100 times minted 100 credentials in
0.4 s, each under a random user name of its own.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.conftest import Api, LiveServer, open_socket
from tests.integration.calls.conftest import befriend, start_call
from tests.integration.calls.sdp import sdp_pair
from tests.integration.calls.test_switch_signaling import answered_call

BUDGET = 20  # turn_credentials_per_minute's default


def pseudonym(ice_servers: list[dict[str, object]]) -> str:
    (server,) = ice_servers
    username = str(server["username"])
    expiry, opaque = username.split(":")
    assert expiry.isdigit()
    return opaque


async def test_reconnecting_a_ringing_callee_gets_a_bounded_number_of_credentials(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    started = (await start_call(api, alice, "bob")).json()
    offer = (await sdp_pair())[0]
    await a_ws.send({"type": "call.offer", "call_id": started["call_id"], "sdp": offer})
    # The server handles a socket's frames in order: once the pong is back, the offer's
    # own ring (Alice's to pay) has gone out, to no device of Bob's, and cannot reach
    # the first of his reconnects below instead of his own ring.
    await a_ws.send({"type": "ping"})
    await a_ws.recv_type("pong")

    rung: list[dict[str, object]] = []
    attempts = 0
    # Until the budget is spent, then as many again: each of those is refused. (Not a
    # hundred: the budget is per minute, and on a loaded machine a hundred reconnects
    # could outlast the minute and rightly earn a fresh credential.)
    while attempts < 100 and (len(rung) < BUDGET or attempts < 2 * BUDGET):
        b_ws = await open_socket(live.ws_url, bob, device_id=f"bob-device-{attempts}")
        attempts += 1
        # Wait for each ring while one is due; after that, a glance is enough.
        with contextlib.suppress(TimeoutError):
            rung.append(await b_ws.recv_type("call.incoming", 2 if len(rung) < BUDGET else 0.05))
        await b_ws.close()

    # Bob's own reconnects are Bob's budget (Alice's call cost Alice's, not his).
    assert len(rung) == BUDGET
    names = {pseudonym(frame["ice_servers"]) for frame in rung}  # type: ignore[arg-type]
    assert len(names) == 1, "every credential of one account carries its one pseudonym"
    assert names != {pseudonym(started["ice_servers"])}, "and each account has its own"


@pytest.mark.server_settings(turn_credentials_per_minute=3)
async def test_starting_calls_spends_the_callers_budget_whoever_is_called(
    server: tuple[LiveServer, Api],
) -> None:
    _live, api = server
    alice, _bob = await befriend(api, "alice", "bob")
    for name in ("carol", "dave"):  # they take no calls from alice
        await api.register(name)
    assert (await start_call(api, alice, "carol")).status_code == 403
    assert (await start_call(api, alice, "dave")).status_code == 403
    assert (await start_call(api, alice, "bob")).status_code == 201
    # Three credentials spent, refused calls included (they are counted before the
    # rules): now the same 429 whether the call would be allowed or not.
    for to in ("bob", "carol"):
        refused = await start_call(api, alice, to)
        assert refused.status_code == 429, refused.text
        assert refused.json() == {
            "error": "call_rate_limited",
            "detail": "too many calls and call changes; try again later",
        }
        assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.server_settings(turn_credentials_per_minute=4)
async def test_a_switch_costs_the_one_who_asks_two_credentials(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    call_id, a_ws, b_ws, started = await answered_call(live, api, direct=False)
    # Alice has spent 2 (her start, Bob's ring); a switch costs her 2 more.
    await a_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    mine = await a_ws.recv_type("call.transport")
    theirs = await b_ws.recv_type("call.transport")
    assert pseudonym(mine["ice_servers"]) == pseudonym(started["ice_servers"])
    assert pseudonym(theirs["ice_servers"]) != pseudonym(mine["ice_servers"])
    offer, answer = await sdp_pair()
    await a_ws.send({"type": "call.reoffer", "call_id": call_id, "sdp": offer})
    await b_ws.recv_type("call.reoffer")
    await b_ws.send({"type": "call.reanswer", "call_id": call_id, "sdp": answer})
    await a_ws.recv_type("call.reanswer")

    # Well within call_switches_per_minute, but out of credentials.
    await a_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    error = await a_ws.recv_type("error")
    assert (error["error"], error["call_id"]) == ("call_rate_limited", call_id)
    # Bob's budget is his own: he may still switch.
    await b_ws.send({"type": "call.transport", "call_id": call_id, "transport": "relay"})
    assert (await b_ws.recv_type("call.transport"))["restart"] is True
