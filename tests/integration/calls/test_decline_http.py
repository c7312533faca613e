"""Declining a ringing call over HTTP: what a notification's Decline button does when
no page of the callee's is open. The same rules as call.reject on the socket."""

from __future__ import annotations

from tests.conftest import Api, LiveServer
from tests.integration.calls.conftest import befriend
from tests.integration.calls.test_lifecycle import ended_and_recorded, ring


async def test_the_callee_declines_without_a_socket(server: tuple[LiveServer, Api]) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    call_id, a_ws, (b_ws,) = await ring(live, api, alice, bob)
    resp = await api.call("POST", f"/api/v1/calls/{call_id}/decline", bob)
    assert resp.status_code == 204, resp.text
    await ended_and_recorded(a_ws, call_id, "rejected", "rejected")
    await ended_and_recorded(b_ws, call_id, "rejected", "rejected")
    # Declining again: the call no longer exists.
    again = await api.call("POST", f"/api/v1/calls/{call_id}/decline", bob)
    assert again.status_code == 404
    assert again.json()["error"] == "call_not_found"


async def test_only_the_callee_declines_and_strangers_learn_nothing(
    server: tuple[LiveServer, Api],
) -> None:
    live, api = server
    alice, bob = await befriend(api, "alice", "bob")
    mallory = await api.register("mallory")
    call_id, a_ws, _ = await ring(live, api, alice, bob)
    by_caller = await api.call("POST", f"/api/v1/calls/{call_id}/decline", alice)
    assert by_caller.status_code == 409
    assert by_caller.json()["error"] == "call_state"
    stranger = await api.call("POST", f"/api/v1/calls/{call_id}/decline", mallory)
    unknown = await api.call("POST", "/api/v1/calls/AAAAAAAAAAAAAAAAAAAAAA/decline", mallory)
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == unknown.json()
    malformed = await api.call("POST", "/api/v1/calls/not%20an%20id/decline", bob)
    assert malformed.status_code == 422
    await a_ws.nothing_within(0.3)  # still ringing
