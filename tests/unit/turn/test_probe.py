"""The relay check as a pure state machine, against a scripted relay built from aioice's
STUN codec: what it sends, and which answers it takes as proof or as a failure."""

from __future__ import annotations

import pytest
from aioice import stun
from aioice.turn import UDP_TRANSPORT, make_integrity_key
from hypothesis import given
from hypothesis import strategies as st

from ringfence.turn.probe import (
    AllocationCheck,
    Phase,
    RelayBusy,
    RelayCheckFailed,
    padded,
    split_stream,
)

USERNAME = "1700000060:opaque-probe-id"
PASSWORD = "c2VjcmV0LXBhc3N3b3JkLWZyb20taG1hYw=="
REALM = "ringfence"
NONCE = b"nonce-1"
KEY = make_integrity_key(USERNAME, REALM, PASSWORD)
RELAYED = ("192.0.2.10", 50000)


def sent(check: AllocationCheck) -> stun.Message:
    data = check.request()
    assert data is not None
    return stun.parse_message(data)


def answer(
    request: stun.Message,
    *,
    error: tuple[int, str] | None = None,
    key: bytes | None = KEY,
    **attributes: object,
) -> bytes:
    response = stun.Message(
        request.message_method,
        stun.Class.ERROR if error else stun.Class.RESPONSE,
        transaction_id=request.transaction_id,
    )
    if error:
        response.attributes["ERROR-CODE"] = error
    for name, value in attributes.items():
        response.attributes[name.replace("_", "-")] = value
    if key is not None and not error:
        response.add_message_integrity(key)
    return bytes(response)


def challenge(check: AllocationCheck, realm: str = REALM, nonce: bytes = NONCE) -> None:
    request = sent(check)
    check.receive(answer(request, error=(401, "Unauthorized"), REALM=realm, NONCE=nonce))


def allocate(check: AllocationCheck, relayed: tuple[str, int] = RELAYED) -> stun.Message:
    request = sent(check)
    check.receive(
        answer(
            request,
            XOR_RELAYED_ADDRESS=relayed,
            XOR_MAPPED_ADDRESS=("192.0.2.99", 40000),
            LIFETIME=60,
        )
    )
    return request


def new_check(**kwargs: object) -> AllocationCheck:
    return AllocationCheck(USERNAME, PASSWORD, realm=REALM, **kwargs)  # type: ignore[arg-type]


def test_the_whole_check_against_a_relay_that_runs_our_configuration() -> None:
    check = new_check()

    first = sent(check)
    assert (first.message_method, first.message_class) == (
        stun.Method.ALLOCATE,
        stun.Class.REQUEST,
    )
    assert first.attributes["REQUESTED-TRANSPORT"] == UDP_TRANSPORT
    assert "USERNAME" not in first.attributes
    assert "MESSAGE-INTEGRITY" not in first.attributes
    challenge(check)

    second = allocate(check)
    assert second.attributes["USERNAME"] == USERNAME
    assert second.attributes["REALM"] == REALM
    assert second.attributes["NONCE"] == NONCE
    assert second.check_message_integrity(KEY)
    assert check.relayed_address == RELAYED

    permission = sent(check)
    assert permission.message_method == stun.Method.CREATE_PERMISSION
    assert permission.attributes["XOR-PEER-ADDRESS"] == ("169.254.169.254", 80)
    assert permission.check_message_integrity(KEY)
    check.receive(answer(permission, error=(403, "Forbidden IP")))

    assert check.phase is Phase.HOLDING
    assert check.request() is None  # the caller's turn: inspect, then release
    check.release()

    release = sent(check)
    assert release.message_method == stun.Method.REFRESH
    assert release.attributes["LIFETIME"] == 0
    assert release.check_message_integrity(KEY)
    check.receive(answer(release, LIFETIME=0))
    assert check.finished
    assert check.request() is None


def test_an_allocation_without_credentials_is_the_open_relay() -> None:
    check = new_check()
    request = sent(check)

    with pytest.raises(RelayCheckFailed, match="answered an Allocate without credentials") as e:
        check.receive(answer(request, key=None, XOR_RELAYED_ADDRESS=RELAYED, LIFETIME=600))
    assert e.value.definite


def test_a_challenge_for_another_realm_is_not_ours() -> None:
    check = new_check()

    with pytest.raises(RelayCheckFailed, match=r"realm 'example\.org'"):
        challenge(check, realm="example.org")


def test_an_error_other_than_401_to_the_unauthenticated_allocate() -> None:
    check = new_check()

    with pytest.raises(RelayCheckFailed, match="with 400 Bad Request instead of 401"):
        check.receive(answer(sent(check), error=(400, "Bad Request")))


def test_fresh_credentials_refused_means_another_secret() -> None:
    check = new_check()
    challenge(check)

    with pytest.raises(RelayCheckFailed, match="refused freshly issued credentials") as e:
        check.receive(answer(sent(check), error=(401, "Unauthorized"), REALM=REALM, NONCE=NONCE))
    assert e.value.definite


def test_a_success_not_signed_with_our_key_is_refused() -> None:
    check = new_check()
    challenge(check)
    request = sent(check)

    with pytest.raises(RelayCheckFailed, match="not signed with the key"):
        check.receive(
            answer(request, key=b"someone else's key", XOR_RELAYED_ADDRESS=RELAYED, LIFETIME=60)
        )


def test_a_permission_toward_a_denied_peer_means_the_denials_are_missing() -> None:
    check = new_check()
    challenge(check)
    allocate(check)

    with pytest.raises(RelayCheckFailed, match=r"169\.254\.169\.254.*not in effect"):
        check.receive(answer(sent(check)))


def test_a_stale_nonce_is_renewed_once() -> None:
    check = new_check()
    challenge(check)
    stale = sent(check)
    check.receive(answer(stale, error=(438, "Stale Nonce"), NONCE=b"nonce-2"))

    retried = sent(check)
    assert retried.message_method == stun.Method.ALLOCATE
    assert retried.transaction_id != stale.transaction_id
    assert retried.attributes["NONCE"] == b"nonce-2"
    # Not twice: a relay that keeps saying "stale" is not behaving.
    with pytest.raises(RelayCheckFailed, match="438 Stale Nonce"):
        check.receive(answer(retried, error=(438, "Stale Nonce"), NONCE=b"nonce-3"))


def test_a_full_relay_is_busy_not_misconfigured() -> None:
    check = new_check()
    challenge(check)

    with pytest.raises(RelayBusy) as e:
        check.receive(answer(sent(check), error=(508, "Insufficient Capacity")))
    assert not e.value.definite


def test_answers_to_other_transactions_and_garbage_are_ignored() -> None:
    check = new_check()
    request = sent(check)
    other = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)

    check.receive(b"\x00garbage")
    check.receive(answer(other, key=None, XOR_RELAYED_ADDRESS=RELAYED, LIFETIME=600))
    check.receive(bytes(request))  # an echo of our own request is no answer

    assert check.phase is Phase.CHALLENGE
    assert check.request() == bytes(request)  # retransmissions resend the same bytes


def test_the_denied_peer_avoids_the_relays_own_addresses_and_follows_its_family() -> None:
    check = new_check(avoid_peers=["169.254.169.254"])
    challenge(check)
    allocate(check)
    assert sent(check).attributes["XOR-PEER-ADDRESS"] == ("10.255.255.254", 9)

    v6 = new_check(avoid_peers=["fe80::1"])
    challenge(v6)
    allocate(v6, relayed=("fd00::2", 50000))
    assert sent(v6).attributes["XOR-PEER-ADDRESS"] == ("fc00::1", 9)


def test_release_only_while_holding() -> None:
    with pytest.raises(RuntimeError, match="release"):
        new_check().release()


def test_an_allocation_already_gone_counts_as_released() -> None:
    check = new_check()
    challenge(check)
    allocate(check)
    check.receive(answer(sent(check), error=(403, "Forbidden IP")))
    check.release()

    check.receive(answer(sent(check), error=(437, "Allocation Mismatch")))

    assert check.finished


def _message(tid: int, username: str) -> bytes:
    message = stun.Message(
        stun.Method.ALLOCATE, stun.Class.REQUEST, transaction_id=tid.to_bytes(12, "big")
    )
    if username:
        message.attributes["USERNAME"] = username
    return padded(bytes(message))


@given(
    st.lists(st.tuples(st.integers(0, 2**96 - 1), st.text(max_size=30)), max_size=5),
    st.integers(1, 64),
)
def test_split_stream_recovers_messages_from_any_chunking(
    specs: list[tuple[int, str]], chunk: int
) -> None:
    messages = [_message(tid, name) for tid, name in specs]
    stream = b"".join(messages)
    found: list[bytes] = []
    buffer = b""
    for start in range(0, len(stream), chunk):
        complete, buffer = split_stream(buffer + stream[start : start + chunk])
        found += complete

    assert found == messages
    assert buffer == b""


def test_split_stream_keeps_a_partial_message_and_cuts_channel_data() -> None:
    channel_data = b"\x40\x00\x00\x03abc\x00"  # channel 0x4000, 3 bytes, padded
    message = _message(1, "x")

    complete, rest = split_stream(channel_data + message + message[:7])

    assert complete == [channel_data, message]
    assert rest == message[:7]
