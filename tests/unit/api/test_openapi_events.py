"""The OpenAPI document describes the real-time socket (OpenAPI itself can't): every
frame a client may send and every event the server sends, so that the schema a
developer reads is complete. The lists are checked against the event models and the
code that handles client frames, so a new one cannot go undocumented."""

from __future__ import annotations

import re
from pathlib import Path

from ringfence.wire import events
from ringfence.wire.calls import CALL_CLIENT_TYPES, CALL_SERVER_TYPES
from ringfence.wire.events import EVENTS, StreamEvent
from ringfence.wire.events_doc import CLIENT_FRAMES, SERVER_EVENTS
from tests.conftest import Api

SOCKETS = Path(__file__).resolve().parents[3] / "src" / "ringfence" / "services" / "sockets.py"


async def test_the_schema_describes_every_frame_both_ways(api: Api) -> None:
    resp = await api.call("GET", "/api/openapi.json")
    assert resp.status_code == 200
    description = resp.json()["info"]["description"]
    assert "`GET /api/v1/events`" in description
    for name in [*CLIENT_FRAMES, *SERVER_EVENTS, *CALL_CLIENT_TYPES, *CALL_SERVER_TYPES]:
        assert f"`{name}`" in description, name
    for endpoint in ("/{username}/delivered", "/{username}/read"):
        assert f"/api/v1/conversations{endpoint}" in resp.json()["paths"]


def test_every_event_model_is_listed_and_documented() -> None:
    """Services can only send events of wire/events.py (the stream takes nothing else):
    each must be in EVENTS, so the documentation and the web client's types have it."""
    models = {
        obj
        for obj in vars(events).values()
        if isinstance(obj, type) and issubclass(obj, StreamEvent) and obj is not StreamEvent
    }
    assert models == set(EVENTS)
    for event in EVENTS:
        assert event.__doc__, event
        assert SERVER_EVENTS[event.TYPE]


def test_every_frame_the_socket_handles_is_documented() -> None:
    handled = set(re.findall(r'kind == "([a-z.]+)"', SOCKETS.read_text()))
    assert {"typing", "ping", "message.delivered"} <= handled
    assert handled <= set(CLIENT_FRAMES), handled - set(CLIENT_FRAMES)
