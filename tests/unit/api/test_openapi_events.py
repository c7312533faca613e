"""The OpenAPI document describes the real-time socket (OpenAPI itself can't): every
frame a client may send and every event the server sends, so that the schema a
developer reads is complete. The lists are checked against the code that sends and
handles them, so a new event cannot go undocumented."""

from __future__ import annotations

import re
from pathlib import Path

from ringfence.wire.calls import CALL_CLIENT_TYPES, CALL_SERVER_TYPES
from ringfence.wire.events_doc import CLIENT_FRAMES, SERVER_EVENTS
from tests.conftest import Api

SERVICES = Path(__file__).resolve().parents[3] / "src" / "ringfence" / "services"
# Stored events: stream.append(store, user, "type", ...) or append_many(store, "type", ...)
STORED = re.compile(r'append(?:_many)?\(\s*store,\s*(?:[^,()]+,\s*)?"([a-z.]+)"')
# Ephemeral ones: stream.notify(user, {"type": "typing", ...})
EPHEMERAL = re.compile(r'notify\([^{]*\{"type":\s*"([a-z.]+)"')


async def test_the_schema_describes_every_frame_both_ways(api: Api) -> None:
    resp = await api.call("GET", "/api/openapi.json")
    assert resp.status_code == 200
    description = resp.json()["info"]["description"]
    assert "`GET /api/v1/events`" in description
    for name in [*CLIENT_FRAMES, *SERVER_EVENTS, *CALL_CLIENT_TYPES, *CALL_SERVER_TYPES]:
        assert f"`{name}`" in description, name
    for endpoint in ("/{username}/delivered", "/{username}/read"):
        assert f"/api/v1/conversations{endpoint}" in resp.json()["paths"]


def test_every_event_the_services_send_is_documented() -> None:
    sent = set()
    for path in SERVICES.rglob("*.py"):
        source = path.read_text()
        sent |= set(STORED.findall(source)) | set(EPHEMERAL.findall(source))
    # The patterns still find what they must (a pattern that found nothing passes).
    assert {"message.new", "message.read", "conversation.read", "user.updated", "typing"} <= sent
    assert sent <= set(SERVER_EVENTS), sent - set(SERVER_EVENTS)


def test_every_frame_the_socket_handles_is_documented() -> None:
    source = (SERVICES / "sockets.py").read_text()
    handled = set(re.findall(r'kind == "([a-z.]+)"', source))
    assert {"typing", "ping"} <= handled
    assert handled <= set(CLIENT_FRAMES), handled - set(CLIENT_FRAMES)
