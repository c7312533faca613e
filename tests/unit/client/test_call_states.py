"""The client call-state table both clients follow (ringfence.wire.call_states)."""

from __future__ import annotations

from ringfence.client import call as client_call
from ringfence.wire.call_states import IN_CALL, TRANSITIONS, CallState, can_move


def reachable(start: CallState) -> set[CallState]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_python_client_uses_the_shared_table() -> None:
    assert client_call.TRANSITIONS is TRANSITIONS
    assert client_call.CallState is CallState


def test_every_state_has_its_moves_and_every_call_can_end() -> None:
    assert set(TRANSITIONS) == set(CallState)
    assert TRANSITIONS[CallState.ENDED] == frozenset()
    for state in CallState:
        if state is not CallState.ENDED:
            assert can_move(state, CallState.ENDED), state


def test_outgoing_and_incoming_calls_each_reach_a_conversation() -> None:
    outgoing, incoming = reachable(CallState.NEW), reachable(CallState.INCOMING)
    assert CallState.CONNECTED in outgoing & incoming
    assert CallState.INCOMING not in outgoing  # a call does not change direction
    assert CallState.RINGING not in incoming
    assert outgoing & incoming >= IN_CALL
    assert not can_move(CallState.INCOMING, CallState.CONNECTING)  # accepting comes first
