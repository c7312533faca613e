"""The terminal client's commands. ``ringfence call`` and ``ringfence answer`` make
real WebRTC calls from a terminal (see :mod:`ringfence.client.cli_calling`);
``ringfence calls`` shows your call history. :func:`register` also adds the rest of
the terminal client from the sibling ``cli_*`` modules: sessions, messages, people,
settings and ``listen``.

The calling commands use your stored session (``ringfence login``), or ``--server``
with ``--token-file`` as before, and exit 0 when the call connected and ended
normally, 1 when it failed or never connected, 2 for a usage problem, 3 when the
server said no.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ringfence.client import (
    cli_account,
    cli_listen,
    cli_messages,
    cli_people,
    cli_profile,
    cli_settings,
)
from ringfence.client.api import CallHistoryItem, RingfenceClient
from ringfence.client.cli_calling import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Emit,
    console,
    describe,
    run,
    run_answer,
    run_call,
    safe_markup,
)
from ringfence.client.cli_media import MediaOptions, PlayOpt, RecordOpt, ToneOpt, VideoOpt
from ringfence.client.output import Output, call_label, local_time, user_label
from ringfence.client.runner import (
    Account,
    CliError,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    TokenFileOpt,
    resolve_account,
    with_client,
)
from ringfence.client.session import DEFAULT_PROFILE

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "call_label",
    "describe",
    "register",
]

DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        min=0.1,
        help="Hang up this many seconds after connecting (default: until Ctrl-C or the "
        "other side hangs up)",
        show_default=False,
    ),
]
ConnectTimeoutOpt = Annotated[
    float, typer.Option("--connect-timeout", min=1, help="Seconds media may take to connect.")
]


def history_table(items: list[CallHistoryItem]) -> Table:
    """Recent calls for people: when, with whom, and how it went (the web's words)."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("When", no_wrap=True)
    table.add_column("")
    table.add_column("Who")
    table.add_column("Call")
    for item in items:
        outgoing = item["direction"] == "outgoing"
        label = call_label(item["call"], outgoing=outgoing)
        missed = not outgoing and label.startswith("Missed")
        table.add_row(
            Text(local_time(item["created_at"]), style="dim"),
            Text("to" if outgoing else "from"),
            Text(user_label(item["peer"])),
            Text(label, style="red" if missed else ""),
        )
    return table


def _prepare(
    server: str | None, token_file: Path | None, profile: str, options: MediaOptions
) -> Account:
    try:
        options.check()
        return resolve_account(
            server, token_file, profile, warn=lambda text: console.print(Text(text, "yellow"))
        )
    except CliError as exc:
        console.print(f"[bold red]error:[/] {safe_markup(exc.message)}")
        raise typer.Exit(exc.code) from None


def _emitter(json_mode: bool) -> Emit | None:
    """With ``--json``: each step as one JSON line on stdout (people's lines stay on
    stderr, so a script reads only JSON)."""
    return Output(json_mode=True).line if json_mode else None


# --- commands -------------------------------------------------------------------------


def call_command(
    user: Annotated[str, typer.Argument(help="Username to call.", show_default=False)],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    play: PlayOpt = None,
    tone: ToneOpt = None,
    record: RecordOpt = None,
    video: VideoOpt = False,
    duration: DurationOpt = None,
    connect_timeout: ConnectTimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Call USER. Media is always relayed unless the server allows otherwise."""
    options = MediaOptions(play=play, tone=tone, video=video, record=record)
    account = _prepare(server, token_file, profile, options)
    run(
        lambda stop: run_call(
            server=account.server,
            token=account.token,
            username=user,
            options=options,
            duration=duration,
            connect_timeout=connect_timeout,
            stop=stop,
            emit=_emitter(json_),
        )
    )


def answer_command(
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    from_user: Annotated[
        str | None,
        typer.Option("--from", help="Only answer calls from this user (others keep ringing)."),
    ] = None,
    record: RecordOpt = None,
    play: PlayOpt = None,
    tone: ToneOpt = None,
    video: VideoOpt = False,
    duration: DurationOpt = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.1, help="Give up if no call arrives within this many seconds."
        ),
    ] = None,
    connect_timeout: ConnectTimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Wait for a call, accept it, and exit when it ends."""
    options = MediaOptions(play=play, tone=tone, video=video, record=record)
    account = _prepare(server, token_file, profile, options)
    run(
        lambda stop: run_answer(
            server=account.server,
            token=account.token,
            from_user=from_user,
            options=options,
            duration=duration,
            wait_timeout=timeout,
            connect_timeout=connect_timeout,
            stop=stop,
            emit=_emitter(json_),
        )
    )


def calls_command(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many calls.")] = 20,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Show your recent calls, newest first.

    A call answered but never connected shows as "Call didn't connect", no duration.
    """
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        items = await rf.call_history(limit=limit)
        if out.json:
            out.document({"calls": items})
        elif not items:
            out.note("no calls yet")
        else:
            out.render(history_table(items))
        return EXIT_OK

    with_client(out, server, token_file, profile, work)


def register(app: typer.Typer) -> None:
    """Add the terminal client's commands to the ``ringfence`` command."""
    cli_account.register(app)
    cli_profile.register(app)
    cli_messages.register(app)
    cli_people.register(app)
    cli_settings.register(app)
    cli_listen.register(app)
    app.command("call")(call_command)
    app.command("answer")(answer_command)
    app.command("calls")(calls_command)
