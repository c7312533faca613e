"""Sessions from a terminal, against a real ``ringfence serve``: ``signup``, ``login``,
``logout``, ``whoami``, the session file and ``--profile``, and how failures read.

Every command is a child process with a home of its own; the password always comes on
standard input, never as an argument.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path

import httpx
import pytest

from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import (
    PASSWORD,
    RINGFENCE,
    Processes,
    Terminals,
    start_serve,
)
from tests.serve import free_port

pytestmark = pytest.mark.integration

# The real server, and people at terminals (shared with the other test_cli_* modules).
processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_signup_keeps_a_private_session_that_the_other_commands_use(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    ran = await alice.signup("alice", "--display-name", "Alice")
    assert "signed up as Alice (@alice)" in ran.out

    session = alice.session_file()
    assert mode(session) == 0o600
    assert mode(session.parent) == 0o700
    token = json.loads(session.read_text())["token"]
    assert token not in ran.out + ran.err  # the token is never shown

    me = (await alice.ok("whoami", "--json")).json()
    assert me["user"]["username"] == "alice"
    assert me["server"] == server_url
    assert token not in str(me)

    # Nothing was passed but the password on stdin: the session did the rest.
    inbox = await alice.ok("inbox", "--json")
    assert inbox.json() == {"conversations": []}


async def test_a_session_file_others_can_read_is_refused(
    server_url: str, terminals: Terminals
) -> None:
    alice = terminals("alice", server_url)
    await alice.signup("alice")
    session = alice.session_file()
    token = json.loads(session.read_text())["token"]

    for loose in (0o644, 0o640, 0o604, 0o620):
        session.chmod(loose)
        ran = await alice.run("inbox")
        assert ran.code == 2, str(ran)
        assert "refusing to use" in ran.err
        assert "chmod 600" in ran.err
        assert ran.out == ""
        assert token not in ran.err

    session.chmod(0o600)
    await alice.ok("inbox")

    # Signing out still works on an exposed file: revoking a token that may have
    # leaked is the one safe thing to do with it.
    session.chmod(0o644)
    await alice.ok("logout")
    assert not session.exists()
    async with httpx.AsyncClient(base_url=server_url) as http:
        gone = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


async def test_profiles_keep_two_accounts_apart(server_url: str, terminals: Terminals) -> None:
    me = terminals("me", server_url)
    await me.signup("alice")
    await me.signup("bob", "--profile", "work")
    assert mode(me.session_file("work")) == 0o600

    assert (await me.ok("whoami", "--json")).json()["user"]["username"] == "alice"
    work = (await me.ok("whoami", "--profile", "work", "--json")).json()
    assert (work["user"]["username"], work["profile"]) == ("bob", "work")

    # RINGFENCE_PROFILE picks one too.
    env = me.env(RINGFENCE_PROFILE="work")
    assert "@bob" in (await me.ok("whoami", env=env)).out

    await me.ok("send", "bob", "from my personal account")
    inbox = (await me.ok("inbox", "--profile", "work", "--json")).json()
    assert [c["user"]["username"] for c in inbox["conversations"]] == ["alice"]

    # A profile in use is not silently overwritten (its token would be orphaned).
    again = await me.run(
        "login", "carol", "--server", server_url, "--password-stdin", stdin=PASSWORD
    )
    assert again.code == 2
    assert "already signed in as @alice" in again.err

    await me.ok("logout", "--profile", "work")
    assert not me.session_file("work").exists()
    assert me.session_file().exists()
    signed_out = await me.run("whoami", "--profile", "work")
    assert signed_out.code == 2
    assert "not signed in (profile work)" in signed_out.err
    bad = await me.run("whoami", "--profile", "../escape")
    assert bad.code == 2
    assert "profile names" in bad.err


async def test_login_reads_the_password_from_stdin_and_says_when_it_is_wrong(
    server_url: str, terminals: Terminals
) -> None:
    setup = terminals("setup", server_url)
    await setup.signup("alice")
    laptop = terminals("laptop", server_url)

    wrong = await laptop.run(
        "login", "alice", "--server", server_url, "--password-stdin", stdin="not it at all\n"
    )
    assert wrong.code == 1
    assert wrong.err.strip() == "error: wrong username or password"
    assert not laptop.session_file().exists()

    # Without --password-stdin, and with no terminal to ask on: a usage error, not a hang.
    no_tty = await laptop.run("login", "alice", "--server", server_url)
    assert no_tty.code == 2
    assert "--password-stdin" in no_tty.err

    ran = await laptop.ok(
        "login", "alice", "--server", server_url, "--password-stdin", "--json", stdin=PASSWORD
    )
    assert ran.json()["user"]["username"] == "alice"
    assert "token" not in ran.out
    assert mode(laptop.session_file()) == 0o600

    # The default place when XDG_CONFIG_HOME is unset: ~/.config/ringfence.
    env = laptop.env()
    del env["XDG_CONFIG_HOME"]
    await laptop.ok(
        "login", "alice", "--server", server_url, "--password-stdin", env=env, stdin=PASSWORD
    )
    assert mode(laptop.home / ".config" / "ringfence" / "sessions" / "default.json") == 0o600


async def test_failures_are_one_line_with_the_right_status(
    server_url: str, terminals: Terminals, tmp_path: Path
) -> None:
    alice = terminals("alice", server_url)

    not_signed_in = await alice.run("inbox")
    assert not_signed_in.code == 2
    assert "not signed in; run: ringfence login USERNAME --server URL" in not_signed_in.err

    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = await alice.run(
        "signup", "alice", "--server", nowhere, "--password-stdin", stdin=PASSWORD
    )
    assert unreachable.code == 1
    assert unreachable.err.startswith(f"error: cannot reach {nowhere}")
    assert len(unreachable.err.strip().splitlines()) == 1

    taken = terminals("taken", server_url)
    await alice.signup("alice")
    refused = await taken.run(
        "signup", "alice", "--server", server_url, "--password-stdin", stdin=PASSWORD
    )
    assert refused.code == 1
    assert refused.err.strip() == "error: that username is taken"

    short = await taken.run(
        "signup", "shorty", "--server", server_url, "--password-stdin", stdin="short\n"
    )
    assert short.code == 1
    assert "password" in short.err  # the server's own words about what is wrong

    # A stored token is never sent to another server.
    elsewhere = await alice.run("inbox", "--server", nowhere)
    assert elsewhere.code == 2
    assert f"signed in on {server_url}, not {nowhere}" in elsewhere.err

    missing = await alice.run("send", "bob")
    assert missing.code == 2  # Typer's own usage error: a missing argument
    nobody = await alice.run("send", "nobody_here", "hello")
    assert nobody.code == 1
    assert nobody.err.strip() == "error: no such user"
    bad_url = await alice.run("login", "alice", "--server", "ftp://x", "--password-stdin")
    assert bad_url.code == 2

    # --token-file keeps working, for any command, with --server.
    token = json.loads(alice.session_file().read_text())["token"]
    token_file = tmp_path / "alice.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    other = terminals("other", server_url)
    via_file = await other.ok(
        "inbox", "--server", server_url, "--token-file", str(token_file), "--json"
    )
    assert via_file.json() == {"conversations": []}
    no_server = await other.run("inbox", "--token-file", str(token_file))
    assert no_server.code == 2
    assert "--token-file needs --server" in no_server.err

    # Signed out elsewhere (the token revoked): the next command says to sign in again.
    await alice.ok("logout")
    revoked = await other.run("inbox", "--server", server_url, "--token-file", str(token_file))
    assert revoked.code == 1
    assert "sign in again" in revoked.err


async def test_rate_limited_login_says_how_long_to_wait(
    processes: Processes, tmp_path: Path, database_url: str, terminals: Terminals
) -> None:
    url = await start_serve(
        processes, tmp_path, database_url, RINGFENCE_LOGIN_ATTEMPTS_PER_ADDRESS="2"
    )
    alice = terminals("alice", url)
    await alice.signup("alice")
    laptop = terminals("laptop", url)
    args = ("login", "alice", "--server", url, "--password-stdin")
    for _ in range(2):
        assert (await laptop.run(*args, stdin="wrong password\n")).code == 1
    limited = await laptop.run(*args, stdin=PASSWORD)
    assert limited.code == 1, str(limited)
    assert "too many attempts" in limited.err
    assert re.search(r"\(retry in \d+s\)$", limited.err.strip()), limited.err
    assert len(limited.err.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
async def test_colour_only_on_a_terminal(server_url: str, terminals: Terminals) -> None:
    alice = terminals("alice", server_url)
    await alice.signup("alice", "--display-name", "Alice")
    piped = await alice.ok("settings", "show")
    assert "\x1b[" not in piped.out + piped.err
    # The same command with a terminal as its standard output (script(1) gives it one).
    env = alice.env(TERM="xterm-256color")
    del env["COLUMNS"]
    on_tty = await alice.ok(
        "-qec", f"{RINGFENCE} settings show", "/dev/null", env=env, program="script"
    )
    assert "\x1b[" in on_tty.out  # Rich coloured it
    assert "calls_enabled" in re.sub(r"\x1b\[[0-9;]*m", "", on_tty.out)
