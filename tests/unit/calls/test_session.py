"""The call protocol as a pure object, driven frame by frame under a fake clock.

No sockets, no store, no database: each test feeds :class:`CallSession` what happened
and checks the effects it returns and the state it leaves. The property test at the end
plays arbitrary sequences of frames, setting changes, reconnections and deadlines from
every device, and checks the privacy promise on every effect: nothing a relayed side
sent reaches the other side with an address on it but the relay's.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringfence.calls.live import LiveCall, TransportPolicy
from ringfence.calls.sanitizer import normalise_relay_addresses
from ringfence.calls.session import (
    CHECK,
    RING,
    CallError,
    CallSession,
    Cancel,
    Credential,
    DeadlineKey,
    DeadlineKind,
    Effect,
    End,
    Facts,
    Party,
    Record,
    Ring,
    Schedule,
    Send,
    Timing,
    grace,
)
from ringfence.calls.state import Call, CallState, EndReason, Media
from ringfence.wire.calls import (
    AnswerFrame,
    CallAnswerFrame,
    CallEndedFrame,
    CallTransportFrame,
    CandidateFrame,
    ClientCallFrame,
    ConnectedFrame,
    HangupFrame,
    IceCandidate,
    MediaFrame,
    OfferFrame,
    ReanswerFrame,
    RejectFrame,
    ReofferFrame,
    TransportFrame,
    UserRef,
    encode,
)
from tests.unit.calls.test_sanitizer import CHROME_OFFER, FIREFOX_ANSWER, MDNS

CALLER, CALLEE = 1, 2
PHONE = Party(CALLER, "alice-phone")  # the caller's device
LAPTOP = Party(CALLEE, "bob-laptop")  # the callee's devices
TABLET = Party(CALLEE, "bob-tablet")
MALLORY = Party(3, "mallory")  # not in the call
CALL_ID = "c" * 22
T0 = 1_000_000.0
TIMING = Timing(ring_timeout_s=45, grace_s=10, liveness_check_s=2, switch_stale_s=15)
RELAYS = normalise_relay_addresses(frozenset({"198.51.100.20", "198.51.100.7"}))
CALLEE_MDNS = "0b6f7c1e-3c9a-4d55-9a52-0e7b9c0d1a2c.local"
OFFER = CHROME_OFFER
ANSWER = FIREFOX_ANSWER.replace(MDNS, CALLEE_MDNS)
# What locates each side (the relays 198.51.100.x do not).
SECRETS = {
    CALLER: ["203.0.113.45", "2001:db8::45", MDNS, "192.168.1.10"],
    CALLEE: ["2001:db8::33", "192.0.2.99", CALLEE_MDNS, "192.168.2.20", "203.0.113.99"],
}
ALICE = UserRef(id=CALLER, username="alice", display_name="Alice", verified=False)


def candidate_lines(user: int) -> list[str]:
    """Candidates as a device of ``user`` would trickle them, and a few it should not."""
    host, srflx = (
        ("192.168.1.10", "203.0.113.45") if user == CALLER else ("192.168.2.20", "203.0.113.99")
    )
    mdns = MDNS if user == CALLER else CALLEE_MDNS
    return [
        f"candidate:1 1 udp 2122260223 {host} 50000 typ host",
        f"candidate:2 1 udp 1686052607 {srflx} 50000 typ srflx raddr {host} rport 50000",
        f"candidate:3 1 udp 41885439 198.51.100.20 61234 typ relay raddr {srflx} rport 50000",
        # "relay" but not on the relay: a client lying about the type.
        f"candidate:4 1 udp 41885439 {srflx} 61234 typ relay raddr {host} rport 50000",
        f"candidate:5 1 tcp 1518280447 {mdns} 9 typ host tcptype active",
    ]


def new_session(
    caller_policy: TransportPolicy = "relay",
    callee_policy: TransportPolicy = "relay",
    *,
    silenced: bool = False,
) -> CallSession:
    call = Call(
        call_id=CALL_ID,
        caller_id=CALLER,
        callee_id=CALLEE,
        media=Media.AUDIO,
        caller_device=None,
        created_at=T0,
    )
    live = LiveCall(
        call, caller_policy=caller_policy, callee_policy=callee_policy, silenced=silenced
    )
    return CallSession(live, relay_addresses=RELAYS, timing=TIMING)


def offer() -> OfferFrame:
    return OfferFrame(call_id=CALL_ID, sdp=OFFER)


def answer() -> AnswerFrame:
    return AnswerFrame(call_id=CALL_ID, sdp=ANSWER)


def candidate(line: str) -> CandidateFrame:
    return CandidateFrame(
        call_id=CALL_ID, candidate=IceCandidate(candidate=line, sdp_mid="0", sdp_mline_index=0)
    )


def ringing(
    caller_policy: TransportPolicy = "relay", callee_policy: TransportPolicy = "relay"
) -> CallSession:
    session = new_session(caller_policy, callee_policy)
    session.receive(offer(), PHONE, T0 + 1, Facts(policies=(caller_policy, callee_policy)))
    return session


def answered(
    caller_policy: TransportPolicy = "relay", callee_policy: TransportPolicy = "relay"
) -> CallSession:
    session = ringing(caller_policy, callee_policy)
    session.receive(answer(), LAPTOP, T0 + 2)
    return session


def body(effect: Send) -> dict[str, Any]:
    return effect.frame if isinstance(effect.frame, dict) else encode(effect.frame)


def sends(effects: list[Effect]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def refused(session: CallSession, frame: ClientCallFrame, device: Party, code: str) -> None:
    before = session.live
    with pytest.raises(CallError) as exc:
        session.receive(frame, device, T0 + 5, Facts(policies=("relay", "relay")))
    assert exc.value.code == code
    assert session.live is before  # a refused frame changes nothing


# --- the ordinary call ----------------------------------------------------------------


def test_an_offer_rings_every_device_and_sets_the_deadlines() -> None:
    session = new_session()
    effects = session.receive(offer(), PHONE, T0 + 1)
    assert effects == [
        Schedule(RING, T0 + 1 + 45),
        Schedule(CHECK, T0 + 1 + 2),
        Ring(None, payer=CALLER),
    ]
    assert session.live.call.state is CallState.RINGING
    assert session.live.call.caller_device == PHONE.device_id
    stored = session.live.offer_sdp
    assert stored is not None
    for secret in SECRETS[CALLER]:
        assert secret not in stored  # relayed: only the relay is kept, even at rest
    incoming = session.incoming(ALICE)
    assert incoming.ice_servers == []
    assert incoming.ice_transport_policy == "relay"
    assert incoming.direct_allowed is False


def test_a_silenced_call_rings_nowhere_but_times_out_as_usual() -> None:
    session = new_session(silenced=True)
    effects = session.receive(offer(), PHONE, T0 + 1)
    assert not any(isinstance(e, Ring) for e in effects)
    assert Schedule(RING, T0 + 46) in effects


def test_a_direct_offer_is_sanitised_with_the_settings_as_they_are_now() -> None:
    session = new_session("all", "all")
    assert session.needs_policies(offer())
    # The callee withdrew direct connections between the start and the offer.
    session.receive(offer(), PHONE, T0 + 1, Facts(policies=("all", "relay")))
    assert (session.live.caller_policy, session.live.callee_policy) == ("all", "relay")
    assert session.incoming(ALICE).direct_allowed is False


def test_a_relayed_call_needs_no_settings_for_its_offer() -> None:
    assert not new_session().needs_policies(offer())


def test_answering_cancels_the_ring_tells_the_caller_and_stops_the_other_devices() -> None:
    session = ringing()
    effects = session.receive(answer(), LAPTOP, T0 + 3)
    assert session.live.call.state is CallState.ANSWERED
    assert session.live.offer_sdp is None  # nothing kept that is no longer needed
    assert effects[0] == Cancel(RING)
    to_caller, elsewhere = sends(effects)
    assert (to_caller.user_id, to_caller.device_id) == (CALLER, PHONE.device_id)
    assert isinstance(to_caller.frame, CallAnswerFrame)
    for secret in SECRETS[CALLEE]:
        assert secret not in to_caller.frame.sdp
    assert elsewhere == Send(
        CALLEE,
        None,
        CallEndedFrame(call_id=CALL_ID, reason="answered_elsewhere"),
        exclude_device=LAPTOP.device_id,
    )


def test_caller_candidates_wait_for_the_answer_and_go_only_to_the_device_that_answered() -> None:
    session = ringing()
    for line in candidate_lines(CALLER):
        assert session.receive(candidate(line), PHONE, T0 + 2) == []
    assert len(session.live.pending_candidates) == 1  # only the relay candidate
    effects = session.receive(answer(), TABLET, T0 + 3)
    queued = [s for s in sends(effects) if s.device_id == TABLET.device_id]
    assert len(queued) == 1
    line = body(queued[0])["candidate"]["candidate"]
    assert "198.51.100.20" in line
    assert "203.0.113.45" not in line  # raddr hidden


def test_too_many_candidates_before_the_answer_are_refused() -> None:
    session = ringing()
    line = candidate_lines(CALLER)[2]
    for _ in range(TIMING.max_pending_candidates):
        session.receive(candidate(line), PHONE, T0 + 2)
    refused(session, candidate(line), PHONE, "too_many_candidates")


def test_candidates_flow_both_ways_once_answered() -> None:
    session = answered("all", "all")
    [to_callee] = session.receive(candidate(candidate_lines(CALLER)[0]), PHONE, T0 + 4)
    assert (to_callee.user_id, to_callee.device_id) == (CALLEE, LAPTOP.device_id)
    [to_caller] = session.receive(candidate(candidate_lines(CALLEE)[0]), LAPTOP, T0 + 4)
    assert (to_caller.user_id, to_caller.device_id) == (CALLER, PHONE.device_id)
    assert "192.168.2.20" in body(to_caller)["candidate"]["candidate"]  # both allow direct


def test_mute_and_camera_state_goes_to_the_other_in_call_device_only() -> None:
    session = answered()
    media = MediaFrame(call_id=CALL_ID, audio=False, video=True)
    [sent] = session.receive(media, PHONE, T0 + 4)
    assert (sent.user_id, sent.device_id) == (CALLEE, LAPTOP.device_id)
    assert body(sent) == {"type": "call.media", "call_id": CALL_ID, "audio": False, "video": True}
    before = session.live
    [back] = session.receive(media, LAPTOP, T0 + 4)
    assert (back.user_id, back.device_id) == (CALLER, PHONE.device_id)
    assert session.live is before  # nothing kept
    refused(ringing(), media, PHONE, "call_state")  # not before the answer
    refused(session, media, TABLET, "call_state")  # not from a device that only rang


def test_connected_counts_once() -> None:
    session = answered()
    assert session.receive(ConnectedFrame(call_id=CALL_ID), PHONE, T0 + 5) == []
    assert session.live.call.state is CallState.CONNECTED
    connected = session.live
    assert session.receive(ConnectedFrame(call_id=CALL_ID), LAPTOP, T0 + 6) == []
    assert session.live is connected


@pytest.mark.parametrize(
    ("setup", "frame", "device", "code"),
    [
        (new_session, offer(), LAPTOP, "call_state"),  # only the caller offers
        (new_session, offer(), MALLORY, "call_not_found"),  # strangers learn nothing
        (ringing, offer(), PHONE, "call_state"),  # one offer
        (ringing, answer(), PHONE, "call_state"),  # only the callee answers
        (answered, answer(), TABLET, "call_state"),  # one answer
        (new_session, candidate(candidate_lines(CALLER)[2]), PHONE, "call_state"),
        (ringing, candidate(candidate_lines(CALLEE)[2]), LAPTOP, "call_state"),  # invariant 3
        (answered, candidate(candidate_lines(CALLEE)[2]), TABLET, "call_state"),
        (answered, candidate(candidate_lines(CALLER)[2]), Party(CALLER, "other"), "call_state"),
        (answered, RejectFrame(call_id=CALL_ID), LAPTOP, "call_state"),
        (ringing, TransportFrame(call_id=CALL_ID, transport="relay"), PHONE, "call_state"),
        (
            answered,
            TransportFrame(call_id=CALL_ID, transport="direct"),
            PHONE,
            "direct_not_allowed",
        ),
        (answered, ReofferFrame(call_id=CALL_ID, sdp=OFFER), PHONE, "call_state"),
        (answered, ReanswerFrame(call_id=CALL_ID, sdp=ANSWER), LAPTOP, "call_state"),
        (ringing, ConnectedFrame(call_id=CALL_ID), PHONE, "call_state"),
        (new_session, OfferFrame(call_id=CALL_ID, sdp="v=0\r\nnot an sdp"), PHONE, "bad_sdp"),
    ],
)
def test_frames_out_of_turn_are_refused_and_change_nothing(
    setup: Any, frame: ClientCallFrame, device: Party, code: str
) -> None:
    session = setup()
    if code == "bad_sdp":
        with pytest.raises(CallError):
            session.receive(frame, device, T0 + 5)
        assert session.live.call.state is CallState.CREATED
        return
    refused(session, frame, device, code)


def test_a_frame_for_a_missing_or_vanished_call() -> None:
    assert CallSession.missing(candidate(candidate_lines(CALLER)[2])) is None
    assert CallSession.missing(HangupFrame(call_id=CALL_ID)) is not None
    gone = CallSession.gone(answer())
    assert gone is not None
    assert gone.code == "call_state"
    assert CallSession.gone(HangupFrame(call_id=CALL_ID)) is None


# --- ending ---------------------------------------------------------------------------


def test_a_busy_callee_never_hears_of_the_call() -> None:
    session = new_session()
    effects = session.receive(offer(), PHONE, T0 + 1, Facts(callee_busy=True))
    ended = session.live.call
    assert ended.state is CallState.ENDED
    assert ended.end_reason is EndReason.BUSY
    assert effects[:2] == [End(ended), Record(ended)]
    assert [s.user_id for s in sends(effects)] == [CALLER]


def test_declining_ends_the_call_for_both_and_keeps_a_record() -> None:
    session = ringing()
    effects = session.receive(RejectFrame(call_id=CALL_ID), TABLET, T0 + 3)
    ended = session.live.call
    assert ended.end_reason is EndReason.REJECTED
    assert ended.ended_by == CALLEE
    assert effects[:2] == [End(ended, callee_rang=True), Record(ended)]
    assert [(s.user_id, s.device_id) for s in sends(effects)] == [(CALLER, None), (CALLEE, None)]


def test_a_silenced_call_that_rings_out_was_never_rung_on_the_callees_devices() -> None:
    session = new_session(silenced=True)
    session.receive(offer(), PHONE, T0 + 1)
    effects = session.tick(RING, T0 + 46)
    assert effects[0] == End(session.live.call, callee_rang=False)


def test_hanging_up_before_the_offer_tells_only_the_caller_and_records_nothing() -> None:
    session = new_session()
    effects = session.receive(HangupFrame(call_id=CALL_ID), PHONE, T0 + 1)
    assert effects[0] == End(session.live.call, callee_rang=False)
    assert session.live.call.end_reason is EndReason.CANCELLED
    assert not any(isinstance(e, Record) for e in effects)
    assert [s.user_id for s in sends(effects)] == [CALLER]


def test_hanging_up_an_answered_call() -> None:
    session = answered()
    session.receive(HangupFrame(call_id=CALL_ID), LAPTOP, T0 + 9)
    assert session.live.call.end_reason is EndReason.HANGUP
    ended = session.live
    assert session.receive(HangupFrame(call_id=CALL_ID), PHONE, T0 + 9) == []
    assert session.live is ended  # ends once


# --- deadlines ------------------------------------------------------------------------


def test_the_ring_deadline_times_out_a_ringing_call_and_cancels_one_never_offered() -> None:
    session = ringing()
    session.tick(RING, T0 + 46)
    assert session.live.call.end_reason is EndReason.TIMEOUT
    unoffered = new_session()
    effects = unoffered.tick(RING, T0 + 46)
    assert unoffered.live.call.end_reason is EndReason.CANCELLED
    assert [s.user_id for s in sends(effects)] == [CALLER]


def test_the_ring_deadline_leaves_an_answered_call_alone() -> None:
    session = answered()
    before = session.live
    assert session.tick(RING, T0 + 46) == []
    assert session.live is before


def test_the_check_starts_grace_periods_for_devices_connected_nowhere() -> None:
    session = answered()
    assert session.devices_to_check(CHECK) == [PHONE, LAPTOP]
    effects = session.tick(CHECK, T0 + 10, Facts(connected=frozenset({LAPTOP})))
    assert effects == [Schedule(grace(PHONE), T0 + 20, replace=False), Schedule(CHECK, T0 + 12)]


def test_a_lost_device_fails_the_call_when_its_grace_runs_out_unless_it_came_back() -> None:
    session = answered()
    assert session.device_disconnected(PHONE, T0 + 5) == [Schedule(grace(PHONE), T0 + 15)]
    assert session.devices_to_check(grace(PHONE)) == [PHONE]
    assert session.tick(grace(PHONE), T0 + 15, Facts(connected=frozenset({PHONE}))) == []
    assert session.live.call.state is CallState.ANSWERED
    session.tick(grace(PHONE), T0 + 15)
    assert session.live.call.end_reason is EndReason.FAILED


def test_a_device_that_only_rang_going_away_changes_nothing() -> None:
    assert answered().device_disconnected(TABLET, T0 + 5) == []


def test_a_device_connecting_mid_ring_rings_at_its_users_expense() -> None:
    session = ringing()
    effects = session.device_connected(TABLET)
    assert effects == [Cancel(grace(TABLET)), Ring(TABLET.device_id, payer=CALLEE)]
    assert answered().device_connected(TABLET) == [Cancel(grace(TABLET))]


@given(
    st.one_of(
        st.sampled_from([RING, CHECK]),
        st.builds(
            lambda user, device: grace(Party(user, device)),
            st.integers(min_value=1, max_value=2**62),
            st.text(alphabet="abc-_:0123456789XYZ", min_size=1, max_size=40),
        ),
    )
)
def test_deadline_keys_round_trip(key: DeadlineKey) -> None:
    assert DeadlineKey.parse(key.encode()) == key


@pytest.mark.parametrize(
    "text", ["", "ring:1", "grace", "grace:x:d", "grace:1:", "switch", "check:"]
)
def test_unknown_deadline_keys_are_not_parsed(text: str) -> None:
    assert DeadlineKey.parse(text) is None


def test_a_grace_deadline_names_its_device_and_no_other_does() -> None:
    with pytest.raises(ValueError, match="names its device"):
        DeadlineKey(DeadlineKind.GRACE)
    with pytest.raises(ValueError, match="names its device"):
        DeadlineKey(DeadlineKind.RING, PHONE)


# --- switching ------------------------------------------------------------------------


def test_hiding_my_address_moves_both_sides_behind_the_relay() -> None:
    session = answered("all", "all")
    session.admit_switch(PHONE, T0 + 5)
    effects = session.receive(
        TransportFrame(call_id=CALL_ID, transport="relay"),
        PHONE,
        T0 + 5,
        Facts(policies=("all", "all")),
    )
    assert (session.live.caller_policy, session.live.callee_policy) == ("relay", "relay")
    mine, theirs = sends(effects)
    assert isinstance(mine.frame, CallTransportFrame)
    assert isinstance(theirs.frame, CallTransportFrame)
    assert (mine.device_id, mine.frame.restart, mine.credential) == (
        PHONE.device_id,
        True,
        Credential(CALLER),
    )
    assert (theirs.device_id, theirs.frame.restart) == (LAPTOP.device_id, False)
    assert theirs.frame.direct_allowed is True  # they could switch back
    # From now on the caller's host candidates are dropped, whatever the client does.
    assert session.receive(candidate(candidate_lines(CALLER)[0]), PHONE, T0 + 6) == []
    # One switch at a time, until the restart completes or goes stale.
    with pytest.raises(CallError):
        session.admit_switch(LAPTOP, T0 + 7)
    [reoffer] = session.receive(ReofferFrame(call_id=CALL_ID, sdp=OFFER), PHONE, T0 + 7)
    assert reoffer.device_id == LAPTOP.device_id
    for secret in SECRETS[CALLER]:
        assert secret not in body(reoffer)["sdp"]
    [reanswer] = session.receive(ReanswerFrame(call_id=CALL_ID, sdp=ANSWER), LAPTOP, T0 + 8)
    assert reanswer.device_id == PHONE.device_id
    assert session.live.switching_device is None
    session.admit_switch(LAPTOP, T0 + 9)


def test_an_unfinished_switch_goes_stale() -> None:
    session = answered()
    switch = TransportFrame(call_id=CALL_ID, transport="relay")
    session.receive(switch, PHONE, T0 + 5, Facts(policies=("relay", "relay")))
    with pytest.raises(CallError):
        session.admit_switch(LAPTOP, T0 + 19)
    session.admit_switch(LAPTOP, T0 + 20)


def test_withdrawing_direct_connections_tightens_a_ringing_call_and_its_queue() -> None:
    session = ringing("all", "all")
    session.receive(candidate(candidate_lines(CALLER)[0]), PHONE, T0 + 2)
    session.receive(candidate(candidate_lines(CALLER)[2]), PHONE, T0 + 2)
    assert len(session.live.pending_candidates) == 2
    assert session.hold_policies(CALLEE, ("relay", "relay"), T0 + 3) == []
    assert (session.live.caller_policy, session.live.callee_policy) == ("relay", "relay")
    [kept] = session.live.pending_candidates
    assert "203.0.113.45" not in str(kept)
    assert session.incoming(ALICE).direct_allowed is False


def test_withdrawing_direct_connections_moves_a_direct_call_behind_the_relay() -> None:
    session = answered("all", "all")
    effects = session.hold_policies(CALLEE, ("relay", "relay"), T0 + 5)
    mine, theirs = sends(effects)
    assert (mine.user_id, mine.device_id) == (CALLEE, LAPTOP.device_id)
    assert isinstance(mine.frame, CallTransportFrame)
    assert mine.frame.restart
    assert (theirs.user_id, theirs.device_id) == (CALLER, PHONE.device_id)
    # Already relayed: nothing more to do, and allowing more changes nothing by itself.
    assert session.hold_policies(CALLEE, ("relay", "relay"), T0 + 6) == []
    assert answered("all", "all").hold_policies(CALLEE, ("all", "all"), T0 + 6) == []


# --- the privacy property -------------------------------------------------------------

DEVICES = [PHONE, Party(CALLER, "alice-laptop"), LAPTOP, TABLET, MALLORY]
POLICIES: list[tuple[TransportPolicy, TransportPolicy]] = [
    ("relay", "relay"),
    ("all", "relay"),
    ("relay", "all"),
    ("all", "all"),
]


def _frame(kind: str, user: int, index: int) -> ClientCallFrame:
    if kind == "offer":
        return OfferFrame(call_id=CALL_ID, sdp=OFFER if user == CALLER else ANSWER)
    if kind == "answer":
        return AnswerFrame(call_id=CALL_ID, sdp=ANSWER if user == CALLEE else OFFER)
    if kind == "candidate":
        lines = candidate_lines(CALLER if user != CALLEE else CALLEE)
        return candidate(lines[index % len(lines)])
    if kind == "reoffer":
        return ReofferFrame(call_id=CALL_ID, sdp=OFFER if user == CALLER else ANSWER)
    if kind == "reanswer":
        return ReanswerFrame(call_id=CALL_ID, sdp=ANSWER if user == CALLEE else OFFER)
    if kind == "relay":
        return TransportFrame(call_id=CALL_ID, transport="relay")
    if kind == "direct":
        return TransportFrame(call_id=CALL_ID, transport="direct")
    if kind == "connected":
        return ConnectedFrame(call_id=CALL_ID)
    if kind == "media":
        return MediaFrame(call_id=CALL_ID, audio=index % 2 == 0, video=index % 3 == 0)
    return HangupFrame(call_id=CALL_ID)


STEPS = st.tuples(
    st.sampled_from(
        [
            *("offer", "answer", "candidate", "candidate", "candidate", "reoffer", "reanswer"),
            *("relay", "direct", "connected", "media", "hangup", "settings", "connect"),
            "disconnect",
            "tick",
        ]
    ),
    st.sampled_from(DEVICES),
    st.integers(min_value=0, max_value=20),
    st.sampled_from(POLICIES),
)


def _leaks(send: Send, session: CallSession) -> list[str]:
    """Addresses of a relayed side in a frame going to the other side."""
    to = send.user_id
    sender = CALLER if to == CALLEE else CALLEE
    policy = session.live.caller_policy if sender == CALLER else session.live.callee_policy
    if policy != "relay":
        return []
    text = str(body(send))
    return [s for s in SECRETS[sender] if re.search(re.escape(s) + r"(?![0-9a-f:.])", text)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(POLICIES),
    st.lists(STEPS, min_size=1, max_size=40),
)
def test_no_sequence_of_frames_lets_a_relayed_sides_address_out(
    start: tuple[TransportPolicy, TransportPolicy], steps: list[tuple[str, Party, int, Any]]
) -> None:
    session = new_session(*start)
    now = T0
    for kind, device, index, policies in steps:
        now += 1 + index
        try:
            if kind == "settings":
                effects = session.hold_policies(device.user_id, policies, now)
            elif kind == "connect":
                effects = session.device_connected(device)
            elif kind == "disconnect":
                effects = session.device_disconnected(device, now)
            elif kind == "tick":
                key = [RING, CHECK, grace(device)][index % 3]
                effects = session.tick(key, now, Facts(connected=frozenset(DEVICES[: index % 5])))
            else:
                frame = _frame(kind, device.user_id, index)
                if isinstance(frame, TransportFrame):
                    session.admit_switch(device, now)  # as the driver does, before charging
                facts = Facts(policies=policies, callee_busy=index == 0)
                effects = session.receive(frame, device, now, facts)
        except CallError:
            continue
        for effect in effects:
            if isinstance(effect, Send):
                assert _leaks(effect, session) == [], (kind, effect)
                assert effect.user_id in (CALLER, CALLEE)
            if isinstance(effect, Ring):
                incoming = encode(session.incoming(ALICE))
                if session.live.caller_policy == "relay":
                    assert not [s for s in SECRETS[CALLER] if s in str(incoming)]
        # What the session keeps for later is as clean as what it sends.
        if session.live.caller_policy == "relay":
            kept = f"{session.live.offer_sdp} {session.live.pending_candidates}"
            assert not [s for s in SECRETS[CALLER] if s in kept]
        if session.live.call.state is CallState.ENDED:
            break
