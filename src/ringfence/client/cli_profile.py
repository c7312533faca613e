"""``ringfence rename``, ``password``, ``sessions``, ``signout``, ``export`` and
``delete-account``: the account page from a terminal.

``password`` asks for the current and the new password without echo, or reads them
from the first two lines of standard input with ``--password-stdin``; neither is
ever an argument. Changing it signs out every other session of the account.

``delete-account`` asks for the password the same way, then for the username typed
out as confirmation (from the next line of standard input with ``--password-stdin``);
``--yes`` skips the confirmation, never the password. Once the server has deleted the
account, the profile's stored session file is deleted too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ringfence.client.api import RingfenceClient, SessionInfo
from ringfence.client.cli_account import PasswordStdinOpt, read_password, read_passwords
from ringfence.client.output import Output, local_time, plain, user_label
from ringfence.client.runner import (
    EXIT_USAGE,
    Account,
    CliError,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    TokenFileOpt,
    fail,
    with_client,
)
from ringfence.client.session import DEFAULT_PROFILE, SessionStore

__all__ = ["register"]


def rename_command(
    display_name: Annotated[str, typer.Argument(help="Your new display name.", show_default=False)],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Change your display name: everyone you talk with sees the new one at once."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        user = await rf.rename(display_name)
        if out.json:
            out.document({"user": user})
        else:
            out.show(f"you are now {user_label(user)}")
        return 0

    with_client(out, server, token_file, profile, work)


def password_command(
    password_stdin: PasswordStdinOpt = False,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Change your password. Every other session of yours is signed out."""
    out = Output(json_mode=json_)
    try:
        current, new = read_passwords(
            password_stdin, ["Current password: ", "New password: "], confirm=True
        )
    except CliError as exc:
        fail(out, exc)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        await rf.change_password(current, new)
        if out.json:
            out.document({"ok": True})
        else:
            out.show("password changed; your other sessions are signed out")
        return 0

    with_client(out, server, token_file, profile, work)


def _sessions_table(sessions: list[SessionInfo]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Id", "Device", "Signed in", "Last used", ""):
        table.add_column(column, no_wrap=column != "Device")
    for session in sessions:
        table.add_row(
            str(session["id"]),
            plain(session["device"]),
            Text(local_time(session["created_at"]), style="dim"),
            Text(local_time(session["last_seen_at"]), style="dim"),
            Text("this one", style="bold") if session["current"] else "",
        )
    return table


def sessions_command(
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Your signed-in devices (no addresses are kept). Sign one out: ringfence signout ID."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        sessions = await rf.sessions()
        if out.json:
            out.document({"sessions": sessions})
        else:
            out.render(_sessions_table(sessions))
        return 0

    with_client(out, server, token_file, profile, work)


def signout_command(
    session_id: Annotated[
        int,
        typer.Argument(
            min=1, help="The session's id, from: ringfence sessions.", show_default=False
        ),
    ],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Sign one of your sessions out at once (its open connections close too)."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        await rf.end_session(session_id)
        if out.json:
            out.document({"session": session_id, "signed_out": True})
        else:
            out.show(f"session {session_id} is signed out")
        return 0

    with_client(out, server, token_file, profile, work)


def export_command(
    output: Annotated[
        Path,
        typer.Argument(
            help="The file to write (it must not exist yet); - for standard output.",
            show_default=False,
        ),
    ],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
) -> None:
    """Download your data: account, settings, follows, blocks and every message you can
    see, as JSON. The file is readable by you alone."""
    out = Output(json_mode=False)
    to_stdout = str(output) == "-"
    if not to_stdout and output.exists():
        fail(out, CliError(f"{output} exists already; choose another file", EXIT_USAGE))

    async def work(rf: RingfenceClient, _account: Account) -> int:
        data = await rf.export()
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        if to_stdout:
            sys.stdout.write(text)
            return 0
        # Created for its owner only: it holds every message of the account.
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        conversations = data.get("conversations", [])
        count = sum(len(c["messages"]) for c in conversations)
        out.show(f"wrote {output}: {count} messages in {len(conversations)} conversations")
        return 0

    with_client(out, server, token_file, profile, work)


def _confirm_deletion(username: str, from_stdin: bool) -> None:
    """Have the person type their username: from the terminal, or from the line of
    standard input after the password's. Raises CliError (nothing deleted) unless it
    matches."""
    prompt = (
        f"This deletes @{plain(username)} for good: your sessions, settings, follows and "
        "blocks. Messages you sent stay with the people who got them, from "
        '"Deleted account".\nType your username to confirm: '
    )
    if not from_stdin and not sys.stdin.isatty():
        raise CliError("not deleted: nobody to confirm it; use --yes", EXIT_USAGE)
    # On stderr, so that --json keeps standard output for the one JSON document.
    sys.stderr.write(prompt)
    sys.stderr.flush()
    typed = sys.stdin.readline()
    if not typed.endswith("\n") and not from_stdin:
        sys.stderr.write("\n")
    if typed.strip().removeprefix("@") != username:
        raise CliError(f"not deleted: that is not @{username}", EXIT_USAGE)


def delete_account_command(
    password_stdin: PasswordStdinOpt = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Do not ask for the username as confirmation (the password still is)."
        ),
    ] = False,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Delete your account for good. Every session of yours is signed out; your
    settings, follows and blocks are deleted; messages you sent stay with the people
    who got them, shown as from "Deleted account". Your username stays taken for a
    while. The password is asked for, and the username as confirmation (--yes skips
    only that)."""
    out = Output(json_mode=json_)
    try:
        password = read_password(password_stdin, confirm=False)
    except CliError as exc:
        fail(out, exc)

    async def work(rf: RingfenceClient, account: Account) -> int:
        username = str((await rf.me())["user"]["username"])
        if not yes:
            _confirm_deletion(username, password_stdin)
        await rf.delete_account(password)
        forgot = account.profile is not None and SessionStore().delete(account.profile)
        if out.json:
            out.document({"deleted": username, "session_file_deleted": forgot})
        else:
            out.show(f"deleted @{username}; every session of it is signed out")
            if forgot:
                out.note(f"forgot the stored session of profile {account.profile}")
        return 0

    with_client(out, server, token_file, profile, work)


def register(app: typer.Typer) -> None:
    app.command("rename")(rename_command)
    app.command("password")(password_command)
    app.command("sessions")(sessions_command)
    app.command("signout")(signout_command)
    app.command("export")(export_command)
    app.command("delete-account")(delete_account_command)
