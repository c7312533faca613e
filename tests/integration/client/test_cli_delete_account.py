"""``ringfence delete-account`` against a real ``ringfence serve``: the password is
always asked for, the username is typed as confirmation (``--yes`` skips only that),
nothing happens on a wrong one of either, and once the account is deleted the stored
session file is gone and the people it talked with see "Deleted account"."""

from __future__ import annotations

import pytest

from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import PASSWORD, Terminals

pytestmark = pytest.mark.integration

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals


async def test_delete_account_asks_twice_then_forgets_the_session(
    server_url: str, terminals: Terminals
) -> None:
    erin = terminals("erin", server_url)
    phone = terminals("erin-phone", server_url)
    bob = terminals("bob", server_url)
    await erin.signup("erin", "--display-name", "Erin")
    await bob.signup("bob")
    await phone.ok(
        "login", "erin", "--server", server_url, "--password-stdin", stdin=PASSWORD + "\n"
    )
    await erin.ok("send", "bob", "goodbye bob")
    await bob.ok("send", "erin", "bye erin")

    # No password on standard input, and no terminal to ask on: nothing happens.
    missing = await erin.run("delete-account", "--yes")
    assert missing.code == 2
    assert "--password-stdin" in missing.err
    # The wrong username as confirmation, or none: nothing happens.
    for typed in ("bob\n", "\n", ""):
        refused = await erin.run("delete-account", "--password-stdin", stdin=f"{PASSWORD}\n{typed}")
        assert refused.code == 2, str(refused)
        assert "not deleted" in refused.err
        assert "Type your username to confirm" in refused.err
    # The wrong password, even with --yes: the server refuses.
    wrong = await erin.run("delete-account", "--password-stdin", "--yes", stdin="not it at all\n")
    assert wrong.code == 1
    assert "password" in wrong.err
    assert erin.session_file().exists()
    await erin.ok("whoami")
    await phone.ok("whoami")

    deleted = await erin.ok("delete-account", "--password-stdin", stdin=f"{PASSWORD}\n@erin\n")
    assert "deleted @erin" in deleted.out
    assert not erin.session_file().exists()
    # The phone's session ended with the account; it cannot sign in again.
    assert (await phone.run("whoami")).code == 1
    again = await phone.run(
        "login",
        "erin",
        "--server",
        server_url,
        "--password-stdin",
        "--profile",
        "again",
        stdin=PASSWORD + "\n",
    )
    assert again.code == 1
    assert "wrong username or password" in again.err

    # Bob keeps the conversation, from "Deleted account".
    inbox = await bob.ok("inbox")
    row = next(line for line in inbox.out.splitlines() if "bye erin" in line)
    assert "Deleted account (@deleted_account_" in row
    listed = (await bob.ok("inbox", "--json")).json()["conversations"]
    tombstone = listed[0]["user"]["username"]
    read = await bob.ok("read", tombstone)
    assert "goodbye bob" in read.out
    assert "Deleted account" in read.out
    assert (await bob.run("send", "erin", "are you there?")).code == 1


async def test_delete_account_with_yes_and_json(server_url: str, terminals: Terminals) -> None:
    zed = terminals("zed", server_url)
    await zed.signup("zed")
    ran = await zed.ok(
        "delete-account", "--password-stdin", "--yes", "--json", stdin=PASSWORD + "\n"
    )
    assert ran.json() == {"deleted": "zed", "session_file_deleted": True}
    assert "Type your username" not in ran.err
    assert not zed.session_file().exists()
    # The name is held: signing up with it again is refused like any taken name.
    retry = await zed.run(
        "signup", "zed", "--server", server_url, "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert retry.code == 1
    assert "taken" in retry.err
