"""Ending a call that never made a peer connection (a ringing call nobody answered) tears
it down like any other, instead of failing on the empty set of connections to close."""

from __future__ import annotations

from ringfence.client.call import IncomingCall
from ringfence.client.events import EventStream
from ringfence.wire.call_states import CallState
from ringfence.wire.calls import CallIncomingFrame


def ringing() -> CallIncomingFrame:
    return CallIncomingFrame.model_validate(
        {
            "type": "call.incoming",
            "call_id": "a-ringing-call",
            "from": {"id": 1, "username": "alice", "display_name": "Alice", "verified": False},
            "media": "audio",
            "sdp": "v=0\r\n",
            "ice_servers": [],
            "ice_transport_policy": "relay",
        }
    )


async def test_a_ringing_call_closed_before_it_was_answered_ends_cleanly() -> None:
    # Never connected: closing a call locally sends nothing.
    events = EventStream("http://127.0.0.1:9", "unused")
    call = IncomingCall(events, ringing(), connect_timeout_s=5)
    await call.close()  # what wait_for_incoming does with a call that stopped ringing
    assert call.state is CallState.ENDED
    assert (call.end_reason, call.end_detail) == ("failed", "closed locally")
    assert await call.wait_ended() == "failed"
    assert call.selected_candidate_pair() is None
