"""Tests for the call state machine."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringfence.calls.state import (
    ANSWERED_ELSEWHERE,
    IN_CALL,
    Call,
    CallOutcome,
    CallState,
    EndReason,
    IllegalTransition,
    Media,
    duration_s,
    is_participant,
    other_party,
    outcome,
    transition,
)

CALLER, CALLEE, STRANGER = 1, 2, 3
RINGING, ANSWERED = CallState.RINGING, CallState.ANSWERED
T0 = 1_700_000_000.0


def new_call() -> Call:
    return Call(
        call_id="c4ll-1d_000",
        caller_id=CALLER,
        callee_id=CALLEE,
        media=Media.AUDIO,
        caller_device=None,
        created_at=T0,
    )


def ringing() -> Call:
    return transition(new_call(), CallState.RINGING, at=T0 + 1, device_id="laptop")


def answered() -> Call:
    return transition(ringing(), CallState.ANSWERED, at=T0 + 5, device_id="phone")


def connected() -> Call:
    return transition(answered(), CallState.CONNECTED, at=T0 + 7)


def ended(call: Call, reason: EndReason, by: int | None = None, at: float = T0 + 65.9) -> Call:
    return transition(call, CallState.ENDED, at=at, reason=reason, by=by)


def test_enum_values_are_the_wire_values() -> None:
    assert {r.value for r in EndReason} == {
        "hangup",
        "rejected",
        "timeout",
        "busy",
        "failed",
        "cancelled",
    }
    assert ANSWERED_ELSEWHERE == "answered_elsewhere"
    assert ANSWERED_ELSEWHERE not in {r.value for r in EndReason}
    assert {o.value for o in CallOutcome} == {
        "completed",
        "not_connected",
        "missed",
        "rejected",
        "cancelled",
        "busy",
    }


# --- legal moves ------------------------------------------------------------------------


def test_created_to_ringing_records_when_and_from_which_caller_device() -> None:
    call = ringing()
    assert call.state is CallState.RINGING
    assert (call.rang_at, call.caller_device) == (T0 + 1, "laptop")
    assert new_call().state is CallState.CREATED  # the input is not modified


def test_ringing_to_answered_records_the_device() -> None:
    call = answered()
    assert call.state is CallState.ANSWERED
    assert (call.answered_at, call.answered_device) == (T0 + 5, "phone")


def test_answered_to_connected_records_when_media_connected() -> None:
    call = connected()
    assert call.state is CallState.CONNECTED
    assert call.connected_at == T0 + 7
    # What the answer recorded stays as it was.
    assert (call.answered_at, call.answered_device) == (T0 + 5, "phone")
    assert answered().connected_at is None


def test_in_call_is_answered_or_connected() -> None:
    assert {CallState.ANSWERED, CallState.CONNECTED} == IN_CALL


@pytest.mark.parametrize("start", [new_call, ringing, answered, connected])
def test_every_live_state_can_end(start: Any) -> None:
    call = ended(start(), EndReason.HANGUP, by=CALLER, at=T0 + 9)
    assert call.state is CallState.ENDED
    assert (call.ended_at, call.end_reason, call.ended_by) == (T0 + 9, EndReason.HANGUP, CALLER)


def test_ending_without_an_actor_is_fine_for_timeouts() -> None:
    call = ended(ringing(), EndReason.TIMEOUT)
    assert call.ended_by is None


def test_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="ringfence.calls.state"):
        ended(connected(), EndReason.HANGUP, by=CALLEE)
    assert [r.getMessage() for r in caplog.records] == [
        "call c4ll-1d_000: CREATED -> RINGING",
        "call c4ll-1d_000: RINGING -> ANSWERED",
        "call c4ll-1d_000: ANSWERED -> CONNECTED",
        "call c4ll-1d_000: CONNECTED -> ENDED",
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


# --- illegal moves ------------------------------------------------------------------------


def ended_call() -> Call:
    return ended(answered(), EndReason.HANGUP, by=CALLER)


def never_connected() -> Call:
    return ended(answered(), EndReason.HANGUP, by=CALLER)


ILLEGAL = [
    (new_call, CallState.CREATED),
    (new_call, CallState.ANSWERED),
    (new_call, CallState.CONNECTED),  # media cannot connect before the answer
    (ringing, CallState.CREATED),
    (ringing, CallState.RINGING),
    (ringing, CallState.CONNECTED),
    (answered, CallState.CREATED),
    (answered, CallState.RINGING),
    (answered, CallState.ANSWERED),
    (connected, CallState.CREATED),
    (connected, CallState.RINGING),
    (connected, CallState.ANSWERED),
    (connected, CallState.CONNECTED),  # the service makes a repeat a no-op, not a move
    (ended_call, CallState.CREATED),
    (ended_call, CallState.RINGING),
    (ended_call, CallState.ANSWERED),
    (ended_call, CallState.CONNECTED),  # a report arriving after the end changes nothing
    (never_connected, CallState.CONNECTED),
    (ended_call, CallState.ENDED),
]


@pytest.mark.parametrize(("start", "target"), ILLEGAL)
def test_illegal_moves_are_refused(start: Any, target: CallState) -> None:
    call: Call = start()
    with pytest.raises(IllegalTransition, match=f"{call.state.name} -> {target.name}"):
        transition(
            call,
            target,
            at=T0 + 100,
            device_id="phone" if target in (CallState.RINGING, CallState.ANSWERED) else None,
            reason=EndReason.HANGUP if target is CallState.ENDED else None,
        )


def test_illegal_transition_is_a_value_error() -> None:
    assert issubclass(IllegalTransition, ValueError)


def test_answering_needs_a_device() -> None:
    with pytest.raises(IllegalTransition, match="device_id"):
        transition(ringing(), CallState.ANSWERED, at=T0 + 2)


def test_ringing_needs_the_caller_device() -> None:
    with pytest.raises(IllegalTransition, match="device_id"):
        transition(new_call(), CallState.RINGING, at=T0 + 1)


@pytest.mark.parametrize(
    "extra",
    [{"device_id": "phone"}, {"reason": EndReason.HANGUP}, {"by": CALLER}],
)
def test_connecting_takes_nothing_but_the_time(extra: dict[str, Any]) -> None:
    with pytest.raises(IllegalTransition):
        transition(answered(), CallState.CONNECTED, at=T0 + 7, **extra)


def test_ending_needs_a_reason() -> None:
    with pytest.raises(IllegalTransition, match="reason"):
        transition(ringing(), CallState.ENDED, at=T0 + 2)


@pytest.mark.parametrize(
    ("start", "target", "extra"),
    [
        (new_call, CallState.RINGING, {"device_id": "laptop", "reason": EndReason.HANGUP}),
        (new_call, CallState.RINGING, {"device_id": "laptop", "by": CALLER}),
        (ringing, CallState.ANSWERED, {"device_id": "phone", "reason": EndReason.HANGUP}),
        (ringing, CallState.ANSWERED, {"device_id": "phone", "by": CALLEE}),
    ],
)
def test_arguments_that_do_not_belong_to_the_move_are_refused(
    start: Any, target: CallState, extra: dict[str, Any]
) -> None:
    with pytest.raises(IllegalTransition):
        transition(start(), target, at=T0 + 2, **extra)


def test_device_id_is_refused_when_ending() -> None:
    with pytest.raises(IllegalTransition):
        transition(
            ringing(), CallState.ENDED, at=T0 + 2, reason=EndReason.HANGUP, device_id="phone"
        )


def test_only_participants_end_calls() -> None:
    with pytest.raises(IllegalTransition, match="not in this call"):
        ended(ringing(), EndReason.HANGUP, by=STRANGER)


@pytest.mark.parametrize("at", [float("nan"), float("inf")])
def test_time_must_be_finite(at: float) -> None:
    with pytest.raises(IllegalTransition):
        transition(new_call(), CallState.RINGING, at=at)


def test_calls_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        new_call().state = CallState.ENDED  # type: ignore[misc]


# --- invariants on construction --------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"callee_id": CALLER},  # calling yourself
        {"call_id": ""},
        {"caller_id": True},
        {"media": "audio"},
        {"created_at": float("nan")},
        {"state": CallState.RINGING},  # no rang_at
        {"rang_at": T0},  # CREATED but rang
        {"state": CallState.ENDED},  # no reason
        {"end_reason": EndReason.HANGUP},  # reason but not ended
        {"ended_by": CALLER},
        {"answered_at": T0},  # without device
        {"caller_device": "laptop"},  # a device before the offer came from one
        {"caller_device": 5},
        {"connected_at": T0},  # connected before it rang or was answered
        {"connected_at": float("inf")},
    ],
)
def test_inconsistent_calls_cannot_be_built(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several invariants, one exception type
        dataclasses.replace(new_call(), **changes)


def test_answered_call_without_answer_time_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="answered"):
        dataclasses.replace(ringing(), state=CallState.ANSWERED)


def test_connected_state_and_connected_at_go_together() -> None:
    with pytest.raises(ValueError, match="connected_at"):
        dataclasses.replace(answered(), state=CallState.CONNECTED)
    with pytest.raises(ValueError, match="connected_at"):
        dataclasses.replace(answered(), connected_at=T0 + 7)
    # An ended call keeps connected_at (or not) from its history.
    assert ended(connected(), EndReason.HANGUP).connected_at == T0 + 7


# --- outcome, duration and parties -----------------------------------------------------


@pytest.mark.parametrize(
    ("start", "reason", "by", "expected"),
    [
        # once media connected, always completed
        (connected, EndReason.HANGUP, CALLER, CallOutcome.COMPLETED),
        (connected, EndReason.HANGUP, CALLEE, CallOutcome.COMPLETED),
        (connected, EndReason.FAILED, None, CallOutcome.COMPLETED),
        (connected, EndReason.TIMEOUT, None, CallOutcome.COMPLETED),
        # answered, but media never connected: however it ended, it did not happen
        (answered, EndReason.HANGUP, CALLER, CallOutcome.NOT_CONNECTED),
        (answered, EndReason.HANGUP, CALLEE, CallOutcome.NOT_CONNECTED),
        (answered, EndReason.FAILED, None, CallOutcome.NOT_CONNECTED),
        (answered, EndReason.TIMEOUT, None, CallOutcome.NOT_CONNECTED),
        # while ringing
        (ringing, EndReason.TIMEOUT, None, CallOutcome.MISSED),
        (ringing, EndReason.REJECTED, CALLEE, CallOutcome.REJECTED),
        (ringing, EndReason.BUSY, None, CallOutcome.BUSY),
        (ringing, EndReason.CANCELLED, CALLER, CallOutcome.CANCELLED),
        (ringing, EndReason.HANGUP, CALLER, CallOutcome.CANCELLED),
        (ringing, EndReason.HANGUP, CALLEE, CallOutcome.REJECTED),
        (ringing, EndReason.FAILED, None, CallOutcome.CANCELLED),
        # before the offer arrived
        (new_call, EndReason.CANCELLED, CALLER, CallOutcome.CANCELLED),
        (new_call, EndReason.HANGUP, CALLER, CallOutcome.CANCELLED),
        (new_call, EndReason.FAILED, None, CallOutcome.CANCELLED),
        (new_call, EndReason.BUSY, None, CallOutcome.BUSY),
        (new_call, EndReason.TIMEOUT, None, CallOutcome.MISSED),
    ],
)
def test_outcome_table(
    start: Any, reason: EndReason, by: int | None, expected: CallOutcome
) -> None:
    assert outcome(ended(start(), reason, by=by)) is expected


@pytest.mark.parametrize("start", [new_call, ringing, answered, connected])
def test_outcome_of_a_live_call_is_an_error(start: Any) -> None:
    with pytest.raises(ValueError, match="not ended"):
        outcome(start())


def test_duration_counts_whole_seconds_of_conversation_from_when_media_connected() -> None:
    # Answered at T0 + 5, connected at T0 + 7: the two seconds of set-up do not count.
    assert duration_s(ended(connected(), EndReason.HANGUP, by=CALLER, at=T0 + 65.9)) == 58
    assert duration_s(ended(ringing(), EndReason.TIMEOUT, at=T0 + 65.9)) == 0
    assert duration_s(connected()) == 0  # still going: nothing to report yet


def test_a_call_that_never_connected_has_no_duration() -> None:
    # 30 s of "Connecting..." after the answer is not 30 s of conversation.
    assert duration_s(ended(answered(), EndReason.FAILED, at=T0 + 35)) == 0


def test_duration_survives_clock_skew_between_nodes() -> None:
    assert duration_s(ended(connected(), EndReason.HANGUP, by=CALLER, at=T0 + 3)) == 0


def test_participants() -> None:
    call = new_call()
    assert is_participant(call, CALLER)
    assert is_participant(call, CALLEE)
    assert not is_participant(call, STRANGER)
    assert other_party(call, CALLER) == CALLEE
    assert other_party(call, CALLEE) == CALLER
    with pytest.raises(ValueError, match="not in call"):
        other_party(call, STRANGER)


# --- storage round trip ------------------------------------------------------------------

times = st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.integers(0, 4_000_000_000)
ids = st.integers(1, 2**53)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    caller, callee = draw(st.lists(ids, min_size=2, max_size=2, unique=True))
    call = Call(
        call_id=draw(st.text(min_size=1, max_size=64)),
        caller_id=caller,
        callee_id=callee,
        media=draw(st.sampled_from(list(Media))),
        caller_device=None,
        created_at=draw(times),
    )
    path = draw(
        st.sampled_from(
            [
                [],
                [CallState.RINGING],
                [CallState.RINGING, CallState.ANSWERED],
                [CallState.ENDED],
                [CallState.RINGING, CallState.ENDED],
                [CallState.RINGING, CallState.ANSWERED, CallState.ENDED],
                [CallState.RINGING, CallState.ANSWERED, CallState.CONNECTED],
                [CallState.RINGING, CallState.ANSWERED, CallState.CONNECTED, CallState.ENDED],
            ]
        )
    )
    for state in path:
        ending = state is CallState.ENDED
        call = transition(
            call,
            state,
            at=draw(times),
            device_id=draw(st.text(max_size=40)) if state in (RINGING, ANSWERED) else None,
            reason=draw(st.sampled_from(list(EndReason))) if ending else None,
            by=draw(st.sampled_from([None, caller, callee])) if ending else None,
        )
    return call


@given(calls())
def test_to_dict_from_dict_round_trip_through_json(call: Call) -> None:
    stored = json.dumps(call.to_dict())
    assert Call.from_dict(json.loads(stored)) == call


def test_from_dict_ignores_unknown_keys() -> None:
    data = answered().to_dict() | {"added_in_a_later_release": 1}
    assert Call.from_dict(data) == answered()


def test_from_dict_reads_a_call_stored_before_connected_at_existed() -> None:
    data = answered().to_dict()
    del data["connected_at"]
    assert Call.from_dict(data) == answered()


def test_from_dict_keeps_when_media_connected() -> None:
    call = ended(connected(), EndReason.HANGUP, by=CALLEE)
    assert Call.from_dict(json.loads(json.dumps(call.to_dict()))).connected_at == T0 + 7


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "exploded"},
        {"media": "hologram"},
        {"end_reason": "boredom"},
        {"caller_id": "1"},
        {"caller_id": True},
        {"created_at": "yesterday"},
        {"created_at": None},
        {"rang_at": "soon"},
        {"answered_device": 7},
        {"connected_at": "now"},
        {"connected_at": True},
        {"caller_device": None},  # an answered call rang from some device
        {"call_id": None},
    ],
)
def test_from_dict_refuses_bad_data(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any bad field, one exception type
        Call.from_dict(answered().to_dict() | changes)


def test_from_dict_refuses_missing_keys() -> None:
    data = answered().to_dict()
    del data["answered_device"]
    with pytest.raises(ValueError, match="answered_device"):
        Call.from_dict(data)
