"""Every sentence a Python call reports, in one place: why it ended
(:attr:`Call.end_detail`, :class:`CallEnded`), why it is reconnecting, why a switch was
refused or failed (:class:`TransportSwitchFailed`).

The call engine (call.py, switch.py, peer.py) picks these and composes none, so the
wording can be read and changed here alone. They are data, not terminal output: a
program using the client gets them as they are, and the CLI (cli_calling.py) shows them
inside its own lines and colours. Keep their wording stable: scripts and tests match on
it. Light to import (no aiortc), like call_types.py.
"""

from __future__ import annotations

# --- the end of a call ---------------------------------------------------------------

SERVER_SILENT_AT_END = "the server did not confirm the end of the call"
CLOSED_LOCALLY = "closed locally"
EVENT_STREAM_CLOSED = "the event stream was closed"
MEDIA_FAILED = "the media connection failed"
DROPPED_TOO_OFTEN = "the connection dropped too often to restart it again so soon"
CANCELLED_WHILE_CALLING = "cancelled while calling"
NO_LONGER_RINGING = "the call is no longer ringing"
ENDED_WHILE_ANSWERING = "the call ended while answering"
# What was being done when setting up failed (see setup_failed).
MAKING_OFFER = "could not make an offer"
SENDING_OFFER = "could not send the offer"
ANSWERING = "could not answer"
SENDING_ANSWER = "could not send the answer"


def lost_server(reason: str) -> str:
    return f"lost the server connection: {reason}"


def signaling_error(exc: BaseException) -> str:
    return f"signaling error: {type(exc).__name__}"


def server_refused(code: str, detail: str) -> str:
    return f"the server refused signaling: {code}: {detail}"


def not_connected_within(timeout_s: float) -> str:
    return f"media did not connect within {timeout_s:g}s"


def setup_failed(what: str, exc: BaseException) -> str:
    return f"{what}: {type(exc).__name__}"


# --- gathering candidates ------------------------------------------------------------


def no_relay_candidate(timeout_s: float) -> str:
    return (
        "could not reach the relay server: no relay candidate within "
        f"{timeout_s:g}s (the TURN server is unreachable or refused the credentials)"
    )


NO_CANDIDATES = "no ICE candidates could be gathered (is the TURN relay reachable?)"

# --- a connection that drops mid-call --------------------------------------------------


def nothing_received(quiet_s: float) -> str:
    return f"nothing received for {quiet_s:.0f}s"


def restart_did_not_restore(timeout_s: float) -> str:
    return (
        "the connection dropped and a restart through the relay did not restore it "
        f"within {timeout_s:g}s"
    )


def restart_failed(why: str) -> str:
    return f"the connection dropped and restarting it through the relay failed: {why}"


# --- switching between relayed and direct ----------------------------------------------

SWITCH_WHILE_RECONNECTING = "the call is reconnecting through the relay"
SWITCH_NOT_CONNECTED = "the call is not connected"
SWITCH_UNDER_WAY = "a switch is already under way"
SWITCH_TIMED_OUT = "the switch did not complete in time"
NEW_CONNECTION_FAILED = "the new connection failed"
NEW_CONNECTION_DID_NOT_CONNECT = "the new connection did not connect"


def switch_not_completed(transport: str) -> str:
    return f"switching the call to {transport} did not complete in time"


def switch_failed(why: str) -> str:
    return f"the switch of the connection failed: {why}"


def call_ended(reason: str) -> str:
    return f"the call ended: {reason}"
