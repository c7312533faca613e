"""WebSocket hardening: cross-site origins refused, floods throttled, connections capped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ringfence.app import create_app, server_config
from tests.conftest import Api, LiveServer, make_settings, open_socket


async def serve(tmp_path: Path, database_url: str, **overrides: Any) -> Any:
    return LiveServer(make_settings(tmp_path, database_url, **overrides))


async def test_cross_site_origin_is_refused_before_the_upgrade(
    tmp_path: Path, database_url: str
) -> None:
    async with await serve(tmp_path, database_url) as live:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(live.ws_url, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        # The page's own origin, and clients that send no Origin at all, get through.
        same = await websockets.connect(live.ws_url, origin=f"http://127.0.0.1:{live.port}")
        await same.close()
        plain = await websockets.connect(live.ws_url)
        await plain.close()


async def test_configured_public_urls_are_the_only_browser_origins(
    tmp_path: Path, database_url: str
) -> None:
    async with await serve(
        tmp_path, database_url, public_urls=["https://chat.example.org"]
    ) as live:
        ok = await websockets.connect(live.ws_url, origin="https://chat.example.org")
        await ok.close()
        with pytest.raises(InvalidStatus):
            await websockets.connect(live.ws_url, origin=f"http://127.0.0.1:{live.port}")


async def flood_until_closed(ws: websockets.ClientConnection) -> None:
    for _ in range(400):
        await ws.send(json.dumps({"type": "ping"}))
    while True:
        await asyncio.wait_for(ws.recv(), 5)


async def test_a_flood_of_frames_is_throttled_then_disconnected(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        await serve(tmp_path, database_url, ws_message_burst=5, ws_messages_per_second=1) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        token = await Api(client).register("alice")
        sock = await open_socket(live.ws_url, token)
        for _ in range(8):
            await sock.send({"type": "ping"})
        replies = [await sock.recv() for _ in range(6)]
        assert [r["type"] for r in replies].count("pong") == 5
        assert {
            "type": "error",
            "error": "rate_limited",
            "detail": "too many frames; slow down",
        } in replies
        # Keeping it up gets the socket closed with a policy violation.
        with pytest.raises(ConnectionClosed) as closed:
            await flood_until_closed(sock.ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_connections_per_user_are_capped_but_a_device_may_resume(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        await serve(tmp_path, database_url, ws_max_connections_per_user=2) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        token = await Api(client).register("alice")
        first = await open_socket(live.ws_url, token)
        await open_socket(live.ws_url, token)
        ws = await websockets.connect(live.ws_url)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        refusal = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert refusal["error"] == "too_many_connections"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4429
        # Reconnecting as an existing device replaces it rather than adding one.
        again = await open_socket(live.ws_url, token, device_id=first.ready["device_id"])
        assert again.ready["device_id"] == first.ready["device_id"]


async def test_the_route_serves_the_socket_when_the_app_is_served_without_the_shortcut(
    tmp_path: Path, database_url: str
) -> None:
    """server_config puts EventsFirst in front of the app; the app's own route does the
    same job, with the same checks, for an app served any other way."""
    live = await serve(tmp_path, database_url)
    live.server.config.app = live.app  # the bare FastAPI app
    async with live, httpx.AsyncClient(base_url=live.url) as client:
        token = await Api(client).register("alice")
        sock = await open_socket(live.ws_url, token)
        assert sock.ready["user"]["username"] == "alice"
        await sock.send({"type": "ping"})
        assert (await sock.recv())["type"] == "pong"
        with pytest.raises(InvalidStatus):
            await websockets.connect(live.ws_url, origin="https://evil.example")


def test_keepalive_pings_every_45_seconds_unless_configured(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    assert server_config(create_app(settings), settings).ws_ping_interval == 45
    settings = make_settings(tmp_path, database_url, ws_ping_interval_s=25)
    assert server_config(create_app(settings), settings).ws_ping_interval == 25
