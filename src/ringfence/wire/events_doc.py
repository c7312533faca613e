"""The real-time socket's protocol in words, for the OpenAPI document's description.

OpenAPI has no way to describe a WebSocket, so the API's description says what
travels on ``GET /api/v1/events`` in each direction. The call frames are listed from
:mod:`ringfence.wire.calls` and the events from :mod:`ringfence.wire.events`, with
their docstrings, so a new one cannot be left out; ``tests/unit/api/test_openapi_events.py``
checks that every frame the socket handles is among the client frames here.
"""

from __future__ import annotations

from typing import Final

from ringfence.wire.calls import CALL_CLIENT_TYPES, CALL_SERVER_TYPES
from ringfence.wire.events import EVENTS
from ringfence.wire.frames import ErrorEvent, MessageAckEvent, PongEvent, ReadyEvent

# Frames a client sends, after the first (``auth``), with what each does.
CLIENT_FRAMES: Final = {
    "auth": '`{"type":"auth","token":"...","since":42}`: the first frame; it keeps the '
    "token out of URLs and logs. `since` resumes after a stream position.",
    "typing": '`{"type":"typing","to":"<user>"}`: my person is typing. Reaches them only '
    "in an accepted conversation where both allow typing indicators; never stored, never "
    "answered.",
    "message.delivered": '`{"type":"message.delivered","user":"<sender>","up_to":<id>}`: '
    "their messages up to this id reached this device (as `POST "
    "/api/v1/conversations/{user}/delivered`). Never answered.",
    "message.send": '`{"type":"message.send","to":"<user>","text":"...","txn_id":"<id>"}`: '
    "send a DM over the open socket, as `POST /api/v1/conversations/{to}/messages` with the "
    "same idempotency, rules, limits and errors. Answered, once it is committed, by "
    "`message.ack`, or by an `error` with the txn_id and the route's `status`.",
    "ping": '`{"type":"ping"}`: answered with `{"type":"pong"}`.',
}


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


# Every event the server sends outside calls: the socket's own, then each event model
# with its docstring (stored ones carry `pos`, the stream position to resume after).
SERVER_EVENTS: Final = {
    "ready": _one_line(ReadyEvent.__doc__),
    "error": _one_line(ErrorEvent.__doc__),
    "pong": _one_line(PongEvent.__doc__),
    "message.ack": _one_line(MessageAckEvent.__doc__),
    **{event.TYPE: _one_line(event.__doc__) for event in EVENTS},
}


def events_markdown() -> str:
    """The description: the socket, its frames both ways, and the call frames."""
    lines = [
        "Direct messages and 1:1 calls that never reveal where you are.",
        "",
        "## The real-time socket: `GET /api/v1/events`",
        "",
        "Authenticate every HTTP request with `Authorization: Bearer <token>`. Real-time "
        "events come over the WebSocket `/api/v1/events`; its first frame authenticates.",
        "",
        "### Frames a client sends",
        "",
        *(f"- `{name}`: {text}" for name, text in CLIENT_FRAMES.items()),
        "- Call signaling: " + ", ".join(f"`{t}`" for t in sorted(CALL_CLIENT_TYPES)) + ".",
        "",
        "### Events the server sends",
        "",
        *(f"- `{name}`: {text}" for name, text in SERVER_EVENTS.items()),
        "- Call signaling: " + ", ".join(f"`{t}`" for t in sorted(CALL_SERVER_TYPES)) + ".",
    ]
    return "\n".join(lines)
