"""What every terminal command shares: its options, whose session it uses, and how a
failure becomes one line on stderr and an exit status.

Exit statuses: 0 done; 1 the server refused (its own message is shown, with the wait
for a 429) or could not be reached; 2 a usage problem (a bad argument, no session, a
session file others can read). No refusal, wrong password or unreachable server ever
prints a traceback. (``call`` and ``answer`` keep their own, documented statuses.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from websockets.exceptions import InvalidHandshake, InvalidURI

from ringfence.client.api import RingfenceClient, RingfenceError, normalize_base_url
from ringfence.client.events import EventStreamClosed
from ringfence.client.output import Output
from ringfence.client.session import (
    DEFAULT_PROFILE,
    SessionFileError,
    SessionStore,
    check_profile,
)

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Account",
    "CliError",
    "JsonOpt",
    "ProfileOpt",
    "ServerOpt",
    "TokenFileOpt",
    "explain",
    "fail",
    "read_token",
    "resolve_account",
    "run_async",
    "with_client",
]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- options ------------------------------------------------------------------------------

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="RINGFENCE_SERVER",
        help="Server URL, e.g. https://chat.example.org (default: your session's server)",
        show_default=False,
    ),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="RINGFENCE_TOKEN_FILE",
        help="Use the token in this file (chmod 600) instead of your stored session; "
        "needs --server.",
        dir_okay=False,
        show_default=False,
    ),
]
ProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        envvar="RINGFENCE_PROFILE",
        help="Which stored session to use: keeps several accounts apart.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of text for people.")
]


# --- whose session ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """Where to send requests, and the token to send with them (never shown)."""

    server: str
    token: str = field(repr=False)
    username: str | None = None
    profile: str | None = None


def check_server(server: str) -> str:
    try:
        return normalize_base_url(server)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def read_token(path: Path, warn: Callable[[str], None]) -> str:
    """The token in ``path`` (whitespace stripped). Warns, without refusing, when other
    users may read the file: a file you made yourself is your call to make."""
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read token file {path}: {exc.strerror}", EXIT_USAGE) from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"token file {path} is not text", EXIT_USAGE) from exc
    if not token:
        raise CliError(f"token file {path} is empty", EXIT_USAGE)
    if os.name == "posix" and mode & (stat.S_IRGRP | stat.S_IROTH):
        warn(f"warning: {path} is readable by other users; run: chmod 600 {path}")
    return token


def resolve_account(
    server: str | None,
    token_file: Path | None,
    profile: str,
    *,
    warn: Callable[[str], None],
    store: SessionStore | None = None,
) -> Account:
    """``--token-file`` with ``--server`` when given; otherwise the profile's stored
    session. A stored token is only ever sent to the server it came from: naming
    another ``--server`` is refused rather than handing that server your token."""
    if token_file is not None:
        if not server:
            raise CliError("--token-file needs --server URL", EXIT_USAGE)
        return Account(check_server(server), read_token(token_file, warn))
    try:
        check_profile(profile)
        session = (store or SessionStore()).load(profile)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except SessionFileError as exc:
        raise CliError(exc.message, EXIT_USAGE) from exc
    if session is None:
        which = "" if profile == DEFAULT_PROFILE else f" (profile {profile})"
        flag = "" if profile == DEFAULT_PROFILE else f" --profile {profile}"
        raise CliError(
            f"not signed in{which}; run: ringfence login USERNAME --server URL{flag}",
            EXIT_USAGE,
        )
    if server and check_server(server) != normalize_base_url(session.server):
        raise CliError(
            f"profile {profile} is signed in on {session.server}, not {server}; "
            "use another --profile, or --token-file",
            EXIT_USAGE,
        )
    return Account(session.server, session.token, session.username, profile)


# --- failures -----------------------------------------------------------------------------


def _wait(seconds: float | None) -> str:
    return f" (retry in {math.ceil(seconds)}s)" if seconds else ""


def explain(exc: BaseException, server: str | None) -> CliError | None:
    """The one line (and exit status) for an expected failure; None for a bug."""
    where = server or "the server"
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, RingfenceError):
        detail = exc.detail or exc.code
        if exc.status == 401 and exc.code != "invalid_credentials":
            return CliError(
                f"the server did not accept your session ({detail}); sign in again with: "
                "ringfence login USERNAME",
                EXIT_REFUSED,
            )
        if exc.status in (429, 503):
            return CliError(f"{detail}{_wait(exc.retry_after_s)}", EXIT_REFUSED)
        return CliError(detail, EXIT_REFUSED)
    if isinstance(exc, EventStreamClosed):
        return CliError(exc.reason, EXIT_REFUSED)
    if isinstance(exc, json.JSONDecodeError):
        return CliError(f"{where} did not answer like a Ringfence server", EXIT_REFUSED)
    if isinstance(exc, InvalidURI):
        return CliError(f"bad server URL: {where}", EXIT_USAGE)
    if isinstance(exc, httpx.TransportError | OSError | TimeoutError | InvalidHandshake):
        why = str(exc).strip() or type(exc).__name__
        return CliError(f"cannot reach {where}: {why}", EXIT_REFUSED)
    return None


def fail(out: Output, error: CliError) -> NoReturn:
    out.error(error.message)
    raise typer.Exit(error.code)


def run_async(out: Output, work: Awaitable[int | None], *, server: str | None) -> NoReturn:
    """Run a command's coroutine and exit with its status, turning every expected
    failure into one line on stderr."""

    async def main() -> int | None:
        return await work

    # The library's warnings (a stream closed for good, say) would otherwise reach
    # stderr through logging's last resort, doubling the one line said here.
    logging.getLogger("ringfence").addHandler(logging.NullHandler())

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        out.note("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        error = explain(exc, server)
        if error is None:
            raise
        fail(out, error)
    raise typer.Exit(code or EXIT_OK)


def with_client(
    out: Output,
    server: str | None,
    token_file: Path | None,
    profile: str,
    work: Callable[[RingfenceClient, Account], Awaitable[int | None]],
) -> NoReturn:
    """Resolve the session, open a client for it, and run ``work`` with both."""
    try:
        account = resolve_account(server, token_file, profile, warn=out.note)
    except CliError as exc:
        fail(out, exc)

    async def go() -> int | None:
        async with RingfenceClient(account.server, account.token) as rf:
            return await work(rf, account)

    run_async(out, go(), server=account.server)
