"""``ringfence settings show`` and ``ringfence settings set KEY=VALUE ...``.

The server is the only judge of a setting: ``set`` sends what you typed as one partial
update (the same ``PATCH /api/v1/me/settings`` the web client's Privacy page sends) and
prints the server's own message when it refuses a value. The only thing done here is
to give each value the JSON type the server holds for that key (``true``/``false`` for
a switch, ``a,b`` for a list), read from your current settings, so any setting the
server has, including ones added after this client, can be set.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ringfence.client.api import RingfenceClient
from ringfence.client.output import Output, plain
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
from ringfence.client.session import DEFAULT_PROFILE

__all__ = ["coerce", "parse_assignments", "register", "settings_app"]

settings_app = typer.Typer(
    help=(
        "Your privacy settings: who may call you, whether anyone may connect to you "
        "directly, and read receipts and typing indicators."
    ),
    no_args_is_help=True,
)

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

# What each known setting means, for people reading `settings show`.
_MEANING = {
    "calls_enabled": "anyone may call you at all",
    "call_audience": "who may call you (following, verified, everyone; empty: nobody)",
    "direct_connections": "who may connect to you directly and see your IP address",
    "silence_unknown_callers": "callers outside your audience don't ring: recorded as missed",
    "read_receipts": "people see when you've read their messages (and you see theirs)",
    "typing_indicators": "people see when you're typing to them (and you see theirs)",
}


def parse_assignments(pairs: list[str]) -> list[tuple[str, str]]:
    """``["a=1", "b=x,y"]`` → ``[("a", "1"), ("b", "x,y")]``; a usage error for a pair
    without ``=``, with an empty key, or a key given twice."""
    parsed: list[tuple[str, str]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"expected KEY=VALUE, not {pair!r}", EXIT_USAGE)
        if any(key == seen for seen, _ in parsed):
            raise CliError(f"{key} is given twice", EXIT_USAGE)
        parsed.append((key, value.strip()))
    return parsed


def coerce(value: str, current: Any) -> Any:
    """The JSON value to send for ``value``, shaped like the setting's ``current``
    value. What cannot be read that way is sent as the string it is, for the server to
    refuse in its own words."""
    if isinstance(current, bool):
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return value
    if isinstance(current, list):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(current, int):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(plain(v) for v in value) if value else "(nobody)"
    return plain(value)


def settings_table(settings: dict[str, Any]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Setting", no_wrap=True)
    table.add_column("Value")
    table.add_column("Meaning", style="dim")
    for key, value in settings.items():
        table.add_row(
            Text(plain(key), style="bold"),
            Text(show_value(value)),
            Text(_MEANING.get(key, "")),
        )
    return table


@settings_app.command("show")
def show_command(
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Your settings as the server holds them."""
    out = Output(json_mode=json_)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        settings = (await rf.me())["settings"]
        if out.json:
            out.document({"settings": settings})
        else:
            out.render(settings_table(settings))
        return 0

    with_client(out, server, token_file, profile, work)


@settings_app.command("set")
def set_command(
    assignments: Annotated[
        list[str],
        typer.Argument(
            help="KEY=VALUE pairs, e.g. calls_enabled=false call_audience=following,verified "
            "direct_connections=nobody silence_unknown_callers=true",
            show_default=False,
        ),
    ],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Change settings, all in one update: either every change is saved or none is."""
    out = Output(json_mode=json_)
    try:
        pairs = parse_assignments(assignments)
    except CliError as exc:
        fail(out, exc)

    async def work(rf: RingfenceClient, _account: Account) -> int:
        current: dict[str, Any] = (await rf.me())["settings"]
        changes = {key: coerce(value, current.get(key)) for key, value in pairs}
        settings = await rf.patch_settings(changes)
        if out.json:
            out.document({"settings": settings})
        else:
            out.show("saved")
            out.render(settings_table(dict(settings)))
        return 0

    with_client(out, server, token_file, profile, work)


def register(app: typer.Typer) -> None:
    app.add_typer(settings_app, name="settings")
