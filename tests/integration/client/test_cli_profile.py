"""The account page from a terminal: ``rename``, ``password``, ``sessions`` and
``signout``, against a real ``ringfence serve``."""

from __future__ import annotations

import json

import pytest

from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import PASSWORD, Terminals

pytestmark = pytest.mark.integration

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals

NEW_PASSWORD = "a much better passphrase"


async def test_rename_password_sessions_and_signout(server_url: str, terminals: Terminals) -> None:
    laptop = terminals("laptop", server_url)
    phone = terminals("phone", server_url)
    await laptop.signup("erin")
    await phone.ok(
        "login", "erin", "--server", server_url, "--password-stdin", stdin=PASSWORD + "\n"
    )

    renamed = await laptop.ok("rename", "Erin E.")
    assert "Erin E. (@erin)" in renamed.out
    assert (await phone.ok("whoami", "--json")).json()["user"]["display_name"] == "Erin E."

    listed = await laptop.ok("sessions")
    rows = [line for line in listed.out.splitlines() if "Ringfence terminal client" in line]
    assert len(rows) == 2
    assert sum("this one" in row for row in rows) == 1
    sessions = (await laptop.ok("sessions", "--json")).json()["sessions"]
    assert [s["current"] for s in sessions] == [True, False]

    wrong = await laptop.run(
        "password", "--password-stdin", stdin=f"not it at all\n{NEW_PASSWORD}\n"
    )
    assert wrong.code == 1
    assert "current password" in wrong.err
    missing = await laptop.run("password", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert missing.code == 2
    changed = await laptop.ok("password", "--password-stdin", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert "other sessions are signed out" in changed.out
    assert (await phone.run("inbox")).code == 1  # the phone was signed out
    await laptop.ok("inbox")

    await phone.ok("logout")
    await phone.ok(
        "login", "erin", "--server", server_url, "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )
    phone_id = next(
        s["id"]
        for s in (await laptop.ok("sessions", "--json")).json()["sessions"]
        if not s["current"]
    )
    out = await laptop.ok("signout", str(phone_id))
    assert f"session {phone_id} is signed out" in out.out
    assert (await phone.run("inbox")).code == 1
    again = await laptop.run("signout", str(phone_id))
    assert again.code == 1
    assert "no such session" in again.err
    assert (await laptop.run("signout", "zero")).code == 2


async def test_export_writes_a_private_file_and_never_overwrites(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    await alice.signup("alice")
    await terminals("bob", server_url).signup("bob")
    await alice.ok("send", "bob", "hello bob")

    target = alice.home / "mine.json"
    ran = await alice.ok("export", str(target))
    assert "1 messages in 1 conversations" in ran.out
    assert target.stat().st_mode & 0o777 == 0o600
    data = json.loads(target.read_text())
    assert data["account"]["username"] == "alice"
    assert [m["text"] for m in data["conversations"][0]["messages"]] == ["hello bob"]

    again = await alice.run("export", str(target))
    assert again.code == 2
    assert "exists already" in again.err
    piped = await alice.ok("export", "-")
    assert json.loads(piped.out)["format"] == "ringfence-export/1"
