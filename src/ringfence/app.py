"""The one place where Ringfence's objects are built and wired, inside the ASGI lifespan."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import uvicorn
from fastapi import FastAPI
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringfence import __version__
from ringfence.api import (
    accounts,
    calls,
    conversations,
    docs,
    errors,
    events,
    me,
    push,
    reports,
    web,
)
from ringfence.api.connections import ConnectionGuard, guarded_protocol
from ringfence.api.limits import BodyLimit
from ringfence.api.websocket_protocol import LeanWebSocketProtocol
from ringfence.backends import Backend
from ringfence.backends.memory import InMemoryRateLimiter, in_memory_backend
from ringfence.backends.redis import open_redis_backend
from ringfence.clock import Clock, SystemClock
from ringfence.config import ConfigError, Settings
from ringfence.realtime.hub import Hub
from ringfence.realtime.redis_bus import RedisBus
from ringfence.redact import scrub_relay_logs
from ringfence.services.accounts import Accounts, AuthCache, SessionLifetime
from ringfence.services.calls import Calls
from ringfence.services.container import Services
from ringfence.services.export import AccountExport
from ringfence.services.limits import ActionLimits
from ringfence.services.messaging import Messaging
from ringfence.services.moderation import Moderation
from ringfence.services.passwords import Passwords
from ringfence.services.push import CallStoreLookup, Push, VapidKey
from ringfence.services.settings import SettingsService
from ringfence.services.social import Social
from ringfence.services.sockets import Sockets
from ringfence.services.stream import EventStream
from ringfence.services.throttle import AccountLimits, AccountThrottle
from ringfence.storage.database import Database, DatabaseUnavailable
from ringfence.storage.files import private_dir
from ringfence.tls import tls_files
from ringfence.turn.coturn_config import CoturnOptions
from ringfence.turn.credentials import (
    TurnCredentialIssuer,
    generate_secret,
    load_pseudonym_key,
    load_secret,
)
from ringfence.turn.supervisor import CoturnStartError, CoturnSupervisor, TurnUnavailable
from ringfence.wire.events_doc import events_markdown

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Ringfence cannot start, for a reason one sentence explains to the operator."""


# What a failed start-up is reported as one plain line for, without a traceback: the
# operator has something to fix, not a bug to report.
EXPLAINED_AT_STARTUP = (StartupError, ConfigError, TurnUnavailable, DatabaseUnavailable)


class StartupFailure:
    """ASGI wrapper that turns a start-up refused for a known reason into one line.

    Starlette reports a failed lifespan start-up to the server with the whole traceback
    as its message, and uvicorn logs it as it is. For the reasons in
    :data:`EXPLAINED_AT_STARTUP` the traceback only buries the sentence that says
    what to fix, so the message becomes that sentence (the lifespan leaves the
    exception in ``app.state.startup_failure``)."""

    __slots__ = ("app", "state")

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    # A plain function returning the awaitable, as events.EventsFirst: no frame of its
    # own for each request and socket.
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "lifespan":
            return self.app(scope, receive, send)
        return self._lifespan(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def explained(message: Message) -> None:
            failure = getattr(self.state, "startup_failure", None)
            if message["type"] == "lifespan.startup.failed" and failure is not None:
                message = {**message, "message": f"Ringfence cannot start: {failure}"}
            await send(message)

        try:
            await self.app(scope, receive, explained)
        except EXPLAINED_AT_STARTUP:
            if getattr(self.state, "startup_failure", None) is None:
                raise


@dataclass(frozen=True)
class Relay:
    issuer: TurnCredentialIssuer
    addresses: frozenset[str]  # where relayed media really comes from
    supervisor: CoturnSupervisor | None


async def start_turn(settings: Settings, clock: Clock) -> Relay:
    """The TURN relay: an external coturn if configured, else a supervised child.

    The child is only used once it has proved that it runs the configuration written
    here (:meth:`CoturnSupervisor.start`); otherwise start-up stops, naming the problem.
    With a certificate (``tls_files``) it also offers TURN over TLS, on the same
    certificate the web server uses, for networks that only let TLS through."""
    ttl = settings.turn_credential_ttl_s
    pseudonyms = turn_pseudonym_key(settings)
    if settings.external_turn:
        shared = load_secret(settings.turn_secret, settings.turn_secret_file)
        issuer = TurnCredentialIssuer(
            shared, settings.turn_urls, ttl, clock=clock.time, pseudonym_key=pseudonyms
        )
        addresses = settings.turn_relay_ips or await resolve_turn_hosts(settings.turn_urls)
        return Relay(issuer, frozenset(addresses), None)
    secret = generate_secret()  # fresh each start: no long-lived secret on disk
    listen_ip = settings.turn_listen_ip
    assert listen_ip is not None  # Settings fills it in for the embedded relay
    listen = ipaddress.ip_address(listen_ip)
    tls = tls_files(settings)
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip=listen_ip,
            relay_ip=None if listen.is_unspecified else listen_ip,
            external_ip=settings.turn_external_ip,
            port=settings.turn_port,
            tls_port=None if tls is None else settings.turn_tls_port,
            cert_file=None if tls is None else tls.cert,
            pkey_file=None if tls is None else tls.key,
            min_port=settings.turn_relay_min_port,
            max_port=settings.turn_relay_max_port,
            realm="ringfence",
            secret=secret,
            user_quota=settings.turn_user_quota,
            max_allocate_lifetime_s=ttl,  # no allocation outlives its credential unrefreshed
            # Two relayed peers on one machine reach each other through loopback.
            allow_loopback_peers=listen.is_loopback,
        ),
        # Absolute: coturn runs inside this folder, and the default data dir is relative.
        workdir=(settings.data_dir / "coturn").resolve(),
        # On loopback this is a single-machine relay (development, tests); anywhere
        # else it is reachable from other machines and gets the production rules.
        production=not listen.is_loopback,
        advertised_host=settings.turn_url_host,
    )
    # coturn's output reaches this process's log; the addresses clients name in it
    # must not (ringfence.redact). Its own addresses stay readable.
    own = [listen_ip, settings.turn_external_ip]
    scrub_relay_logs([*own, "127.0.0.1", "::1"] if listen.is_unspecified else own)
    try:
        await supervisor.start()
    except CoturnStartError as exc:
        # The sentence a failed start-up is reported with (see StartupFailure).
        raise StartupError(f"its embedded TURN relay is not usable: {exc}") from None
    issuer = TurnCredentialIssuer(
        secret.encode(), supervisor.urls, ttl, clock=clock.time, pseudonym_key=pseudonyms
    )
    relay_ip = supervisor.options.advertised_relay_ip
    addresses = {str(relay_ip)} if relay_ip else await resolve_turn_hosts(supervisor.urls)
    return Relay(issuer, frozenset(addresses), supervisor)


def turn_pseudonym_key(settings: Settings) -> bytes:
    """The key of the accounts' TURN pseudonyms (ringfence.turn.credentials): kept
    across restarts, in the data dir unless the operator names a shared file."""
    path = settings.turn_pseudonym_key_file or settings.data_dir / "turn-pseudonym.key"
    try:
        return load_pseudonym_key(path)
    except ValueError as exc:
        raise StartupError(f"turn_pseudonym_key_file: {exc}") from None


def vapid_key(settings: Settings) -> VapidKey:
    """The key that signs Web Push requests: kept across restarts, in the data dir
    unless the operator names a shared file."""
    path = settings.push_vapid_private_key_file or settings.data_dir / "vapid-private.pem"
    try:
        return VapidKey.load(path, settings.push_vapid_subject)
    except ValueError as exc:
        raise StartupError(f"push_vapid_private_key_file: {exc}") from None


async def resolve_turn_hosts(urls: Sequence[str]) -> set[str]:
    """The addresses of the hosts named in TURN URLs (``turn:host:port?transport=udp``)."""
    loop = asyncio.get_running_loop()
    found: set[str] = set()
    for url in urls:
        host = url.split(":", 1)[1].split("?", 1)[0]
        host = host[1 : host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        try:
            for info in await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM):
                found.add(str(info[4][0]))
        except OSError as exc:
            raise ConfigError(
                f"cannot resolve TURN host {host!r} ({exc}); set turn_relay_ips instead"
            ) from exc
    return found


async def open_backend(settings: Settings, clock: Clock) -> Backend:
    """The Bus and ephemeral state: in memory for one node, in Redis for several."""
    if settings.redis_url:
        return await open_redis_backend(
            settings.redis_url, prefix=settings.redis_prefix, ring_timeout_s=settings.ring_timeout_s
        )
    return in_memory_backend(clock)


async def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Open storage (applying migrations), connect the Bus and build every service.
    Web Push comes apart from the container (services/container.py has no slot for it
    yet)."""
    clock = clock or SystemClock()
    # Ringfence's own: the database, TLS keys, the relay's files (ringfence.storage.files).
    private_dir(settings.data_dir)
    key = vapid_key(settings)
    db = Database(settings.effective_database_url)
    await db.start()
    try:
        backend = await open_backend(settings, clock)
        await backend.start()
    except BaseException:
        await db.close()
        raise
    bus = backend.bus
    stream = EventStream(db, bus, clock)
    hub = Hub(bus, backend.presence)
    limits = ActionLimits(backend.limiter, settings)
    push_service = Push(db, clock, settings, backend.limiter, key)
    messaging = Messaging(db, stream, clock, limits, notifier=push_service)
    try:
        relay = await start_turn(settings, clock)
    except BaseException:
        await push_service.close()
        await backend.close()
        await db.close()
        raise
    calls = Calls(
        db=db,
        stream=stream,
        messaging=messaging,
        store=backend.call_store,
        limiter=backend.limiter,
        presence=hub,
        turn=relay.issuer,
        relay_addresses=relay.addresses,
        clock=clock,
        settings=settings,
        notifier=push_service,
    )
    push_service.calls = CallStoreLookup(calls.store)
    push_service.start()
    calls.start_sweeper()
    accounts = Accounts(
        db,
        Passwords(settings.password_hash_concurrency),
        clock,
        AccountThrottle(
            backend.limiter,
            AccountLimits(
                login_attempts_per_account=settings.login_attempts_per_account,
                login_attempts_per_account_from_address=(
                    settings.login_attempts_per_account_from_address
                ),
                login_attempts_when_slowed=settings.login_attempts_when_slowed,
                login_attempts_per_address=settings.login_attempts_per_address,
                registrations_per_address=settings.registrations_per_address,
            ),
        ),
        stream,
        AuthCache(settings.auth_cache_ttl_s, settings.auth_cache_size, clock.monotonic),
        sessions=SessionLifetime.days(settings.session_idle_days, settings.session_max_days),
        limits=limits,
        username_hold=timedelta(days=settings.deleted_username_hold_days),
    )
    sockets = Sockets(
        accounts=accounts,
        hub=hub,
        stream=stream,
        calls=calls,
        messaging=messaging,
        settings=settings,
        clock=clock,
    )
    services = Services(
        settings=settings,
        clock=clock,
        db=db,
        bus=bus,
        hub=hub,
        stream=stream,
        accounts=accounts,
        social=Social(db, clock, limits),
        messaging=messaging,
        export=AccountExport(db, clock, limits),
        user_settings=SettingsService(db, clock, calls.direct_connections_changed),
        moderation=Moderation(db, backend.limiter, clock, stream),
        calls=calls,
        sockets=sockets,
        push=push_service,
        turn_supervisor=relay.supervisor,
        backend=backend,
    )
    await services.accounts.watch_sessions(hub, check_every_s=settings.ws_session_check_s)
    return services


async def close_services(services: Services) -> None:
    await services.accounts.close()
    await services.calls.close()
    await services.push.close()
    await services.hub.close_all()
    if services.turn_supervisor is not None:
        await services.turn_supervisor.stop()
    await services.backend.close()  # the Bus with it
    await services.db.close()


def _without_client_addresses(record: logging.LogRecord) -> bool:
    """Keep uvicorn's own lines, minus two kinds it would otherwise emit:

    - each WebSocket accept, with the client's address and port, whatever access_log
      says (client addresses are personal data);
    - the websockets library's protocol lines at debug level, which quote handshake
      headers and the start of every frame, and so of auth frames and SDP.
    """
    # Only below WARNING: uvicorn's own WebSocket module lives under a "websockets"
    # directory too, and its "Exception in ASGI application" errors must be kept.
    if f"{os.sep}websockets{os.sep}" in record.pathname and record.levelno < logging.WARNING:
        return False
    return '"WebSocket ' not in str(record.msg)


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How uvicorn runs Ringfence; shared by ``ringfence serve`` and the test servers."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if _without_client_addresses not in uvicorn_log.filters:
        uvicorn_log.addFilter(_without_client_addresses)
    tls = tls_files(settings)
    return uvicorn.Config(
        # The real-time socket skips FastAPI's layers; a refused start-up is one line.
        StartupFailure(events.EventsFirst(app), app.state),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # client addresses are personal data; keep none by default
        interface="asgi3",  # the outer wrappers are plain functions returning awaitables
        ws=LeanWebSocketProtocol,  # a few KiB per idle socket less than uvicorn's own
        ws_max_size=settings.ws_max_frame_bytes,  # larger frames close the socket with 1009
        ws_per_message_deflate=False,  # compression costs ~100 KiB of zlib state per socket
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=20,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        # Slow and oversized request heads, and connections per address: what uvicorn
        # leaves open for a directly exposed server (ringfence.api.connections).
        http=guarded_protocol(
            ConnectionGuard(
                header_timeout_s=settings.header_read_timeout_s,
                max_header_bytes=settings.max_header_bytes,
                per_address=settings.max_connections_per_address,
                trusted_proxies=settings.trusted_proxies,
            )
        ),
        limit_concurrency=settings.max_connections,  # beyond it uvicorn answers 503
        lifespan="on",
        timeout_graceful_shutdown=5,
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
    )


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            services = await build_services(settings, clock)
        except EXPLAINED_AT_STARTUP as exc:
            app.state.startup_failure = exc  # for StartupFailure: one line, no traceback
            raise
        app.state.services = services
        log.info("ringfence %s ready", __version__)
        try:
            yield
        finally:
            await close_services(services)

    app = FastAPI(
        title="Ringfence",
        version=__version__,
        summary="Direct messages and 1:1 calls that never reveal where you are.",
        description=events_markdown(),
        lifespan=lifespan,
        docs_url=None,  # served by api/docs.py, from this origin (the CSP)
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    errors.install(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in (accounts, me, push, conversations, calls, reports, events):
        app.include_router(module.router)
    app.include_router(docs.docs_router("/api/openapi.json"))
    # Last: the browser client answers whatever path the API did not claim.
    app.router.routes.append(web.web_mount())
    # Inside SecurityHeaders, so that a refused body's answer carries them too.
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, read_timeout_s=settings.body_read_timeout_s
    )
    app.add_middleware(web.SecurityHeaders)
    return app


@dataclass(frozen=True)
class AdminServices:
    """What `ringfence admin` needs: the database and the services that change accounts.
    No relay or sockets; with Redis, a Bus that only publishes (a suspension closes the
    user's sockets on every node at once)."""

    db: Database
    accounts: Accounts
    moderation: Moderation
    publisher: RedisBus | None = None

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        await self.db.close()


async def build_admin_services(settings: Settings) -> AdminServices:
    clock = SystemClock()
    db = Database(settings.effective_database_url)
    await db.start()
    publisher = (
        RedisBus.publisher(settings.redis_url, prefix=settings.redis_prefix)
        if settings.redis_url
        else None
    )
    stream = EventStream(db, publisher, clock) if publisher is not None else None
    return AdminServices(
        db=db,
        accounts=Accounts(db, Passwords(settings.password_hash_concurrency), clock),
        moderation=Moderation(db, InMemoryRateLimiter(clock.monotonic), clock, stream),
        publisher=publisher,
    )
