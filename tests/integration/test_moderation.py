"""Reports and suspensions, through the API and the real `ringfence admin` commands."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from ringfence.config import Settings
from tests.conftest import Api, LiveServer, open_socket

pytestmark = pytest.mark.integration

RINGFENCE = str(Path(sys.executable).with_name("ringfence"))


async def admin(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [RINGFENCE, "admin", *args, "--database-url", settings.effective_database_url]
    return await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=60, check=False
    )


async def test_reports_are_taken_and_listed_for_admins(
    live: tuple[LiveServer, Api], settings: Settings
) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    resp = await api.call(
        "POST", "/api/v1/reports", alice, json={"username": "bob", "reason": "keeps calling"}
    )
    assert resp.status_code == 201
    report_id = resp.json()["report"]["id"]
    for body, status in (
        ({"username": "alice"}, 400),  # yourself
        ({"username": "nobody"}, 404),
        ({"username": "bob", "reason": "x" * 1001}, 422),
    ):
        assert (await api.call("POST", "/api/v1/reports", alice, json=body)).status_code == status

    listed = await admin(settings, "reports")
    assert listed.returncode == 0, listed.stderr
    assert "keeps calling" in listed.stdout
    assert "bob" in listed.stdout
    done = await admin(settings, "resolve", str(report_id))
    assert done.returncode == 0, done.stderr
    assert "no open reports" in (await admin(settings, "reports")).stderr
    assert (await admin(settings, "resolve", str(report_id))).returncode == 1


async def test_reports_are_rate_limited(live: tuple[LiveServer, Api]) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    statuses = [
        (await api.call("POST", "/api/v1/reports", alice, json={"username": "bob"})).status_code
        for _ in range(21)
    ]
    assert statuses[:20] == [201] * 20
    assert statuses[20] == 429


async def test_a_suspended_account_cannot_log_in_message_or_call(
    live: tuple[LiveServer, Api], settings: Settings
) -> None:
    server, api = live
    alice = await api.register("alice")
    bob = await api.register("bob")
    bob_ws = await open_socket(server.ws_url, bob)
    await api.call("PUT", "/api/v1/me/following/bob", alice)
    assert (await api.send(bob, "alice", "hi")).status_code == 201

    result = await admin(settings, "suspend", "bob")
    assert result.returncode == 0, result.stderr

    # Signed out everywhere, and cannot sign in again.
    assert (await api.call("GET", "/api/v1/me", bob)).status_code == 401
    login = await api.call(
        "POST", "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
    )
    assert login.status_code == 403
    assert login.json()["error"] == "account_suspended"
    # Nobody can reach a suspended account either.
    assert (await api.send(alice, "bob", "still there?")).status_code == 403
    call = await api.call("POST", "/api/v1/calls", alice, json={"to": "bob", "media": "audio"})
    assert call.status_code == 403
    # A socket opened before the suspension cannot signal calls any more.
    await bob_ws.send({"type": "call.hangup", "call_id": "abcdefgh1234"})
    with pytest.raises(ConnectionClosed) as closed:
        await bob_ws.recv_type("error")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401

    assert (await admin(settings, "unsuspend", "bob")).returncode == 0
    login = await api.call(
        "POST", "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
    )
    assert login.status_code == 201
