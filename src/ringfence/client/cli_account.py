"""``ringfence signup``, ``login``, ``logout`` and ``whoami``: sessions from a terminal.

The password is asked for without echo, or read from standard input with
``--password-stdin`` (for scripts and password managers); it is never an argument,
where ``ps`` and shell history would keep it. The session token the server hands back
goes into the profile's session file (see :mod:`ringfence.client.session`) and is never
printed, not even with ``--json``.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, NoReturn

import httpx
import typer

from ringfence.client.api import RingfenceClient, RingfenceError, Session
from ringfence.client.output import Output, user_label
from ringfence.client.runner import (
    EXIT_USAGE,
    CliError,
    JsonOpt,
    ProfileOpt,
    ServerOpt,
    check_server,
    fail,
    resolve_account,
    run_async,
)
from ringfence.client.session import (
    DEFAULT_PROFILE,
    SessionFileError,
    SessionStore,
    StoredSession,
    check_profile,
)

__all__ = ["register"]

UsernameArg = Annotated[str, typer.Argument(help="Your username.", show_default=False)]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def read_passwords(from_stdin: bool, prompts: list[str], *, confirm: bool) -> list[str]:
    """One password per prompt: from as many lines of standard input, or asked for
    without echo (the last one twice when ``confirm``)."""
    if from_stdin:
        lines = [sys.stdin.readline() for _ in prompts]
        passwords = [line.removesuffix("\n").removesuffix("\r") for line in lines]
        if not all(passwords):
            wanted = (
                "a password" if len(prompts) == 1 else f"{len(prompts)} passwords, a line each,"
            )
            raise CliError(f"expected {wanted} on standard input", EXIT_USAGE)
        return passwords
    if not sys.stdin.isatty():
        raise CliError(
            "standard input is not a terminal, so the password cannot be asked for; "
            "use --password-stdin",
            EXIT_USAGE,
        )
    try:
        passwords = [getpass.getpass(prompt) for prompt in prompts]
        if confirm and getpass.getpass(f"Repeat the {prompts[-1].lower()}") != passwords[-1]:
            raise CliError("the two passwords differ", EXIT_USAGE)
    except EOFError as exc:
        raise CliError("no password given", EXIT_USAGE) from exc
    if not all(passwords):
        raise CliError("no password given", EXIT_USAGE)
    return passwords


def read_password(from_stdin: bool, *, confirm: bool) -> str:
    """The password, from stdin's first line or asked for without echo."""
    return read_passwords(from_stdin, ["Password: "], confirm=confirm)[0]


def _profile_flag(profile: str) -> str:
    return "" if profile == DEFAULT_PROFILE else f" --profile {profile}"


def _free_profile(store: SessionStore, profile: str) -> None:
    """Refuse to overwrite a signed-in profile: its token would stay valid on the server
    with nobody left holding it to sign it out."""
    try:
        existing = store.load(profile, allow_exposed=True)
    except SessionFileError:
        existing = None  # garbled: nothing usable to lose
    if existing is not None:
        raise CliError(
            f"profile {profile} is already signed in as @{existing.username} on "
            f"{existing.server}; run: ringfence logout{_profile_flag(profile)} "
            "(or use --profile NAME for another account)",
            EXIT_USAGE,
        )


def _sign_in(
    out: Output,
    *,
    server: str | None,
    profile: str,
    username: str,
    password_stdin: bool,
    new_account: bool,
    display_name: str | None = None,
) -> NoReturn:
    store = SessionStore()
    try:
        check_profile(profile)
        if not server:
            raise CliError("which server? give --server URL (or set RINGFENCE_SERVER)", EXIT_USAGE)
        url = check_server(server)
        _free_profile(store, profile)
        password = read_password(password_stdin, confirm=new_account and not password_stdin)
    except ValueError as exc:
        fail(out, CliError(str(exc), EXIT_USAGE))
    except CliError as exc:
        fail(out, exc)

    async def go() -> int:
        async with RingfenceClient(url) as rf:
            session: Session
            if new_account:
                session = await rf.register(username, password, display_name)
            else:
                session = await rf.login(username, password)
        user = session["user"]
        path = store.save(profile, StoredSession(url, user["username"], session["token"]))
        if out.json:
            out.document({"user": user, "server": url, "profile": profile})
        else:
            verb = "signed up" if new_account else "signed in"
            out.show(f"{verb} as {user_label(user)} on {url}")
            out.note(f"session saved to {path}")
        return 0

    run_async(out, go(), server=url)


def signup_command(
    username: UsernameArg,
    server: ServerOpt = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="The name other people see.")
    ] = None,
    password_stdin: PasswordStdinOpt = False,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Create an account on a server and sign in to it."""
    _sign_in(
        Output(json_mode=json_),
        server=server,
        profile=profile,
        username=username,
        password_stdin=password_stdin,
        new_account=True,
        display_name=display_name,
    )


def login_command(
    username: UsernameArg,
    server: ServerOpt = None,
    password_stdin: PasswordStdinOpt = False,
    profile: ProfileOpt = DEFAULT_PROFILE,
    json_: JsonOpt = False,
) -> None:
    """Sign in, and keep the session for the other commands."""
    _sign_in(
        Output(json_mode=json_),
        server=server,
        profile=profile,
        username=username,
        password_stdin=password_stdin,
        new_account=False,
    )


def logout_command(
    profile: ProfileOpt = DEFAULT_PROFILE,
    forget: Annotated[
        bool,
        typer.Option(
            "--forget",
            help="Delete the stored session even when the server cannot be told "
            "(the token then stays valid on the server until it expires).",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Sign out: the server revokes the session, then the session file is deleted.

    A session file that others could read is still used here, to revoke its token.
    """
    out = Output(json_mode=json_)
    store = SessionStore()
    try:
        check_profile(profile)
        session = store.load(profile, allow_exposed=True)
    except ValueError as exc:
        fail(out, CliError(str(exc), EXIT_USAGE))
    except SessionFileError as exc:
        fail(out, CliError(exc.message, EXIT_USAGE))
    if session is None:
        fail(out, CliError(f"profile {profile} is not signed in", EXIT_USAGE))

    async def go() -> int:
        revoked = True
        async with RingfenceClient(session.server, session.token) as rf:
            try:
                await rf.logout()
            except RingfenceError as exc:
                if exc.status != 401:  # 401: already signed out there; just forget it
                    raise
            except (OSError, httpx.TransportError) as exc:
                if not forget:
                    raise
                revoked = False
                out.note(f"warning: could not tell {session.server} ({exc}); forgetting anyway")
        store.delete(profile)
        if out.json:
            out.document({"signed_out": session.username, "profile": profile, "revoked": revoked})
        else:
            out.show(f"signed out @{session.username} from {session.server}")
        return 0

    run_async(out, go(), server=session.server)


def whoami_command(profile: ProfileOpt = DEFAULT_PROFILE, json_: JsonOpt = False) -> None:
    """Who the stored session signs you in as, checked with the server."""
    out = Output(json_mode=json_)
    try:
        account = resolve_account(None, None, profile, warn=out.note)
    except CliError as exc:
        fail(out, exc)

    async def go() -> int:
        async with RingfenceClient(account.server, account.token) as rf:
            me = await rf.me()
        if out.json:
            out.document({"user": me["user"], "server": account.server, "profile": profile})
        else:
            out.show(f"{user_label(me['user'])} on {account.server} (profile {profile})")
        return 0

    run_async(out, go(), server=account.server)


def register(app: typer.Typer) -> None:
    app.command("signup")(signup_command)
    app.command("login")(login_command)
    app.command("logout")(logout_command)
    app.command("whoami")(whoami_command)
