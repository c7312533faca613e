"""Tests for the call signaling wire codec."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringfence.calls.sanitizer import MAX_CANDIDATE_BYTES, MAX_SDP_BYTES
from ringfence.calls.state import ANSWERED_ELSEWHERE, EndReason
from ringfence.wire.calls import (
    CALL_CLIENT_TYPES,
    CALL_SERVER_TYPES,
    AnswerFrame,
    CallAnswerFrame,
    CallCandidateFrame,
    CallEndedFrame,
    CallIncomingFrame,
    CallMediaFrame,
    CallReanswerFrame,
    CallReofferFrame,
    CallTransportFrame,
    CandidateFrame,
    ClientCallFrame,
    CodecError,
    ConnectedFrame,
    EndedReason,
    HangupFrame,
    IceCandidate,
    IceServer,
    MediaFrame,
    OfferFrame,
    ReanswerFrame,
    RejectFrame,
    ReofferFrame,
    ServerCallFrame,
    TransportFrame,
    UserRef,
    encode,
    parse_client_frame,
    parse_server_frame,
)

CALL_ID = "c4ll_ID-0001"
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
CANDIDATE = "candidate:1 1 udp 41885439 198.51.100.20 61234 typ relay raddr 0.0.0.0 rport 0"


def test_type_sets_match_the_models() -> None:
    assert {
        "call.offer",
        "call.answer",
        "call.candidate",
        "call.reject",
        "call.hangup",
        "call.transport",
        "call.reoffer",
        "call.reanswer",
        "call.connected",
        "call.media",
    } == CALL_CLIENT_TYPES
    assert {
        "call.incoming",
        "call.answer",
        "call.candidate",
        "call.ended",
        "call.transport",
        "call.reoffer",
        "call.reanswer",
        "call.media",
    } == CALL_SERVER_TYPES
    client_models = get_args(ClientCallFrame)
    server_models = get_args(ServerCallFrame)
    assert {m.model_fields["type"].default for m in client_models} == CALL_CLIENT_TYPES
    assert {m.model_fields["type"].default for m in server_models} == CALL_SERVER_TYPES


def test_ended_reasons_are_the_state_machine_reasons_plus_answered_elsewhere() -> None:
    assert set(get_args(EndedReason)) == {r.value for r in EndReason} | {ANSWERED_ELSEWHERE}


# --- client frames -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            {"type": "call.offer", "call_id": CALL_ID, "sdp": SDP},
            OfferFrame(call_id=CALL_ID, sdp=SDP),
        ),
        (
            {"type": "call.answer", "call_id": CALL_ID, "sdp": SDP},
            AnswerFrame(call_id=CALL_ID, sdp=SDP),
        ),
        ({"type": "call.reject", "call_id": CALL_ID}, RejectFrame(call_id=CALL_ID)),
        ({"type": "call.hangup", "call_id": CALL_ID}, HangupFrame(call_id=CALL_ID)),
        ({"type": "call.connected", "call_id": CALL_ID}, ConnectedFrame(call_id=CALL_ID)),
        (
            {"type": "call.transport", "call_id": CALL_ID, "transport": "relay"},
            TransportFrame(call_id=CALL_ID, transport="relay"),
        ),
        (
            {"type": "call.reoffer", "call_id": CALL_ID, "sdp": SDP},
            ReofferFrame(call_id=CALL_ID, sdp=SDP),
        ),
        (
            {"type": "call.reanswer", "call_id": CALL_ID, "sdp": SDP},
            ReanswerFrame(call_id=CALL_ID, sdp=SDP),
        ),
        (
            {
                "type": "call.candidate",
                "call_id": CALL_ID,
                "candidate": {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0},
            },
            CandidateFrame(
                call_id=CALL_ID,
                candidate=IceCandidate(candidate=CANDIDATE, sdp_mid="0", sdp_mline_index=0),
            ),
        ),
    ],
)
def test_client_frames_parse_and_encode_back_to_the_same_json(
    wire: dict[str, object], expected: ClientCallFrame
) -> None:
    assert parse_client_frame(wire) == expected
    assert encode(expected) == wire


def test_end_of_candidates_needs_no_location() -> None:
    frame = parse_client_frame(
        {"type": "call.candidate", "call_id": CALL_ID, "candidate": {"candidate": ""}}
    )
    assert isinstance(frame, CandidateFrame)
    assert encode(frame)["candidate"] == {"candidate": "", "sdpMid": None, "sdpMLineIndex": None}


OFFER: dict[str, object] = {"type": "call.offer", "call_id": CALL_ID, "sdp": SDP}
LOCATED: dict[str, object] = {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0}
CAND: dict[str, object] = {"type": "call.candidate", "call_id": CALL_ID, "candidate": LOCATED}


def cand(**changes: object) -> dict[str, object]:
    return CAND | {"candidate": LOCATED | changes}


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ({}, "type"),
        ({"call_id": CALL_ID}, "type"),
        ({"type": "call.dance", "call_id": CALL_ID}, "type"),
        ({"type": 5, "call_id": CALL_ID}, "type"),
        ({"type": "call.incoming", "call_id": CALL_ID}, "type"),  # server-only type
        (OFFER | {"call_id": "short"}, "call_id"),
        (OFFER | {"call_id": "x" * 65}, "call_id"),
        (OFFER | {"call_id": "has space1"}, "call_id"),
        (OFFER | {"call_id": "../../etc/pw"}, "call_id"),
        (OFFER | {"call_id": 12345678}, "call_id"),
        ({"type": "call.offer", "call_id": CALL_ID}, "sdp"),
        (OFFER | {"sdp": ""}, "sdp"),
        (OFFER | {"sdp": "x" * (MAX_SDP_BYTES + 1)}, "sdp"),
        (OFFER | {"sdp": b"v=0"}, "sdp"),
        (OFFER | {"extra": True}, "extra"),
        ({"type": "call.hangup", "call_id": CALL_ID, "sdp": SDP}, "sdp"),
        ({"type": "call.connected"}, "call_id"),
        ({"type": "call.connected", "call_id": "short"}, "call_id"),
        # Nothing but the call id: no timestamp of the client's, no route to trust.
        ({"type": "call.connected", "call_id": CALL_ID, "at": 1.5}, "at"),
        ({"type": "call.connected", "call_id": CALL_ID, "route": "relay"}, "route"),
        (CAND | {"candidate": CANDIDATE}, "candidate"),
        (cand(candidate="x" * (MAX_CANDIDATE_BYTES + 1)), "candidate.candidate"),
        (cand(sdpMid="m" * 33), "candidate.sdpMid"),
        (cand(sdpMLineIndex=64), "candidate.sdpMLineIndex"),
        (cand(sdpMLineIndex=-1), "candidate.sdpMLineIndex"),
        (cand(sdpMLineIndex="0"), "candidate.sdpMLineIndex"),
        (cand(sdpMLineIndex=True), "candidate.sdpMLineIndex"),
        (cand(sdp_mid="0"), "candidate.sdp_mid"),  # snake_case is not the wire name
        (cand(usernameFragment="not a ufrag"), "candidate.usernameFragment"),
        (cand(sdpMid=None, sdpMLineIndex=None), "candidate"),
    ],
)
def test_bad_client_frames_name_the_field(wire: dict[str, object], field: str) -> None:
    with pytest.raises(CodecError) as info:
        parse_client_frame(wire)
    assert info.value.detail.split(":")[0] == field
    assert isinstance(info.value, ValueError)


def test_non_object_frames_are_refused() -> None:
    wires: list[object] = [[], "call.offer", None, 5]
    for wire in wires:
        with pytest.raises(CodecError, match="frame"):
            parse_client_frame(wire)  # type: ignore[arg-type]


def test_error_detail_is_short_even_for_huge_input() -> None:
    with pytest.raises(CodecError) as info:
        parse_client_frame({"type": "call." + "x" * 100_000})
    assert len(info.value.detail) < 250


# --- server frames -----------------------------------------------------------------------

ALICE = UserRef(id=7, username="alice", display_name="Alice A.", verified=True)
TURN = IceServer(
    urls=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
    username="1700000000:abcd",
    credential="c2VjcmV0",
)


def test_incoming_frame_wire_shape() -> None:
    frame = CallIncomingFrame(
        call_id=CALL_ID,
        caller=ALICE,
        media="video",
        sdp=SDP,
        ice_servers=[TURN, IceServer(urls=["stun:stun.example.org"])],
        ice_transport_policy="relay",
    )
    wire = encode(frame)
    assert wire == {
        "type": "call.incoming",
        "call_id": CALL_ID,
        "from": {"id": 7, "username": "alice", "display_name": "Alice A.", "verified": True},
        "media": "video",
        "sdp": SDP,
        "ice_servers": [
            {
                "urls": [
                    "turn:turn.example.org:3478?transport=udp",
                    "turns:turn.example.org:5349",
                ],
                "username": "1700000000:abcd",
                "credential": "c2VjcmV0",
            },
            {"urls": ["stun:stun.example.org"]},  # no null username for the browser to mangle
        ],
        "ice_transport_policy": "relay",
        "direct_allowed": False,
    }
    assert json.loads(json.dumps(wire)) == wire
    assert parse_server_frame(wire) == frame


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (
            CallAnswerFrame(call_id=CALL_ID, sdp=SDP),
            {"type": "call.answer", "call_id": CALL_ID, "sdp": SDP, "direct_allowed": False},
        ),
        (
            CallTransportFrame(
                call_id=CALL_ID,
                transport="relay",
                ice_servers=[TURN],
                ice_transport_policy="relay",
                restart=True,
                direct_allowed=True,
            ),
            {
                "type": "call.transport",
                "call_id": CALL_ID,
                "transport": "relay",
                "ice_servers": [
                    {
                        "urls": [
                            "turn:turn.example.org:3478?transport=udp",
                            "turns:turn.example.org:5349",
                        ],
                        "username": "1700000000:abcd",
                        "credential": "c2VjcmV0",
                    }
                ],
                "ice_transport_policy": "relay",
                "restart": True,
                "direct_allowed": True,
            },
        ),
        (
            CallCandidateFrame(
                call_id=CALL_ID, candidate=IceCandidate(candidate=CANDIDATE, sdp_mline_index=1)
            ),
            {
                "type": "call.candidate",
                "call_id": CALL_ID,
                "candidate": {"candidate": CANDIDATE, "sdpMid": None, "sdpMLineIndex": 1},
            },
        ),
        (
            CallEndedFrame(call_id=CALL_ID, reason="answered_elsewhere"),
            {"type": "call.ended", "call_id": CALL_ID, "reason": "answered_elsewhere"},
        ),
    ],
)
def test_server_frames_wire_shape(frame: ServerCallFrame, wire: dict[str, object]) -> None:
    assert encode(frame) == wire
    assert parse_server_frame(wire) == frame


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": "bored"}, "reason"),
        ({"type": "call.offer"}, "type"),
    ],
)
def test_bad_server_frames_name_the_field(changes: dict[str, object], field: str) -> None:
    wire = {"type": "call.ended", "call_id": CALL_ID, "reason": "hangup"} | changes
    with pytest.raises(CodecError) as info:
        parse_server_frame(wire)
    assert info.value.detail.split(":")[0] == field


def test_ice_server_urls_must_be_stun_or_turn() -> None:
    with pytest.raises(ValueError, match="urls"):
        IceServer(urls=["http://evil.example"])
    with pytest.raises(ValueError, match="urls"):
        IceServer(urls=[])


def test_frames_are_immutable() -> None:
    frame = OfferFrame(call_id=CALL_ID, sdp=SDP)
    with pytest.raises(ValueError, match="frozen"):
        frame.sdp = "v=0"  # type: ignore[misc]


# --- round trips ---------------------------------------------------------------------------

call_ids = st.from_regex(r"\A[A-Za-z0-9_-]{8,64}\Z")
sdps = st.text(min_size=1, max_size=300)
ice_candidates = st.builds(
    IceCandidate,
    candidate=st.text(max_size=200),
    sdp_mid=st.text(max_size=32),
    sdp_mline_index=st.none() | st.integers(0, 63),
) | st.builds(
    IceCandidate,
    candidate=st.just(""),
    sdp_mid=st.none() | st.text(max_size=32),
    sdp_mline_index=st.none() | st.integers(0, 63),
)

client_frames: st.SearchStrategy[Any] = st.one_of(
    st.builds(OfferFrame, call_id=call_ids, sdp=sdps),
    st.builds(AnswerFrame, call_id=call_ids, sdp=sdps),
    st.builds(CandidateFrame, call_id=call_ids, candidate=ice_candidates),
    st.builds(RejectFrame, call_id=call_ids),
    st.builds(HangupFrame, call_id=call_ids),
    st.builds(TransportFrame, call_id=call_ids, transport=st.sampled_from(["relay", "direct"])),
    st.builds(ReofferFrame, call_id=call_ids, sdp=sdps),
    st.builds(ReanswerFrame, call_id=call_ids, sdp=sdps),
    st.builds(ConnectedFrame, call_id=call_ids),
    st.builds(MediaFrame, call_id=call_ids, audio=st.booleans(), video=st.booleans()),
)

users = st.builds(
    UserRef,
    id=st.integers(1, 2**53),
    username=st.text(min_size=1, max_size=64),
    display_name=st.text(max_size=128),
    verified=st.booleans(),
)
urls = st.from_regex(r"\A(stun|stuns|turn|turns):[!-~]{1,40}\Z")
secrets = st.none() | st.text(max_size=64)
ice_servers = st.builds(
    IceServer,
    urls=st.lists(urls, min_size=1, max_size=8),
    username=secrets,
    credential=secrets,
)

server_frames: st.SearchStrategy[Any] = st.one_of(
    st.builds(
        CallIncomingFrame,
        call_id=call_ids,
        caller=users,
        media=st.sampled_from(["audio", "video"]),
        sdp=sdps,
        ice_servers=st.lists(ice_servers, max_size=8),
        ice_transport_policy=st.sampled_from(["relay", "all"]),
        direct_allowed=st.booleans(),
    ),
    st.builds(CallAnswerFrame, call_id=call_ids, sdp=sdps, direct_allowed=st.booleans()),
    st.builds(
        CallTransportFrame,
        call_id=call_ids,
        transport=st.sampled_from(["relay", "direct"]),
        ice_servers=st.lists(ice_servers, max_size=8),
        ice_transport_policy=st.sampled_from(["relay", "all"]),
        restart=st.booleans(),
        direct_allowed=st.booleans(),
    ),
    st.builds(CallReofferFrame, call_id=call_ids, sdp=sdps),
    st.builds(CallReanswerFrame, call_id=call_ids, sdp=sdps),
    st.builds(CallMediaFrame, call_id=call_ids, audio=st.booleans(), video=st.booleans()),
    st.builds(CallCandidateFrame, call_id=call_ids, candidate=ice_candidates),
    st.builds(CallEndedFrame, call_id=call_ids, reason=st.sampled_from(get_args(EndedReason))),
)


@given(client_frames)
def test_client_frames_round_trip(frame: ClientCallFrame) -> None:
    wire = json.loads(json.dumps(encode(frame)))
    assert parse_client_frame(wire) == frame


@given(server_frames)
def test_server_frames_round_trip(frame: ServerCallFrame) -> None:
    wire = json.loads(json.dumps(encode(frame)))
    assert parse_server_frame(wire) == frame


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from([*sorted(CALL_CLIENT_TYPES), CALL_ID, SDP, CANDIDATE]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["candidate", "sdpMid", "sdpMLineIndex", "x"]), inner)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["type", "call_id", "sdp", "candidate", "x"]), json_values))
def test_arbitrary_json_only_raises_codec_error(data: dict[str, object]) -> None:
    try:
        frame = parse_client_frame(data)
    except CodecError as error:
        detail = error.detail
    else:
        assert parse_client_frame(encode(frame)) == frame
        return
    assert detail.split(":")[0] in {
        "type",
        "call_id",
        "sdp",
        "candidate",
        "x",
    } or detail.startswith("candidate.")


def test_browser_candidates_with_a_username_fragment_round_trip() -> None:
    # What RTCIceCandidate.toJSON() produces in Chromium.
    wire: dict[str, object] = {
        "type": "call.candidate",
        "call_id": "abcdefgh12",
        "candidate": {
            "candidate": "candidate:1 1 udp 41885439 198.51.100.20 61234 typ relay",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "Xy7q",
        },
    }
    frame = parse_client_frame(wire)
    assert isinstance(frame, CandidateFrame)
    assert frame.candidate.username_fragment == "Xy7q"
    assert encode(frame) == wire
