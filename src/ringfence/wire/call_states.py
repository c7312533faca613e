"""The states of a call as a client sees it, and the moves between them: one
vocabulary for both clients. The Python client (``client/call.py``) uses this table
directly; the browser's copy (``web/callstates.js``) is generated from it, and both
refuse any move the table does not list.

(The server's own view of a call, ``calls.state.CallState``, is a different thing: it
has no ``accepting`` or ``reconnecting``, which happen on one device only.)
"""

from __future__ import annotations

import enum
from typing import Final


class CallState(enum.StrEnum):
    NEW = "new"  # outgoing: asking for media and making the offer
    RINGING = "ringing"  # outgoing: the offer is out, the other person's devices ring
    INCOMING = "incoming"  # this device rings
    ACCEPTING = "accepting"  # the user accepted; media and the answer are being made
    CONNECTING = "connecting"  # offer and answer exchanged; ICE and DTLS under way
    CONNECTED = "connected"  # media flows
    RECONNECTING = "reconnecting"  # the connection dropped mid-call and is being restarted
    ENDED = "ended"


_S = CallState
TRANSITIONS: Final[dict[CallState, frozenset[CallState]]] = {
    _S.NEW: frozenset({_S.RINGING, _S.ENDED}),
    _S.RINGING: frozenset({_S.CONNECTING, _S.ENDED}),
    _S.INCOMING: frozenset({_S.ACCEPTING, _S.ENDED}),
    # Back to ringing when the camera or microphone could not be had: try again.
    _S.ACCEPTING: frozenset({_S.INCOMING, _S.CONNECTING, _S.ENDED}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.ENDED}),
    _S.CONNECTED: frozenset({_S.RECONNECTING, _S.ENDED}),
    _S.RECONNECTING: frozenset({_S.CONNECTED, _S.ENDED}),
    _S.ENDED: frozenset(),
}
# Media connected at least once and the call goes on: signaling for switches applies.
IN_CALL: Final = frozenset({_S.CONNECTED, _S.RECONNECTING})


def can_move(old: CallState, new: CallState) -> bool:
    return new in TRANSITIONS[old]
