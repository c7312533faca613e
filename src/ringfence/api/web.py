"""The browser client (plain ES modules from ringfence/web) and the headers that guard it.

Every response carries headers that limit what an injected script or a hostile page
could do: a strict Content-Security-Policy (scripts only from this origin, no inline
code, no framing), no referrer, and camera and microphone allowed to this origin only.

The client is also an installable app (a PWA): a manifest, icons, /favicon.ico, and a
service worker at /sw.js whose scope is the whole origin. The worker keeps a copy of
the app shell (the files of ringfence/web, nothing else) so that Ringfence opens, and
says it is offline, without a network. Its cache is named after a hash of those files,
computed here at start-up and written into /sw.js: a release that changes any of them
changes the worker's bytes, so browsers install the new worker, which replaces the
old cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",  # HTTP API and the same-origin WebSocket
        "font-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",  # the service worker, /sw.js
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class WebMount(Mount):
    """The browser client at /, for every path the API does not own.

    A plain mount at / would also claim /api/... paths, turning a wrong method on an API
    route into the static files' 405 and an unknown API path into a file lookup. Not
    matching /api lets the router answer those itself, as JSON."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path == "/api" or path.startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)


# --- the installable app ------------------------------------------------------------

WORKER_FILE = "sw.js"
VERSION_PLACEHOLDER = '"__RINGFENCE_SHELL_VERSION__"'
FILES_PLACEHOLDER = '["__RINGFENCE_SHELL_FILES__"]'
JAVASCRIPT = "text/javascript; charset=utf-8"
MANIFEST_TYPE = "application/manifest+json"
ICO_TYPE = "image/x-icon"
FAVICON_FILE = "icons/favicon.ico"


@dataclass(frozen=True)
class Shell:
    """The app shell as the service worker caches it."""

    version: str  # a hash of every shell file and of the worker itself
    files: tuple[str, ...]  # the URL paths the worker precaches ("/" for index.html)
    worker: bytes  # sw.js with the version and the file list filled in


def shell_paths(root: Path) -> list[tuple[str, Path]]:
    """Every file of the web client as (URL path, file), sorted; index.html as "/".

    Only static files of this directory: nothing personal or per-user is ever in it.
    The worker itself is not part of its own shell."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.as_posix() == WORKER_FILE:
            continue
        if any(part.startswith((".", "__")) for part in rel.parts):
            continue
        url = "/" if rel.as_posix() == "index.html" else f"/{rel.as_posix()}"
        found.append((url, path))
    # Served from a path of its own too (browsers ask for it there).
    favicon = root / FAVICON_FILE
    if favicon.is_file():
        found.append(("/favicon.ico", favicon))
    return sorted(found)


def load_shell(root: Path = WEB_ROOT) -> Shell:
    """Read the shell files and fill in the worker (once, at start-up)."""
    template = (root / WORKER_FILE).read_text(encoding="utf-8")
    for placeholder in (VERSION_PLACEHOLDER, FILES_PLACEHOLDER):
        if template.count(placeholder) != 1:
            raise RuntimeError(f"{WORKER_FILE} must contain {placeholder} exactly once")
    digest = hashlib.sha256(template.encode())
    files = shell_paths(root)
    for url, path in files:
        digest.update(b"\0" + url.encode() + b"\0" + path.read_bytes())
    version = digest.hexdigest()[:16]
    urls = tuple(url for url, _ in files)
    worker = template.replace(VERSION_PLACEHOLDER, json.dumps(version)).replace(
        FILES_PLACEHOLDER, json.dumps(list(urls))
    )
    return Shell(version=version, files=urls, worker=worker.encode())


def pwa_routes(root: Path = WEB_ROOT) -> list[BaseRoute]:
    """/sw.js, /manifest.webmanifest and /favicon.ico, each with its exact content type
    (none without the web client's files: then there is no app to install)."""
    if not (root / WORKER_FILE).is_file():
        return []
    shell = load_shell(root)

    async def service_worker(request: Request) -> Response:
        # From the root, so that its scope is the whole app. no-cache: the browser
        # checks for a new worker (a new release) on every navigation.
        return Response(shell.worker, media_type=JAVASCRIPT, headers={"Cache-Control": "no-cache"})

    async def manifest(request: Request) -> Response:
        return FileResponse(
            root / "manifest.webmanifest",
            media_type=MANIFEST_TYPE,
            headers={"Cache-Control": "no-cache"},
        )

    async def favicon(request: Request) -> Response:
        # Browsers ask for it on their own, on every page; the app's pages name the
        # icons too (<link rel="icon">).
        return FileResponse(root / FAVICON_FILE, media_type=ICO_TYPE)

    return [
        Route(f"/{WORKER_FILE}", service_worker, methods=["GET"]),
        Route("/manifest.webmanifest", manifest, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]


def web_mount(root: Path = WEB_ROOT) -> WebMount:
    """Serve index.html at / and the modules beside it, with no directory listings, and
    the installable app's files (:func:`pwa_routes`) before them."""
    static = StaticFiles(directory=root, html=True, check_dir=False)
    return WebMount("/", routes=[*pwa_routes(root), Mount("/", app=static)], name="web")
