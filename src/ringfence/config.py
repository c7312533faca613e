"""Typed settings: one object, read from flags, ``RINGFENCE_*`` variables or a TOML file.

Precedence, highest first: command-line flags, environment variables, the config file,
the embedded defaults. A bad value stops start-up with a message that names the
setting, because a privacy service that silently falls back to a default is worse
than one that refuses to start.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "RINGFENCE_"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class ConfigError(Exception):
    """Raised for a setting that cannot be used; the message names the setting."""


class Settings(BaseSettings):
    """Every knob Ringfence has. Field docs double as the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Address the HTTP/WebSocket server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP/WebSocket server.")
    data_dir: Path = Field(
        Path("./ringfence-data"),
        description="Directory for the SQLite database and generated secrets.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL. Unset: SQLite in data_dir. "
            "PostgreSQL: postgresql+asyncpg://user:pass@host/db."
        ),
    )
    public_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated origins browsers use to reach this server "
            "(for example https://chat.example.org). Empty: http://HOST:PORT."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity."
    )
    ws_send_queue: int = Field(
        256,
        ge=8,
        le=100_000,
        description="Events buffered per WebSocket before a slow client is disconnected.",
    )
    ws_auth_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Seconds a new WebSocket has to send its auth frame."
    )
    ws_max_frame_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest WebSocket frame accepted; larger ones close the socket (1009).",
    )
    ws_messages_per_second: float = Field(
        20.0, gt=0, le=10_000, description="Frames one WebSocket may send per second, sustained."
    )
    ws_message_burst: int = Field(
        60, ge=1, le=100_000, description="Frames one WebSocket may send in a burst."
    )
    ws_max_connections_per_user: int = Field(
        10, ge=1, le=1000, description="WebSocket connections one user may hold at once."
    )
    # Each ping costs the event loop a little per socket (250 a second for 5,000 sockets
    # at 20 s); proxies commonly drop connections idle for 60 s, so stay below that.
    ws_ping_interval_s: float = Field(
        45.0,
        ge=5,
        le=600,
        description=(
            "Seconds between keepalive pings on each WebSocket. Keep it below the idle "
            "timeout of any proxy in front (often 60 s)."
        ),
    )
    ws_session_check_s: float = Field(
        5.0,
        ge=0.5,
        le=300,
        description=(
            "Seconds between checks of the accounts behind open WebSockets: a socket of "
            "an account suspended without a Bus to announce it closes within this."
        ),
    )
    auth_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description=(
            "Seconds a checked token is trusted without reading the database again (0: "
            "always read). Logouts and suspensions announced on the Bus apply at once."
        ),
    )
    auth_cache_size: int = Field(
        10_000, ge=1, le=1_000_000, description="Tokens the authentication cache holds at most."
    )
    # --- Abuse resistance: logins, request sizes, slow clients, sessions --------------
    # A client address below means its IPv6 /64 (one subscriber's whole network).
    login_attempts_per_account: int = Field(
        20,
        ge=1,
        le=10_000,
        description=(
            "Login attempts on one account per 15 minutes, from all addresses together, "
            "before it is slowed: each address may then try it only "
            "login_attempts_when_slowed times per 15 minutes. Its owner, from an address "
            "that has not been guessing, still gets in."
        ),
    )
    login_attempts_per_account_from_address: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Login attempts on one account from one client address per 15 minutes.",
    )
    login_attempts_when_slowed: int = Field(
        3,
        ge=1,
        le=10_000,
        description=(
            "Login attempts on a slowed account (see login_attempts_per_account) from one "
            "client address per 15 minutes."
        ),
    )
    login_attempts_per_address: int = Field(
        30, ge=1, le=10_000, description="Login attempts per client address per minute."
    )
    registrations_per_address: int = Field(
        30, ge=1, le=10_000, description="Accounts one client address may create per hour."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description=(
            "Comma-separated proxy addresses (or networks) whose X-Forwarded-For is "
            "believed (for per-address throttling). The proxy must set the header to the "
            "address it saw, not append to one the client sent (docs/deployment.md)."
        ),
    )
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description=(
            "Largest HTTP request body accepted; a larger one is refused with 413 before "
            "it is read (by Content-Length, or counted when chunked)."
        ),
    )
    body_read_timeout_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description=(
            "Seconds a request's body may take to arrive once its headers have; then 408 "
            "and the connection closes."
        ),
    )
    header_read_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description=(
            "Seconds a request's line and headers may take to arrive, and a new "
            "connection may stay silent; then the connection closes."
        ),
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="Largest request line plus headers accepted; larger ones get 431.",
    )
    max_connections: int = Field(
        10_000,
        ge=16,
        le=1_000_000,
        description=(
            "Connections (HTTP and WebSocket) served at once; beyond it requests get 503. "
            "Keep the process's open-file limit above it."
        ),
    )
    max_connections_per_address: int = Field(
        100,
        ge=1,
        le=100_000,
        description=(
            "HTTP connections one client address may hold open at once (not counting "
            "trusted_proxies, which carry many clients)."
        ),
    )
    session_idle_days: float = Field(
        30.0,
        gt=0,
        le=3650,
        description=(
            "Days a session (a device's login) may go unused before it ends and needs the "
            "password again. An open WebSocket counts as use."
        ),
    )
    session_max_days: float = Field(
        180.0,
        gt=0,
        le=3650,
        description="Days after its login that a session ends, however much it is used.",
    )
    deleted_username_hold_days: float = Field(
        30.0,
        ge=0,
        le=3650,
        description=(
            "Days the username of a deleted account stays taken: until then signing up "
            "with it is answered as for any taken name. 0: free at once."
        ),
    )
    ring_timeout_s: int = Field(
        45, ge=2, le=300, description="Seconds a call rings before it ends as missed."
    )
    call_grace_s: float = Field(
        10.0,
        ge=0,
        le=120,
        description="Seconds a call survives its device's dropped WebSocket before it ends.",
    )
    call_attempts_per_minute: int = Field(
        10, ge=1, le=1000, description="Call attempts one caller may make per minute."
    )
    call_attempts_per_pair_per_minute: int = Field(
        3, ge=1, le=1000, description="Call attempts per minute from one caller to one callee."
    )
    ringing_calls_per_pair: int = Field(
        1, ge=1, le=10, description="Calls that may ring at once between the same two users."
    )
    call_switches_per_minute: int = Field(
        6,
        ge=1,
        le=100,
        description=(
            "Mid-call switches between relayed and direct one user may ask for per minute "
            "(each hands out fresh TURN credentials)."
        ),
    )
    # Per-account limits against one person flooding others, the relay or the server
    # (docs/security.md, "Limits"). Refusals are 429 with Retry-After.
    messages_per_minute: int = Field(
        60, ge=1, le=100_000, description="Messages one account may send per minute."
    )
    message_requests_per_hour: int = Field(
        20,
        ge=1,
        le=100_000,
        description=(
            "Messages one account may send per hour to people who have not accepted a "
            "conversation with it (message requests)."
        ),
    )
    follows_per_hour: int = Field(
        30, ge=1, le=10_000, description="Follows and unfollows one account may make per hour."
    )
    profile_lookups_per_hour: int = Field(
        120, ge=1, le=100_000, description="Profiles one account may look up per hour."
    )
    display_name_changes_per_day: int = Field(
        10,
        ge=1,
        le=10_000,
        description=(
            "Display-name changes one account may make a day (each reaches everyone "
            "it has a conversation with)."
        ),
    )
    exports_per_day: int = Field(
        5,
        ge=1,
        le=10_000,
        description="Data exports (GET /api/v1/me/export) one account may make a day.",
    )
    typing_notices_per_minute: int = Field(
        30,
        ge=1,
        le=10_000,
        description="Typing notices one account may send per minute; more are dropped.",
    )
    turn_credentials_per_minute: int = Field(
        20,
        ge=2,
        le=1000,
        description=(
            "TURN credentials one account's own actions may get per minute: starting a "
            "call, ringing its devices, switching or restarting a call (a switch takes two)."
        ),
    )
    turn_user_quota: int = Field(
        12,
        ge=1,
        le=1000,
        description=(
            "Relay allocations one account may hold at once on the embedded coturn (its "
            "user-quota; a browser takes 2-3 per call). Set user-quota on an external one."
        ),
    )
    turn_pseudonym_key_file: Path | None = Field(
        None,
        description=(
            "Key that gives each account a stable, opaque TURN user name (so the relay's "
            "quota is per account). Empty: data_dir/turn-pseudonym.key, made on first "
            "start. Nodes sharing a relay must share it."
        ),
    )
    turn_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated turn:/turns: URLs of an external coturn. Empty: Ringfence "
            "starts and supervises its own coturn."
        ),
    )
    turn_secret: str | None = Field(
        None, description="Shared secret of the external coturn (static-auth-secret)."
    )
    turn_secret_file: Path | None = Field(
        None, description="File holding the external coturn's shared secret."
    )
    turn_relay_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated addresses the external coturn relays from (its relay-ip or "
            "external-ip). Empty: the addresses of the TURN URLs' hosts. Relay candidates "
            "on any other address are dropped from protected sides."
        ),
    )
    turn_credential_ttl_s: int = Field(
        600, ge=30, le=600, description="Lifetime of the TURN credentials handed to clients."
    )
    tls_cert: Path | None = Field(
        None,
        description=(
            "Certificate chain (PEM) to serve HTTPS and WSS; the embedded coturn then also "
            "offers TURN over TLS with it. Needs tls_key."
        ),
    )
    tls_key: Path | None = Field(None, description="Private key (PEM) of tls_cert.")
    tls_self_signed: bool = Field(
        False,
        description=(
            "Serve HTTPS with a self-signed certificate kept in data_dir/tls (for a LAN: "
            "browsers warn once, then allow the microphone). Not with tls_cert."
        ),
    )
    turn_listen_ip: str | None = Field(
        None,
        description=(
            "Address the embedded coturn listens and relays on. Empty: the server's host "
            "when it is one address (127.0.0.1 for localhost)."
        ),
    )
    turn_external_ip: str | None = Field(
        None, description="Public address of the embedded coturn, when behind NAT."
    )
    turn_host: str | None = Field(
        None,
        description=(
            "Host name clients put in the embedded coturn's TURN URLs. Empty: with "
            "tls_cert, the host of the first public URL (TURN over TLS checks the "
            "certificate's name); otherwise the relay's address."
        ),
    )
    turn_port: int = Field(
        3478, ge=0, le=65535, description="Port of the embedded coturn (UDP and TCP)."
    )
    turn_tls_port: int = Field(
        5349,
        ge=1,
        le=65535,
        description="Port of the embedded coturn's TURN over TLS (only when serving TLS).",
    )
    turn_relay_min_port: int = Field(
        49160, ge=1024, le=65535, description="Lowest relay port of the embedded coturn."
    )
    turn_relay_max_port: int = Field(
        49999, ge=1024, le=65535, description="Highest relay port of the embedded coturn."
    )
    redis_url: str | None = Field(
        None,
        description=(
            "Redis shared by several nodes (redis://host:6379/0, rediss:// for TLS). "
            "Unset: a single node keeps events, live calls, rate limits and presence "
            "in memory."
        ),
    )
    redis_prefix: str = Field(
        "ringfence:",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key and channel, so deployments can share a Redis.",
    )
    push_vapid_private_key_file: Path | None = Field(
        None,
        description=(
            "PEM file of the VAPID key that signs Web Push requests. Empty: "
            "data_dir/vapid-private.pem, made on first start. Nodes must share it."
        ),
    )
    push_vapid_subject: str = Field(
        "mailto:push@ringfence.invalid",
        pattern=r"^(mailto:[^\s]+|https://[^\s]+)$",
        max_length=200,
        description="VAPID contact (mailto: or https:) that push services may use to reach you.",
    )
    push_allow_insecure_endpoints: bool = Field(
        False,
        description=(
            "Also accept http:// and loopback/private push endpoints. For tests only: "
            "it lets users make this server send requests inside its own network."
        ),
    )
    push_queue_size: int = Field(
        1000, ge=1, le=100_000, description="Pushes waiting to be sent; beyond it new ones drop."
    )
    push_workers: int = Field(4, ge=1, le=64, description="Pushes sent at once.")
    push_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Seconds one push request may take, connect included."
    )
    push_subscriptions_per_account: int = Field(
        10, ge=1, le=100, description="Push subscriptions (browsers) one account may register."
    )
    password_hash_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Password hashes computed at once (each takes ~19 MiB and one core).",
    )

    @field_validator("public_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        origins = [url.rstrip("/") for url in value]
        for url in origins:
            if not url.startswith(("http://", "https://")) or url.count("/") > 2:
                raise ValueError(f"{url!r} must be an origin such as https://chat.example.org")
        return origins

    @field_validator("turn_urls", "turn_relay_ips", "trusted_proxies", mode="before")
    @classmethod
    def _split_turn_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("turn_urls")
    @classmethod
    def _check_turn_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"{url!r} must be a turn: or turns: URL")
        return value

    @field_validator("turn_listen_ip", "turn_external_ip")
    @classmethod
    def _check_ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)  # raises ValueError naming the problem
        return value

    @field_validator("turn_host")
    @classmethod
    def _check_turn_host(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            pass
        if not _HOST_NAME.fullmatch(value):
            raise ValueError(f"{value!r} must be a host name such as turn.example.org or an IP")
        return value.lower()

    @field_validator("turn_relay_ips")
    @classmethod
    def _check_ips(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_address(v)) for v in value]

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith(("postgresql://", "postgres://")):
            # What PostgreSQL's own tools print; SQLAlchemy needs the driver named.
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(plain postgresql:// is accepted and converted)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        if self.turn_relay_min_port > self.turn_relay_max_port:
            raise ValueError("turn_relay_min_port must not exceed turn_relay_max_port")
        if self.turn_urls and not (self.turn_secret or self.turn_secret_file):
            raise ValueError(
                "turn_urls needs turn_secret or turn_secret_file (the coturn static-auth-secret)"
            )
        if (self.turn_secret or self.turn_secret_file) and not self.turn_urls:
            raise ValueError("turn_secret is only used with turn_urls (an external coturn)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.tls_self_signed and self.tls_cert is not None:
            raise ValueError("tls_self_signed and tls_cert exclude each other: choose one")
        if self.tls_cert is not None and self.tls_key is not None:
            for name, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
                if not path.expanduser().is_file():
                    raise ValueError(f"{name}: {path} is not a readable file")
            self.tls_cert = self.tls_cert.expanduser().resolve()
            self.tls_key = self.tls_key.expanduser().resolve()
        if self.tls and self.turn_tls_port == self.turn_port:
            raise ValueError(
                f"turn_tls_port and turn_port are both {self.turn_port}: TURN over TLS needs "
                "a port of its own (default 5349)"
            )
        if not self.external_turn and self.turn_listen_ip is None:
            self.turn_listen_ip = self._turn_listen_default()
        return self

    def _turn_listen_default(self) -> str:
        """The embedded relay listens where the server does, so that whoever can reach
        the server can reach its relay too."""
        if self.host in ("localhost", ""):
            return "127.0.0.1"
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            raise ValueError(
                f"host {self.host!r} is a name: set turn_listen_ip to the address the "
                "embedded relay should listen on"
            ) from None
        if address.is_unspecified:
            raise ValueError(
                f"host {self.host} listens on every address, so the embedded relay cannot "
                "tell which one your users reach: set turn_listen_ip (and turn_external_ip "
                "when the machine is behind NAT)"
            )
        return str(address)

    @property
    def tls(self) -> bool:
        """True when the server speaks HTTPS and WSS itself."""
        return self.tls_self_signed or self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def turn_url_host(self) -> str | None:
        """The host to name in the embedded relay's TURN URLs, or None for its address.

        TURN over TLS checks the relay's certificate against this name, so with a real
        certificate the name browsers use for this server is the sensible default."""
        if self.turn_host is not None:
            return self.turn_host
        if self.tls_cert is not None and self.public_urls:
            return urlsplit(self.public_urls[0]).hostname
        return None

    @property
    def external_turn(self) -> bool:
        """True when an external coturn is configured and no child should be started."""
        return bool(self.turn_urls)

    @property
    def effective_database_url(self) -> str:
        """The database to use: the configured one, or SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ringfence.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags arrive as init kwargs; the config file is merged in load_settings() so
        # that the environment can still override it.
        return (init_settings, env_settings)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s): {', '.join(unknown)}")
    return data


def load_settings(flags: dict[str, Any] | None = None, config_file: Path | None = None) -> Settings:
    """Build the settings, or raise ConfigError naming the first bad setting.

    ``flags`` holds only the options given on the command line (None values are
    dropped so they do not mask the environment or the file).
    """
    if config_file is None and os.environ.get(f"{ENV_PREFIX}CONFIG"):
        config_file = Path(os.environ[f"{ENV_PREFIX}CONFIG"])
    file_values = _read_config_file(config_file) if config_file else {}
    env_keys = {key[len(ENV_PREFIX) :].lower() for key in os.environ if key.startswith(ENV_PREFIX)}
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    # The file is the lowest layer: drop file keys the environment or flags override.
    merged = {k: v for k, v in file_values.items() if k not in env_keys and k not in given}
    merged.update(given)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


# The settings `ringfence serve` has a flag for, and that flag.
SERVE_FLAGS = {
    "host": "--host",
    "port": "--port",
    "data_dir": "--data-dir",
    "database_url": "--database-url",
    "public_urls": "--public-url",
    "log_level": "--log-level",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "tls_self_signed": "--tls-self-signed",
    "turn_listen_ip": "--turn-listen-ip",
    "turn_external_ip": "--turn-external-ip",
    "turn_host": "--turn-host",
}


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "settings"
        where = [f"{ENV_PREFIX}{name.upper()}"] if name in Settings.model_fields else []
        if name in SERVE_FLAGS:
            where.append(SERVE_FLAGS[name])
        named = f" ({' / '.join(where)})" if where else ""
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a rule about several settings: the message names them
            lines.append(f"invalid settings: {message}")
        else:
            lines.append(f"invalid setting {name}{named}: {message}")
    return "\n".join(lines)
