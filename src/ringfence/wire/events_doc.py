"""The real-time socket's protocol in words, for the OpenAPI document's description.

OpenAPI has no way to describe a WebSocket, so the API's description says what
travels on ``GET /api/v1/events`` in each direction. The call frames are listed from
:mod:`ringfence.wire.calls` itself, so a new one cannot be left out; the others are
listed here, and ``tests/unit/api/test_openapi_events.py`` checks that every event
type the services send is among them.
"""

from __future__ import annotations

from typing import Final

from ringfence.wire.calls import CALL_CLIENT_TYPES, CALL_SERVER_TYPES

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
    "ping": '`{"type":"ping"}`: answered with `{"type":"pong"}`.',
}

# Events the server sends. Stored ones carry `pos`, the stream position to resume from.
SERVER_EVENTS: Final = {
    "ready": "The answer to `auth`: `user`, `device_id`, `pos`, and `resync: true` when "
    "the client must drop what it holds and reload.",
    "message.new": "A message to or from me (`message`, `is_request`), on every device.",
    "conversation.updated": "A conversation was accepted or declined (`conversation`).",
    "conversation.read": "My read position with `user` moved to `up_to`, on some device.",
    "message.read": "`user` read my messages up to `up_to` (where we both share read receipts).",
    "message.delivered": "One of `user`'s devices has my messages up to `up_to` (on the "
    "same terms as `message.read`).",
    "user.updated": "Someone I talk with (or I) changed their display name, or deleted "
    "their account (`user.deleted`).",
    "typing": "`user` is typing to me. Never stored.",
    "error": "A frame was refused: `error` (a code), `detail`, and `call_id` for a call frame.",
    "pong": "The answer to `ping`.",
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
