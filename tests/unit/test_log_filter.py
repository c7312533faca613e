"""The server's log filter drops client addresses and websockets' frame-level lines,
but never an error (uvicorn logs handler crashes from a module under 'websockets')."""

from __future__ import annotations

import logging

from ringfence.app import _without_client_addresses

UVICORN_WS = "/venv/lib/python3.11/site-packages/uvicorn/protocols/websockets/websockets_impl.py"
WEBSOCKETS = "/venv/lib/python3.11/site-packages/websockets/legacy/protocol.py"


def record(path: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", level, path, 1, msg, None, None)


def test_frame_level_debug_lines_are_dropped() -> None:
    assert not _without_client_addresses(record(WEBSOCKETS, logging.DEBUG, "< TEXT '{...}'"))


def test_websocket_accept_lines_with_client_addresses_are_dropped() -> None:
    line = '127.0.0.1:5000 - "WebSocket /api/v1/events" [accepted]'
    assert not _without_client_addresses(record(UVICORN_WS, logging.INFO, line))


def test_errors_of_the_websocket_handler_are_kept() -> None:
    assert _without_client_addresses(
        record(UVICORN_WS, logging.ERROR, "Exception in ASGI application")
    )
    assert _without_client_addresses(record("/x/uvicorn/server.py", logging.INFO, "started"))
