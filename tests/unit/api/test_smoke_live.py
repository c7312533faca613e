from __future__ import annotations

from tests.conftest import Api, LiveServer, open_socket


async def test_dm_reaches_both_parties_live(live: tuple[LiveServer, Api]) -> None:
    server, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    a_ws = await open_socket(server.ws_url, alice)
    b_ws = await open_socket(server.ws_url, bob)
    resp = await api.send(alice, "bob", "hello")
    assert resp.status_code == 201
    for sock in (a_ws, b_ws):
        event = await sock.recv_type("message.new")
        assert event["message"]["text"] == "hello"
        assert event["pos"] == 1
    await a_ws.close()
    await b_ws.close()
