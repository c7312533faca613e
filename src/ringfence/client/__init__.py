"""Ringfence's Python client: the HTTP API, the event stream, and WebRTC calls.

```python
async with RingfenceClient(url, token) as rf, EventStream(url, token) as events:
    call = await place_call(rf, events, "bob", tracks=[ToneTrack(440)])
    await call.wait_connected(timeout=30)
    await call.hangup()
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ringfence.client.api import RingfenceClient, RingfenceError
from ringfence.client.events import EventStream, EventStreamClosed

if TYPE_CHECKING:
    from ringfence.client.call import (
        Call,
        CallEnded,
        CallState,
        IncomingCall,
        OutgoingCall,
        SelectedPair,
        StateChange,
        TransportSwitchFailed,
        place_call,
        wait_for_incoming,
    )
    from ringfence.client.media import (
        ColourBarsTrack,
        DiscardSink,
        ToneTrack,
        WavRecorder,
        dominant_frequency,
        wav_player,
    )

# Calls and media load aiortc, PyAV and numpy (about half a second): they are imported
# when first used, so that the CLI's other commands start at once.
_LAZY = {
    **dict.fromkeys(
        (
            "Call",
            "CallEnded",
            "CallState",
            "IncomingCall",
            "OutgoingCall",
            "SelectedPair",
            "StateChange",
            "TransportSwitchFailed",
            "place_call",
            "wait_for_incoming",
        ),
        "ringfence.client.call",
    ),
    **dict.fromkeys(
        (
            "ColourBarsTrack",
            "DiscardSink",
            "ToneTrack",
            "WavRecorder",
            "dominant_frequency",
            "wav_player",
        ),
        "ringfence.client.media",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Call",
    "CallEnded",
    "CallState",
    "ColourBarsTrack",
    "DiscardSink",
    "EventStream",
    "EventStreamClosed",
    "IncomingCall",
    "OutgoingCall",
    "RingfenceClient",
    "RingfenceError",
    "SelectedPair",
    "StateChange",
    "ToneTrack",
    "TransportSwitchFailed",
    "WavRecorder",
    "dominant_frequency",
    "place_call",
    "wait_for_incoming",
    "wav_player",
]
