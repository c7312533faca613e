"""Ringfence's Python client: the HTTP API, the event stream, and WebRTC calls.

```python
async with RingfenceClient(url, token) as rf, EventStream(url, token) as events:
    call = await place_call(rf, events, "bob", tracks=[ToneTrack(440)])
    await call.wait_connected(timeout=30)
    await call.hangup()
```
"""

from ringfence.client.api import RingfenceClient, RingfenceError
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
from ringfence.client.events import EventStream, EventStreamClosed
from ringfence.client.media import (
    ColourBarsTrack,
    DiscardSink,
    ToneTrack,
    WavRecorder,
    dominant_frequency,
    wav_player,
)

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
