"""A relayed call through the *embedded* coturn listening on a private or documentation
address of this machine, so with the production rules: two real aiortc peers, relay
policy at both ends, audio both ways. This is how a self-hosted server on a home LAN or
a VPN runs, and where the relay used to deny its own address and no call connected."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api, LiveServer, make_settings, open_socket
from tests.integration.calls.conftest import Peer, befriend, start_call
from tests.turn_fixture import relay_test_address

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed"),
]


@pytest.fixture
async def private_server(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[LiveServer, Api, str]]:
    address = relay_test_address(4)
    settings = make_settings(
        tmp_path,
        database_url,
        turn_urls=[],  # no external relay: the server starts and verifies its own
        turn_secret=None,
        turn_listen_ip=address,
        turn_port=0,
    )
    async with LiveServer(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        yield live, Api(client), address


async def test_relayed_call_through_the_embedded_relay_on_a_private_address(
    private_server: tuple[LiveServer, Api, str],
) -> None:
    live, api, address = private_server
    supervisor = live.services.turn_supervisor
    assert supervisor is not None
    assert f"listening-ip={address}" in supervisor.config_path.read_text().splitlines()
    assert "allow-loopback-peers" not in supervisor.config_path.read_text()  # production

    alice, bob = await befriend(api, "alice", "bob")
    a_ws = await open_socket(live.ws_url, alice)
    b_ws = await open_socket(live.ws_url, bob)
    started = (await start_call(api, alice, "bob")).json()
    assert started["ice_transport_policy"] == "relay"
    assert all(f"turn:{address}:" in url for url in started["ice_servers"][0]["urls"])
    caller = Peer("relay", started["ice_servers"], tone=440)
    callee: Peer | None = None
    try:
        await a_ws.send(
            {"type": "call.offer", "call_id": started["call_id"], "sdp": await caller.offer()}
        )
        incoming = await b_ws.recv_type("call.incoming", timeout=15)
        assert incoming["ice_transport_policy"] == "relay"
        # Only the relay's own address reaches the other side.
        assert f"{address} " in incoming["sdp"]
        assert "typ host" not in incoming["sdp"]
        callee = Peer("relay", incoming["ice_servers"], tone=660)
        answer = await callee.answer(incoming["sdp"])
        await b_ws.send({"type": "call.answer", "call_id": started["call_id"], "sdp": answer})
        await caller.accept_answer((await a_ws.recv_type("call.answer", timeout=15))["sdp"])

        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        await asyncio.sleep(3)  # a few seconds of audio, both ways
        assert caller.selected_pair_types() == ("relay", "relay")
        assert callee.selected_pair_types() == ("relay", "relay")
        assert abs(callee.dominant_frequency() - 440) < 5
        assert abs(caller.dominant_frequency() - 660) < 5
    finally:
        await caller.close()
        if callee is not None:
            await callee.close()
        await a_ws.close()
        await b_ws.close()
