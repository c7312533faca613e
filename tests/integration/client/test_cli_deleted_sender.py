"""``ringfence read`` of a conversation with a deleted account, against a real
``ringfence serve``: its messages are still there, from "Deleted account", never from
its reserved ``@deleted_account_…`` handle (issue 12, account deletion)."""

from __future__ import annotations

import re

import pytest

from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import PASSWORD, Terminals

pytestmark = pytest.mark.integration

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals

DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d  ")


async def test_read_names_a_deleted_sender_deleted_account(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice")
    await bob.signup("bob", "--display-name", "Bob")
    await alice.ok("send", "bob", "hello bob")
    await bob.ok("send", "alice", "bye alice, deleting my account")
    await bob.ok("delete-account", "--password-stdin", "--yes", stdin=PASSWORD + "\n")

    listed = (await alice.ok("inbox", "--json")).json()["conversations"]
    (conversation,) = listed
    tombstone = conversation["user"]["username"]
    assert tombstone.startswith("deleted_account_")

    read = await alice.ok("read", tombstone, "--keep-unread")
    lines = read.out.splitlines()
    assert DATED.match(lines[0])
    assert lines[0].endswith("you")
    assert lines[1] == "    hello bob"
    assert DATED.match(lines[2])
    assert lines[2].endswith("Deleted account")
    assert lines[3] == "    bye alice, deleting my account"
    assert "@deleted_account_" not in read.out
    assert "@bob" not in read.out
    # --json keeps the data as the server gave it, for scripts.
    messages = (await alice.ok("read", tombstone, "--json")).json()["messages"]
    assert [m["sender"] for m in messages] == ["alice", tombstone]
