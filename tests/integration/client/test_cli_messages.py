"""Messages and people from a terminal, against a real ``ringfence serve``: ``send``,
``inbox``, ``read``, ``accept``, ``decline``, ``follow``, ``unfollow``, ``block``,
``unblock``, ``following``, ``followers``, ``blocked`` and ``report``."""

from __future__ import annotations

import re

import pytest

from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import Terminals

pytestmark = pytest.mark.integration

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals

DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d  ")


async def test_a_request_is_marked_read_oldest_first_and_accepted(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice", "--display-name", "Alice")
    await bob.signup("bob")

    first = await alice.ok("send", "bob", "hello bob")
    assert "sent to @bob" in first.out
    # From standard input, several lines, with a trailing newline dropped.
    await alice.ok("send", "bob", "-", stdin="second\nwith two lines\n")

    inbox = await bob.ok("inbox")
    row = next(line for line in inbox.out.splitlines() if "@alice" in line)
    assert "request" in row
    assert "Alice (@alice)" in row
    assert "second …" in row  # the latest message, its first line
    assert "ringfence accept USER" in inbox.err
    listed = (await bob.ok("inbox", "--json")).json()["conversations"]
    assert [(c["user"]["username"], c["is_request"]) for c in listed] == [("alice", True)]

    read = await bob.ok("read", "alice")
    lines = read.out.splitlines()
    assert DATED.match(lines[0])
    assert lines[0].endswith("@alice")
    assert lines[1] == "    hello bob"
    assert DATED.match(lines[2])
    assert lines[3:5] == ["    second", "    with two lines"]
    texts = [m["text"] for m in (await bob.ok("read", "alice", "--json")).json()["messages"]]
    assert texts == ["hello bob", "second\nwith two lines"]
    latest = (await bob.ok("read", "alice", "--limit", "1", "--json")).json()["messages"]
    assert [m["text"] for m in latest] == ["second\nwith two lines"]

    accepted = await bob.ok("accept", "alice", "--json")
    assert accepted.json()["conversation"]["is_request"] is False
    await bob.ok("send", "alice", "hi alice")
    mine = await alice.ok("read", "bob")
    assert "  you" in mine.out.splitlines()[0]
    assert mine.out.splitlines()[-2].endswith("@bob")


async def test_a_retried_send_with_the_same_txn_id_is_stored_once(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    await alice.signup("alice")
    await terminals("bob", server_url).signup("bob")

    once = (await alice.ok("send", "bob", "only once", "--txn-id", "retry-me-1", "--json")).json()
    twice = (await alice.ok("send", "bob", "only once", "--txn-id", "retry-me-1", "--json")).json()
    assert once["message"]["id"] == twice["message"]["id"]
    assert once["message"]["txn_id"] == "retry-me-1"
    history = (await alice.ok("read", "bob", "--json")).json()["messages"]
    assert [m["text"] for m in history] == ["only once"]

    # Without --txn-id each run is a new message (a fresh id per send).
    await alice.ok("send", "bob", "again")
    await alice.ok("send", "bob", "again")
    history = (await alice.ok("read", "bob", "--json")).json()["messages"]
    assert [m["text"] for m in history] == ["only once", "again", "again"]

    bad = await alice.run("send", "bob", "x", "--txn-id", "not/valid")
    assert bad.code == 2
    empty = await alice.run("send", "bob", "-", stdin="\n")
    assert empty.code == 2
    assert "empty" in empty.err


async def test_other_peoples_text_prints_literally(server_url: str, terminals: Terminals) -> None:
    mallory = terminals("mallory", server_url)
    bob = terminals("bob", server_url)
    await mallory.signup("mallory", "--display-name", "[bold red]Admin[/] [/]")
    await bob.signup("bob")
    tricky = "see [/] and [link=http://x]here[/link]\r overwritten \u202egnp.exe"
    await mallory.ok("send", "bob", "-", stdin=tricky)

    read = await bob.ok("read", "mallory")
    assert "see [/] and [link=http://x]here[/link]" in read.out
    assert "overwritten \\u202egnp.exe" in read.out
    # A carriage return never reaches the terminal (escaped, or a line break if the
    # server normalises it).
    assert "\r" not in read.out
    assert "\u202e" not in read.out
    assert "\x1b" not in read.out  # and no colour: standard output is not a terminal
    inbox = await bob.ok("inbox")
    assert "[bold red]Admin[/] [/] (@mallory)" in inbox.out

    # An escape sequence is refused by the server, and its message is shown.
    refused = await mallory.run("send", "bob", "-", stdin="\x1b[2J cleared")
    assert refused.code == 1
    assert refused.err.startswith("error: ")
    assert len(refused.err.splitlines()) == 1
    assert "\x1b" not in refused.err


async def test_decline_follow_block_report(server_url: str, terminals: Terminals) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    carol = terminals("carol", server_url)
    await alice.signup("alice", "--display-name", "Alice")
    await bob.signup("bob", "--display-name", "Bob")
    await carol.signup("carol")

    await carol.ok("send", "bob", "buy my stuff")
    declined = await bob.ok("decline", "carol")
    assert "declined @carol's request" in declined.out
    assert (await bob.ok("inbox", "--json")).json() == {"conversations": []}

    assert "following @alice" in (await bob.ok("follow", "alice")).out
    following = await bob.ok("following")
    assert re.search(r"@alice\s+│\s+Alice", following.out), following.out
    followers = (await alice.ok("followers", "--json")).json()["users"]
    assert [u["username"] for u in followers] == ["bob"]
    await bob.ok("unfollow", "alice")
    assert (await bob.ok("following", "--json")).json() == {"users": []}
    assert "nobody" in (await bob.ok("following")).err

    # Blocking someone whose request waits also declines it, as the web client does.
    await alice.ok("send", "bob", "hi, it's alice")
    blocked = await bob.ok("block", "alice", "--json")
    assert blocked.json() == {"action": "block", "user": "alice", "ok": True}
    assert (await bob.ok("inbox", "--json")).json() == {"conversations": []}
    listed = await bob.ok("blocked")
    assert "@alice" in listed.out
    # Whether the server refuses it or quietly drops it (so that a block cannot be
    # probed), it never reaches Bob.
    await alice.run("send", "bob", "are you there?")
    thread = (await bob.ok("read", "alice", "--json")).json()["messages"]
    assert "are you there?" not in [m["text"] for m in thread]
    await bob.ok("unblock", "alice")
    assert (await bob.ok("blocked", "--json")).json() == {"users": []}

    report = await bob.ok("report", "carol", "--reason", "spam [/] again")
    assert re.search(r"reported @carol to the admins \(report \d+\)", report.out)
    receipt = (await bob.ok("report", "carol", "--json")).json()
    assert receipt["user"] == "carol"
    assert isinstance(receipt["report"]["id"], int)
    self_block = await bob.run("block", "bob")
    assert self_block.code == 1
    assert self_block.err.strip() == "error: you cannot block yourself"


async def test_inbox_counts_unread_and_read_marks_them_read_unless_told_not_to(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice")
    await bob.signup("bob")
    for text in ("one", "two", "three"):
        await alice.ok("send", "bob", text)

    def unread(listing: dict[str, list[dict[str, object]]]) -> int:
        (conversation,) = listing["conversations"]
        count = conversation["unread"]
        assert isinstance(count, int)
        return count

    assert unread((await bob.ok("inbox", "--json")).json()) == 3
    row = next(line for line in (await bob.ok("inbox")).out.splitlines() if "@alice" in line)
    assert re.search(r"\b3\b", row)
    await bob.ok("read", "alice", "--keep-unread")
    assert unread((await bob.ok("inbox", "--json")).json()) == 3
    await bob.ok("read", "alice", "--limit", "1")
    assert unread((await bob.ok("inbox", "--json")).json()) == 0
    await alice.ok("send", "bob", "four")
    assert unread((await bob.ok("inbox", "--json")).json()) == 1


async def test_what_reaches_the_terminal_is_reported_delivered(
    server_url: str, terminals: Terminals
) -> None:
    """``inbox``, ``read --keep-unread`` and ``listen`` say what reached this device,
    so the sender sees it delivered (here, through her own ``inbox --json``)."""
    alice = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice.signup("alice")
    await bob.signup("bob")
    await bob.ok("follow", "alice")  # her messages reach his inbox, not his requests

    async def positions() -> tuple[object, object]:
        (conversation,) = (await alice.ok("inbox", "--json")).json()["conversations"]
        return conversation["peer_read_up_to"], conversation["peer_delivered_up_to"]

    first = (await alice.ok("send", "bob", "one", "--json")).json()["message"]["id"]
    assert await positions() == (0, 0)
    await bob.ok("inbox")
    assert await positions() == (0, first)
    second = (await alice.ok("send", "bob", "two", "--json")).json()["message"]["id"]
    await bob.ok("read", "alice", "--keep-unread")
    assert await positions() == (0, second)

    # Listening, bob's terminal acknowledges each message as it arrives, and alice's
    # listening terminal hears of it.
    hers = await alice.start("listen")
    await hers.wait_for("listening as @alice", stream="err")
    his = await bob.start("listen")
    await his.wait_for("listening as @bob", stream="err")
    await alice.ok("send", "bob", "three")
    await his.wait_for("@alice: three")
    await hers.wait_for("your messages reached @bob")
    _, delivered = await positions()
    assert isinstance(delivered, int)
    assert delivered > second
    await bob.ok("read", "alice")
    await hers.wait_for("@bob read your messages")
    assert await positions() == (delivered, delivered)
    assert await his.stop() == 0
    assert await hers.stop() == 0
