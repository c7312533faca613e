"""The clients' files that are generated from the server's Python code, so that the
browser, the Python client and the server share one source: each entry renders one
file under ``src/ringfence/``.

``scripts/lib/render_generated.py`` writes them; tests/unit/test_generated.py checks
that the committed files are current.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, create_model

from ringfence.calls.words import VERSION, WORDS
from ringfence.jsdoc import typedefs
from ringfence.typeddicts import typeddicts
from ringfence.wire.call_states import TRANSITIONS, CallState
from ringfence.wire.calls import ClientCallFrame, ServerCallFrame
from ringfence.wire.events import EVENTS, StreamEvent
from ringfence.wire.frames import ErrorEvent, MessageAckEvent, ReadyEvent
from ringfence.wire.models import (
    CallRecord,
    ConversationView,
    MessageView,
    SessionView,
    SettingsView,
    UserView,
)
from ringfence.wire.requests import SubscribeRequest, SubscriptionKeys
from ringfence.wire.responses import (
    CallHistoryItem,
    PushSubscriptionView,
    ReportReceipt,
    SessionResponse,
    StartCallResponse,
)


def verification_words() -> str:
    return json.dumps({"version": VERSION, "words": list(WORDS)}, indent=2) + "\n"


def call_states() -> str:
    """The client call-state table (:mod:`ringfence.wire.call_states`) as an ES module."""
    union = " | ".join(f'"{state.value}"' for state in CallState)
    moves = {state: json.dumps(sorted(s.value for s in TRANSITIONS[state])) for state in CallState}
    table = "\n".join(f"    {state.value}: Object.freeze({moves[state]})," for state in CallState)
    return f"""// Generated from ringfence/wire/call_states.py (scripts/lib/render_generated.py).
// Do not edit: tests/unit/test_generated.py fails while this file and its source differ.

/** @typedef {{{union}}} CallState */

/** The moves a call may make between states: the same table as the Python client's. */
export const TRANSITIONS = /** @type {{Readonly<Record<CallState, readonly CallState[]>>}} */ (
  Object.freeze({{
{table}
  }})
);
"""


def call_frames() -> str:
    """Every call frame of the wire format (:mod:`ringfence.wire.calls`) as JSDoc types:
    what the server sends as ``Call...Event`` (CallEvent is any of them), what a device
    sends under its model's name (ClientCallFrame is any of them)."""
    server: list[tuple[str, type[BaseModel]]] = [
        (model.__name__.removesuffix("Frame") + "Event", model)
        for model in get_args(ServerCallFrame)
    ]
    client: list[tuple[str, type[BaseModel]]] = [
        (model.__name__, model) for model in get_args(ClientCallFrame)
    ]
    server_union = " | ".join(name for name, _ in server)
    client_union = " | ".join(name for name, _ in client)
    return f"""// Generated from ringfence/wire/calls.py (scripts/lib/render_generated.py).
// Do not edit: tests/unit/test_generated.py fails while this file and its source differ.

{typedefs([*server, *client])}
/** @typedef {{{server_union}}} CallEvent */

/** @typedef {{{client_union}}} ClientCallFrame */

export {{}};
"""


def api_types() -> str:
    """The HTTP API's response shapes (users, messages, conversations, settings,
    sessions, calls) as JSDoc types, from the models the server answers with."""
    models: list[tuple[str, type[BaseModel]]] = [
        ("User", UserView),
        ("Session", SessionResponse),
        ("CallRecord", CallRecord),
        ("Message", MessageView),
        ("Conversation", ConversationView),
        ("Settings", SettingsView),
        ("DeviceSession", SessionView),
        ("StartedCall", StartCallResponse),
        ("CallHistoryItem", CallHistoryItem),
        ("PushSubscriptionInfo", PushSubscriptionView),
        ("PushSubscriptionKeys", SubscriptionKeys),
        ("PushSubscriptionJSON", SubscribeRequest),
        ("ReadyEvent", ReadyEvent),
        ("ErrorEvent", ErrorEvent),
        ("MessageAckEvent", MessageAckEvent),
    ]
    events = [_as_received(event) for event in EVENTS]
    union = " | ".join(name for name, _ in events)
    return f"""// Generated from the server's response models and socket events
// (scripts/lib/render_generated.py). Do not edit: tests/unit/test_generated.py fails
// while this file and its source differ.

{typedefs([*models, *events])}
/** @typedef {{{union}}} StreamEvent */

export {{}};
"""


def _as_received(event: type[StreamEvent]) -> tuple[str, type[BaseModel]]:
    """An event model as a device receives it: with its ``type``, and the ``pos`` a
    stored event has in the user's stream."""
    fields: dict[str, Any] = {"type": (cast(Any, Literal)[event.TYPE], ...)}
    if event.STORED:
        fields["pos"] = (int, ...)
    name = event.__name__ + "Event"
    return name, create_model(name, __base__=event, __doc__=event.__doc__, **fields)


def client_api_types() -> str:
    """The HTTP API's response shapes as ``TypedDict``s for the Python client, from the
    same models as :func:`api_types`."""
    models: list[tuple[str, type[BaseModel]]] = [
        ("User", UserView),
        ("Session", SessionResponse),
        ("UserSettings", SettingsView),
        ("SessionInfo", SessionView),
        ("CallRecord", CallRecord),
        ("Message", MessageView),
        ("Conversation", ConversationView),
        ("ReportReceipt", ReportReceipt),
        ("CallHistoryItem", CallHistoryItem),
    ]
    names = "".join(f'    "{name}",\n' for name in sorted(name for name, _ in models))
    return f'''"""The server's response shapes, as the Python client reads them.

Generated from ringfence/wire (scripts/lib/render_generated.py). Do not edit:
tests/unit/test_generated.py fails while this file and its source differ. Times are
ISO 8601 strings, as the JSON has them.
"""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = [
{names}]


{typeddicts(models)}'''


# Every generated file, by its path under src/ringfence/.
GENERATED: dict[str, Callable[[], str]] = {
    "web/verification/words.json": verification_words,
    "web/callstates.js": call_states,
    "web/callframes.js": call_frames,
    "web/apitypes.js": api_types,
    "client/apitypes.py": client_api_types,
}
