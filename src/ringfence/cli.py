"""The ``ringfence`` command: serve, admin tasks, and (later) calling from a terminal."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ringfence import __version__
from ringfence.client.cli import register as register_client_commands
from ringfence.config import ConfigError, Settings, load_settings

app = typer.Typer(
    name="ringfence",
    help="Direct messages and 1:1 calls that never reveal where you are.",
    no_args_is_help=True,
    add_completion=False,
)
admin_app = typer.Typer(help="Administrative tasks run against the server's database.")
app.add_typer(admin_app, name="admin")

# soft_wrap: messages hold commands and URLs people copy; never break them mid-word.
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML file of settings (also RINGFENCE_CONFIG).", show_default=False
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Directory for the SQLite database and secrets [default: ./ringfence-data]",
        show_default=False,
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        help="Database URL (also RINGFENCE_DATABASE_URL); default: SQLite in data dir.",
        show_default=False,
    ),
]


def _settings(flags: dict[str, Any], config: Path | None) -> Settings:
    try:
        return load_settings(flags, config)
    except ConfigError as exc:
        console.print(f"[bold red]ringfence: configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosqlite logs every statement with its parameters at debug level; message text
    # and password hashes have no business in a log, even a debug one.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger().level))


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address [default: 127.0.0.1]", show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port [default: 8080]", show_default=False)
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    public_url: Annotated[
        list[str] | None,
        typer.Option(
            help="Origin browsers use to reach this server (repeatable).", show_default=False
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error [default: info]", show_default=False),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="Certificate chain (PEM): serve HTTPS/WSS, and TURN over TLS.",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="Private key (PEM) of --tls-cert.", show_default=False)
    ] = None,
    tls_self_signed: Annotated[
        bool | None,
        typer.Option(
            "--tls-self-signed",
            help="Serve HTTPS with a self-signed certificate (for a LAN).",
            show_default=False,
        ),
    ] = None,
    turn_listen_ip: Annotated[
        str | None,
        typer.Option(
            help="Address the embedded relay listens on [default: the --host address]",
            show_default=False,
        ),
    ] = None,
    turn_external_ip: Annotated[
        str | None,
        typer.Option(
            help="Public address of the embedded relay, when behind NAT.", show_default=False
        ),
    ] = None,
    turn_host: Annotated[
        str | None,
        typer.Option(help="Host name to put in the relay's TURN URLs.", show_default=False),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Start Ringfence with its embedded defaults: SQLite in the data directory."""
    import uvicorn

    from ringfence.app import create_app, server_config
    from ringfence.gctuning import tune_for_server

    flags = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "database_url": database_url,
        "public_urls": public_url or None,
        "log_level": log_level,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_self_signed": tls_self_signed,
        "turn_listen_ip": turn_listen_ip,
        "turn_external_ip": turn_external_ip,
        "turn_host": turn_host,
    }
    settings = _settings(flags, config)
    _configure_logging(settings.log_level)
    if not settings.external_turn and shutil.which("turnserver") is None:
        from ringfence.turn.supervisor import TurnUnavailable

        console.print(f"[bold red]ringfence: cannot start[/]\n{TurnUnavailable()}")
        raise typer.Exit(1)
    _check_tls(settings)
    _check_database(settings)
    server = uvicorn.Server(server_config(create_app(settings), settings))
    tune_for_server()
    console.print(
        f"[bold]Ringfence {__version__}[/] on {settings.scheme}://{settings.host}:{settings.port} "
        f"(database: {_describe_db(settings)})"
    )
    server.run()
    if not server.started:
        raise typer.Exit(1)


def _check_database(settings: Settings) -> None:
    """Open the database and apply migrations before the server starts, so that a wrong
    URL or an unreachable server is one clear line rather than a start-up traceback."""
    from ringfence.storage.database import Database, DatabaseUnavailable

    async def check() -> None:
        db = Database(settings.effective_database_url)
        try:
            await db.start()
        finally:
            await db.close()

    try:
        asyncio.run(check())
    except DatabaseUnavailable as exc:
        console.print(f"[bold red]ringfence: cannot start[/]\n{exc}")
        raise typer.Exit(1) from exc


def _check_tls(settings: Settings) -> None:
    """Load the certificate before anything starts, so that a wrong file or a key that
    does not match is one clear line instead of a traceback from deep in uvicorn."""
    import ssl

    from ringfence.tls import tls_files

    try:
        files = tls_files(settings)
        if files is None:
            return
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(files.cert, files.key)
    except (OSError, ValueError, ssl.SSLError) as exc:
        where = "tls_self_signed" if settings.tls_self_signed else "tls_cert / tls_key"
        console.print(f"[bold red]ringfence: cannot start[/]\n{where}: {exc}")
        raise typer.Exit(2) from exc
    if files.self_signed:
        console.print(
            f"Serving HTTPS with a self-signed certificate ({files.cert}): browsers warn "
            "once; check that the fingerprint they show is this one:\n"
            f"  {_fingerprint(files.cert)}"
        )


def _fingerprint(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256())
    return "SHA-256 " + ":".join(f"{b:02X}" for b in digest)


def _describe_db(settings: Settings) -> str:
    if settings.database_url is None:
        return f"SQLite in {settings.data_dir}"
    return settings.database_url.split("://", 1)[0]  # never print credentials


def _admin(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    work: Callable[[Any], Awaitable[T]],
) -> T:
    """Run one admin task against the configured database."""
    from ringfence.app import build_admin_services
    from ringfence.services.errors import ServiceError
    from ringfence.storage.database import DatabaseUnavailable

    settings = _settings({"data_dir": data_dir, "database_url": database_url}, config)

    async def run() -> T:
        services = await build_admin_services(settings)
        try:
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(run())
    except ServiceError as exc:
        console.print(_plain(exc.detail, "error: "))
        raise typer.Exit(1) from exc
    except DatabaseUnavailable as exc:
        console.print(_plain(str(exc), "error: "))
        raise typer.Exit(1) from exc


def _plain(text: str, label: str = "", style: str = "bold red") -> Text:
    """User-supplied (or user-derived) text as Rich shows it: never read as markup, and
    with control and invisible characters made visible (ringfence.wire.text), so a
    report's reason cannot crash the command or send escape sequences to the
    terminal. Everything the admin commands print that came from a user goes
    through here; ``label`` is ours, in ``style``."""
    from ringfence.wire.text import printable

    shown = Text(printable(text, keep="\n"))
    return Text.assemble((label, style), shown) if label else shown


def _account_flag_command(
    set_flag: Callable[[Any, str, bool], Awaitable[Any]], value: bool, done: str, help_text: str
) -> Callable[..., None]:
    """One `ringfence admin` command that turns an account flag on or off."""

    def command(
        username: str,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        database_url: DatabaseOpt = None,
    ) -> None:
        user = _admin(config, data_dir, database_url, lambda s: set_flag(s, username, value))
        console.print(_plain(f"{user.username} {done}"), style="green")

    command.__doc__ = help_text
    return command


def _set_verified(services: Any, username: str, value: bool) -> Awaitable[Any]:
    return services.accounts.set_verified(username, value)  # type: ignore[no-any-return]


def _set_suspended(services: Any, username: str, value: bool) -> Awaitable[Any]:
    return services.moderation.set_suspended(username, value)  # type: ignore[no-any-return]


for _name, _setter, _value, _done, _help in (
    ("verify", _set_verified, True, "is now verified", "Give USERNAME the verified badge."),
    (
        "unverify",
        _set_verified,
        False,
        "is no longer verified",
        "Remove USERNAME's verified badge.",
    ),
    (
        "suspend",
        _set_suspended,
        True,
        "is suspended and signed out everywhere",
        "Suspend USERNAME: signed out everywhere; cannot log in, message or call. "
        "Open sockets close at once with redis_url set, else within ws_session_check_s.",
    ),
    ("unsuspend", _set_suspended, False, "is no longer suspended", "Lift USERNAME's suspension."),
):
    admin_app.command(_name)(_account_flag_command(_setter, _value, _done, _help))


@admin_app.command("reports")
def list_reports(
    include_resolved: Annotated[
        bool, typer.Option("--all", help="Include resolved reports.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """List reports of users, oldest open ones first."""
    from rich.table import Table

    rows = _admin(
        config,
        data_dir,
        database_url,
        lambda s: s.moderation.reports(include_resolved=include_resolved),
    )
    if not rows:
        console.print("no open reports" if not include_resolved else "no reports")
        return
    table = Table("id", "reported", "by", "when", "reason", "status")
    table.columns[4].overflow = "fold"  # a long word is wrapped, never cut short
    for r in rows:
        table.add_row(
            str(r.id),
            _plain(r.reported.username),
            _plain(r.reporter.username),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            _plain(r.reason or "-"),
            "resolved" if r.resolved_at else "open",
        )
    Console().print(table)


@admin_app.command()
def resolve(
    report_id: int,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Mark report REPORT_ID as dealt with."""
    _admin(config, data_dir, database_url, lambda s: s.moderation.resolve(report_id))
    console.print(f"[green]report #{report_id} resolved[/]")


@admin_app.command()
def migrate(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Apply pending database migrations (serve does this by itself at start-up)."""

    async def nothing(_services: Any) -> None:
        return None

    _admin(config, data_dir, database_url, nothing)
    console.print("[green]database is up to date[/]")


@app.command("turn-config")
def turn_config(
    external_ip: Annotated[
        str, typer.Option(help="Public address of the relay (what peers connect to).")
    ],
    listen_ip: Annotated[
        str | None,
        typer.Option(
            help="Address coturn listens on [default: the external IP]", show_default=False
        ),
    ] = None,
    relay_ip: Annotated[
        str | None,
        typer.Option(
            help="Address relayed traffic leaves from [default: the listen IP]", show_default=False
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="TURN port (UDP and TCP).")] = 3478,
    tls_port: Annotated[
        int | None,
        typer.Option(help="TURN-over-TLS port (needs --cert and --pkey).", show_default=False),
    ] = None,
    cert: Annotated[Path | None, typer.Option(help="TLS certificate chain (PEM).")] = None,
    pkey: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    min_port: Annotated[int, typer.Option(help="Lowest relay port.")] = 49160,
    max_port: Annotated[int, typer.Option(help="Highest relay port.")] = 65535,
    realm: Annotated[str, typer.Option(help="TURN realm (your domain).")] = "ringfence",
    secret_file: Annotated[
        Path | None,
        typer.Option(
            help="Shared secret, the same file RINGFENCE_TURN_SECRET_FILE names. "
            "Without it a new secret is generated.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print a hardened coturn configuration for a production relay.

    Relaying to private, loopback, link-local, multicast and IPv4-mapped addresses is
    refused, except the relay's own addresses (so that two relayed callers reach each
    other on a LAN, VPN or CGNAT address); TCP relays are off, and only Ringfence's
    short-lived credentials work.
    """
    from ringfence.turn.coturn_config import CoturnOptions, render
    from ringfence.turn.credentials import generate_secret, load_secret

    try:
        secret = load_secret(None, secret_file).decode() if secret_file else generate_secret()
        options = CoturnOptions(
            listen_ip=listen_ip or external_ip,
            relay_ip=relay_ip,
            external_ip=external_ip,
            port=port,
            tls_port=tls_port,
            # coturn resolves relative paths against its own working directory.
            cert_file=None if cert is None else cert.resolve(),
            pkey_file=None if pkey is None else pkey.resolve(),
            min_port=min_port,
            max_port=max_port,
            realm=realm,
            secret=secret,
        )
        text = render(options, production=True)
    except (ValueError, OSError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    host = f"[{external_ip}]" if ":" in external_ip else external_ip
    urls = [f"turn:{host}:{port}?transport=udp", f"turn:{host}:{port}?transport=tcp"]
    if tls_port:
        urls.append(f"turns:{host}:{tls_port}?transport=tcp")
    typer.echo(text)
    console.print(
        "Point Ringfence at this relay with:\n"
        f"  RINGFENCE_TURN_URLS={','.join(urls)}\n"
        "  RINGFENCE_TURN_SECRET_FILE=<a file holding the static-auth-secret above>",
        soft_wrap=True,
        markup=False,  # an IPv6 URL's [address] is not a style tag
    )
    if secret_file is None:
        console.print("[yellow]A new shared secret was generated into the configuration.[/]")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


register_client_commands(app)  # `ringfence call` and `ringfence answer`


def _click_error(exc: BaseException, kind: str) -> bool:
    """Whether ``exc`` is click's ``kind`` error. Typer vendors click in newer releases
    and uses the real one in older ones, so the class is recognised by name."""
    return any(cls.__name__ == kind for cls in type(exc).__mro__)


def main() -> None:
    """The `ringfence` command. A usage mistake (an unknown option, a missing argument)
    is one line on stderr and exit status 2, like every other error of the command,
    rather than a framed panel that scripts and people have to pick apart."""
    try:
        status = app(standalone_mode=False)
    except typer.Abort:
        console.print("ringfence: stopped")
        sys.exit(1)
    except Exception as exc:
        if _click_error(exc, "NoArgsIsHelpError"):
            sys.exit(2)  # a command without its arguments: the help is already shown
        if not _click_error(exc, "ClickException"):
            raise
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "ringfence"
        message = exc.format_message()  # type: ignore[attr-defined]
        hint = f" (see {where} --help)" if _click_error(exc, "UsageError") else ""
        console.print(Text(f"{where}: {message}{hint}", style="red"))
        sys.exit(int(getattr(exc, "exit_code", 2)))
    sys.exit(status if isinstance(status, int) else 0)
