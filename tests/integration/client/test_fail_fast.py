"""Failing fast and honestly, with the real Python client, real aiortc and real coturn.

- A relay that cannot be reached is known within seconds, on the caller's side (before
  anyone rings) and on the callee's after accepting, with an error that says so; the
  CLI prints it and exits non-zero.
- An answered call whose media never connects is recorded as "not connected", with no
  duration, in GET /api/v1/calls, in the thread and in ``ringfence calls``.
- A connection that drops mid-call (here: coturn frozen with SIGSTOP) is restarted
  through the relay, and the call goes on; if the restart fails too, the call ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ringfence.client import (
    CallEnded,
    CallState,
    ToneTrack,
    WavRecorder,
    place_call,
    wait_for_incoming,
)
from ringfence.client.call import Call
from ringfence.turn.supervisor import CoturnSupervisor
from tests.conftest import Api, LiveServer, make_settings, open_socket
from tests.integration.calls.conftest import Peer, start_call
from tests.integration.calls.sdp import sdp_pair
from tests.integration.client.conftest import TIMEOUT, Person, person
from tests.integration.client.relays import closed_udp_port, freeze, own_coturn, thaw

pytestmark = pytest.mark.integration

RINGFENCE = str(Path(sys.executable).with_name("ringfence"))
# Fail fast: aioice gives a silent TURN server 5 s; this leaves room for a busy machine
# while still being far from the 30 s media timeout the failure used to take.
FAST_S = 15.0


@pytest.fixture
async def dead_relay_server(tmp_path: Path, database_url: str) -> AsyncIterator[LiveServer]:
    """A server whose (external) TURN server does not answer."""
    settings = make_settings(
        tmp_path,
        database_url,
        turn_urls=[f"turn:127.0.0.1:{closed_udp_port()}?transport=udp"],
        turn_secret="fail-fast-test-secret-0123456789",
    )
    async with LiveServer(settings) as server:
        yield server


@pytest.fixture
async def frozen_relay(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LiveServer, CoturnSupervisor]]:
    """A server whose relay a test may freeze (SIGSTOP) and thaw (SIGCONT).
    ``@pytest.mark.server_settings(...)`` overrides settings."""
    marker = request.node.get_closest_marker("server_settings")
    overrides = dict(marker.kwargs) if marker else {}
    async with own_coturn(tmp_path / "coturn") as (supervisor, secret):
        settings = make_settings(
            tmp_path,
            database_url,
            turn_urls=list(supervisor.urls),
            turn_secret=secret,
            **overrides,
        )
        async with LiveServer(settings) as server:
            yield server, supervisor


async def alice_and_bob(server: LiveServer) -> tuple[Person, Person]:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    await bob.client.follow("alice")
    await alice.client.send_message("bob", "hi")
    return alice, bob


async def close(*people: Person) -> None:
    for p in people:
        await p.events.close()
        await p.client.aclose()


async def wait_state(call: Call, state: CallState, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        async for change in call.state_changes():
            if change.state is state:
                return
    raise AssertionError(f"the call ended without reaching {state}")


def ufrag(sdp: str | None) -> str:
    assert sdp is not None
    return next(line for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))


async def recorded(who: Person) -> dict[str, object]:
    """The call record the server appends to the thread when a call ends (persisted
    before anyone is told)."""
    while True:
        event = await who.events.next_event("message.new", timeout=TIMEOUT)
        if event["message"]["kind"] == "call":
            record: dict[str, object] = event["message"]["call"]
            return record


async def heard_more(recorder: WavRecorder, seconds: float) -> None:
    start = recorder.duration_s
    async with asyncio.timeout(TIMEOUT):
        while recorder.duration_s < start + seconds:
            await asyncio.sleep(0.1)


# --- the relay cannot be reached --------------------------------------------------------


async def test_a_caller_whose_relay_is_unreachable_is_told_within_seconds(
    dead_relay_server: LiveServer,
) -> None:
    alice, bob = await alice_and_bob(dead_relay_server)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CallEnded) as ended:
            await place_call(alice.client, alice.events, "bob", tracks=[ToneTrack(440)])
        assert loop.time() - started < FAST_S
        assert ended.value.reason == "failed"
        assert ended.value.detail is not None
        assert "could not reach the relay server" in ended.value.detail
        # Nobody was rung for a call that could not have connected, and nothing was
        # recorded.
        with pytest.raises(TimeoutError):
            await bob.events.next_event("call.incoming", timeout=1)
        assert await alice.client.call_history() == []
        assert await bob.client.call_history() == []
    finally:
        await close(alice, bob)


async def test_a_callee_whose_relay_is_unreachable_gives_up_within_seconds_after_accepting(
    dead_relay_server: LiveServer,
) -> None:
    """The caller here is a client of the test's own (real SDP, no relay needed), so
    that only the callee's relay fails."""
    alice_p, bob = await alice_and_bob(dead_relay_server)
    assert alice_p.client.token is not None
    a_ws = await open_socket(dead_relay_server.ws_url, alice_p.client.token)
    try:
        async with httpx.AsyncClient(base_url=dead_relay_server.url) as http:
            resp = await start_call(Api(http), alice_p.client.token, "bob")
        call_id = resp.json()["call_id"]
        offer, _ = await sdp_pair()
        await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
        async with asyncio.timeout(TIMEOUT):
            incoming = await wait_for_incoming(bob.events)

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CallEnded) as ended:
            await incoming.accept(tracks=[ToneTrack(660)])
        assert loop.time() - started < FAST_S
        assert ended.value.detail is not None
        assert "could not reach the relay server" in ended.value.detail

        # The caller learns that the call was answered (an answer without a single
        # candidate: no network information) and then that it ended, at once.
        answer = await a_ws.recv_type("call.answer", timeout=5)
        assert "a=candidate:" not in answer["sdp"]
        record = (await a_ws.recv_type("message.new", timeout=5))["message"]["call"]
        assert (record["outcome"], record["duration_s"]) == ("not_connected", 0)
        assert (await a_ws.recv_type("call.ended"))["reason"] == "hangup"
        # Answered but not connected: not "declined", in either person's history.
        for who in (alice_p, bob):
            (item,) = await who.client.call_history()
            assert item["call"]["outcome"] == "not_connected"
    finally:
        await a_ws.close()
        await close(alice_p, bob)


def write_token(tmp_path: Path, who: Person) -> Path:
    assert who.client.token is not None
    path = tmp_path / f"{who.name}.token"
    path.write_text(who.client.token)
    path.chmod(0o600)
    return path


async def ringfence(*args: str) -> asyncio.subprocess.Process:
    """``ringfence *args`` as a user runs it, stderr (its messages) to a pipe."""
    return await asyncio.create_subprocess_exec(
        RINGFENCE,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")},
    )


async def test_ringfence_call_says_the_relay_is_unreachable_and_exits_non_zero(
    dead_relay_server: LiveServer, tmp_path: Path
) -> None:
    alice, bob = await alice_and_bob(dead_relay_server)
    try:
        token_file = write_token(tmp_path, alice)
        loop = asyncio.get_running_loop()
        started = loop.time()
        process = await ringfence(
            "call", "bob", "--server", dead_relay_server.url, "--token-file", str(token_file)
        )
        _, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        assert loop.time() - started < FAST_S + 5  # + the CLI's own start-up
        assert process.returncode == 1, err
        assert "error: call failed: could not reach the relay server" in err.decode()
    finally:
        await close(alice, bob)


async def test_ringfence_answer_says_the_relay_is_unreachable_and_exits_non_zero(
    dead_relay_server: LiveServer, tmp_path: Path
) -> None:
    """The caller is a client of the test's own (no relay needed), so that only the
    answering terminal's relay fails."""
    alice, bob = await alice_and_bob(dead_relay_server)
    assert alice.client.token is not None
    a_ws = await open_socket(dead_relay_server.ws_url, alice.client.token)
    try:
        process = await ringfence(
            "answer",
            "--server",
            dead_relay_server.url,
            "--token-file",
            str(write_token(tmp_path, bob)),
            "--timeout",
            "60",
        )
        # Ring once the terminal is listening (its device shows up as connected).
        async with asyncio.timeout(TIMEOUT):
            while len(await dead_relay_server.services.hub.devices(bob.events.user["id"])) < 2:
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=dead_relay_server.url) as http:
            resp = await start_call(Api(http), alice.client.token, "bob")
        offer, _ = await sdp_pair()
        await a_ws.send({"type": "call.offer", "call_id": resp.json()["call_id"], "sdp": offer})
        loop = asyncio.get_running_loop()
        rang = loop.time()
        _, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        assert loop.time() - rang < FAST_S
        assert process.returncode == 1, err
        assert "error: could not answer: could not reach the relay server" in err.decode()
        record = (await a_ws.recv_type("message.new", timeout=5))["message"]["call"]
        assert record["outcome"] == "not_connected"
    finally:
        await a_ws.close()
        await close(alice, bob)


# --- answered, but media never connects ---------------------------------------------------


async def test_an_answered_call_whose_media_never_connects_is_recorded_as_not_connected(
    relay_server: LiveServer, tmp_path: Path
) -> None:
    """Bob's device answers properly (a real aiortc answer with relay candidates) and then
    vanishes from ICE: Alice's client gives up, and nobody's history shows a call that
    took place."""
    alice, bob = await alice_and_bob(relay_server)
    assert bob.client.token is not None
    b_ws = await open_socket(relay_server.ws_url, bob.client.token)
    peer: Peer | None = None
    try:
        call = await place_call(
            alice.client, alice.events, "bob", tracks=[ToneTrack(440)], connect_timeout_s=6
        )
        incoming = await b_ws.recv_type("call.incoming", timeout=TIMEOUT)
        peer = Peer(incoming["ice_transport_policy"], incoming["ice_servers"], tone=660)
        answer = await peer.answer(incoming["sdp"])
        await peer.close()  # never completes ICE
        await b_ws.send({"type": "call.answer", "call_id": call.call_id, "sdp": answer})

        with pytest.raises(CallEnded):
            await call.wait_connected(TIMEOUT)
        assert CallState.CONNECTED not in [c.state for c in call.changes]
        assert await call.wait_ended() == "failed"
        assert (await recorded(alice))["outcome"] == "not_connected"

        for who, peer_name in ((alice, "bob"), (bob, "alice")):
            (item,) = await who.client.call_history()
            assert item["call"]["call_id"] == call.call_id
            assert (item["call"]["outcome"], item["call"]["duration_s"]) == ("not_connected", 0)
            thread = [m for m in await who.client.history(peer_name) if m["kind"] == "call"]
            assert thread[-1]["call"] == item["call"]

        # And in the terminal, in the same words as the web client's thread.
        token_file = write_token(tmp_path, alice)
        process = await ringfence(
            "calls", "--server", relay_server.url, "--token-file", str(token_file)
        )
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        assert process.returncode == 0, err
        assert "Call didn't connect" in out.decode()
        assert "@bob" in out.decode()
        process = await ringfence(
            "calls", "--json", "--server", relay_server.url, "--token-file", str(token_file)
        )
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        assert process.returncode == 0, err
        (listed,) = json.loads(out)["calls"]
        assert (listed["call"]["outcome"], listed["call"]["duration_s"]) == ("not_connected", 0)
    finally:
        if peer is not None:
            await peer.close()
        await b_ws.close()
        await close(alice, bob)


# --- the connection drops mid-call ----------------------------------------------------------


async def connected_call(
    server: LiveServer, tmp_path: Path
) -> tuple[Person, Person, Call, Call, WavRecorder, WavRecorder]:
    alice, bob = await alice_and_bob(server)
    heard_by_alice = WavRecorder(tmp_path / "alice.wav")
    heard_by_bob = WavRecorder(tmp_path / "bob.wav")
    call = await place_call(
        alice.client, alice.events, "bob", tracks=[ToneTrack(440)], sink=heard_by_alice
    )
    async with asyncio.timeout(TIMEOUT):
        incoming = await wait_for_incoming(bob.events)
    await incoming.accept(tracks=[ToneTrack(660)], sink=heard_by_bob)
    await call.wait_connected(TIMEOUT)
    await incoming.wait_connected(TIMEOUT)
    await heard_more(heard_by_bob, 1.0)
    return alice, bob, call, incoming, heard_by_alice, heard_by_bob


async def test_a_dropped_connection_is_restarted_through_the_relay_and_the_call_goes_on(
    frozen_relay: tuple[LiveServer, CoturnSupervisor], tmp_path: Path
) -> None:
    server, coturn = frozen_relay
    alice, bob, call, incoming, heard_by_alice, heard_by_bob = await connected_call(
        server, tmp_path
    )
    try:
        words = call.verification_code
        before = ufrag(call.local_sdp), ufrag(incoming.local_sdp)
        pid = freeze(coturn)  # the relay stops answering: media stops
        try:
            await wait_state(call, CallState.RECONNECTING, TIMEOUT)
        finally:
            thaw(pid)  # a hiccup, not an outage
        await call.wait_connected(TIMEOUT)
        await incoming.wait_connected(TIMEOUT)
        # The call moved to a new connection (new ICE credentials: a real restart)...
        assert call.restarts >= 1
        assert (ufrag(call.local_sdp), ufrag(incoming.local_sdp)) != before
        # ...with the same DTLS certificate, through the relay, and it carries audio
        # both ways again.
        assert call.verification_code == words == incoming.verification_code
        for side in (call, incoming):
            pair = side.selected_candidate_pair()
            assert pair is not None
            assert (pair.local.type, pair.remote.type) == ("relay", "relay")
        await heard_more(heard_by_bob, 1.0)
        await heard_more(heard_by_alice, 1.0)
        states = [c.state for c in call.changes]
        assert states[:4] == [
            CallState.NEW,
            CallState.RINGING,
            CallState.CONNECTING,
            CallState.CONNECTED,
        ]
        assert states[4:] == [CallState.RECONNECTING, CallState.CONNECTED]

        assert await call.hangup() == "hangup"
        assert await incoming.wait_ended() == "hangup"
        record = await recorded(alice)
        assert record["outcome"] == "completed"
        assert isinstance(record["duration_s"], int)
        assert record["duration_s"] >= 2
    finally:
        await close(alice, bob)


async def test_when_the_restart_fails_too_the_call_ends_as_failed(
    frozen_relay: tuple[LiveServer, CoturnSupervisor], tmp_path: Path
) -> None:
    server, coturn = frozen_relay
    alice, bob, call, incoming, _, _ = await connected_call(server, tmp_path)
    pid = freeze(coturn)  # and it stays down
    try:
        await wait_state(call, CallState.RECONNECTING, TIMEOUT)
        # The restart was tried (the server handed out a restart of the call) and
        # failed: only then does the call end.
        async with asyncio.timeout(TIMEOUT):
            reason = await call.wait_ended()
        assert reason == "failed"
        assert call.end_detail is not None
        assert "restarting it through the relay failed" in call.end_detail
        assert [c.state for c in call.changes][-3:] == [
            CallState.CONNECTED,
            CallState.RECONNECTING,
            CallState.ENDED,
        ]
        async with asyncio.timeout(TIMEOUT):
            await incoming.wait_ended()
        # Media did connect before the drop: a call that took place, then failed.
        assert (await recorded(alice))["outcome"] == "completed"
    finally:
        thaw(pid)
        await close(alice, bob)


@pytest.mark.server_settings(call_switches_per_minute=1)
async def test_a_call_that_keeps_dropping_ends_once_its_restarts_are_rate_limited(
    frozen_relay: tuple[LiveServer, CoturnSupervisor], tmp_path: Path
) -> None:
    """A restart is a switch: it hands out fresh relay credentials and counts against
    call_switches_per_minute. The first drop is restarted; the next one, within the
    minute, is refused, and the call ends saying why."""
    server, coturn = frozen_relay
    alice, bob, call, incoming, _, _ = await connected_call(server, tmp_path)
    try:
        pid = freeze(coturn)
        try:
            await wait_state(call, CallState.RECONNECTING, TIMEOUT)
        finally:
            thaw(pid)
        await call.wait_connected(TIMEOUT)
        await incoming.wait_connected(TIMEOUT)
        assert call.restarts == 1

        pid = freeze(coturn)
        try:
            async with asyncio.timeout(TIMEOUT):
                assert await call.wait_ended() == "failed"
        finally:
            thaw(pid)
        assert call.restarts == 2
        assert call.end_detail == "the connection dropped too often to restart it again so soon"
        async with asyncio.timeout(TIMEOUT):
            await incoming.wait_ended()
    finally:
        await close(alice, bob)
