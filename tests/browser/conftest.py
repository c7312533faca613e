"""Fixtures for browser tests: Debian's Chromium driven by Playwright, against the
server running in-process (a fresh database per test) and the session's real coturn.

Each simulated person gets a browser of their own: a persistent context with a fresh
user-data directory under the test's tmp_path, so nothing (storage, permissions,
cache) leaks from one person or test to another.

Tests see what the app does only from the outside: the DOM, the WebSocket frames the
page receives (``page.on("websocket")``), and ``getStats()`` of the peer connections
the page creates. For the last, an init script records every RTCPeerConnection and
getUserMedia call; it instruments the browser's API, not the app.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    async_playwright,
    expect,
)

from ringfence.config import Settings
from tests.conftest import LiveServer, make_settings
from tests.turn_fixture import Coturn

__all__ = ["Coturn"]

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Chromium is not installed at /usr/bin/chromium (scripts/test installs Debian's "
        "chromium package)",
        allow_module_level=True,
    )

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
UI_TIMEOUT_MS = 15_000
expect.set_options(timeout=UI_TIMEOUT_MS)

# Flags for this machine: no sandbox as root, no GPU, and nothing that phones home
# (the network is closed here; background requests would only fail).
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAKE_DEVICES = "--use-fake-device-for-media-stream"
FAKE_UI = "--use-fake-ui-for-media-stream"  # grants camera/microphone without a prompt

INSTRUMENT = """
(() => {
  const made = [];
  const media = { requests: 0 };
  Object.defineProperty(window, "__rfTestPeerConnections", { value: made });
  Object.defineProperty(window, "__rfTestMedia", { value: media });
  const Native = window.RTCPeerConnection;
  if (Native) {
    window.RTCPeerConnection = new Proxy(Native, {
      construct(target, args, newTarget) {
        const pc = Reflect.construct(target, args, newTarget);
        made.push(pc);
        return pc;
      },
    });
  }
  const devices = navigator.mediaDevices;
  if (devices && devices.getUserMedia) {
    const original = devices.getUserMedia.bind(devices);
    devices.getUserMedia = (constraints) => {
      media.requests += 1;
      return original(constraints);
    };
  }
})();
"""


class Server:
    """The app on a real socket, which a test can stop and start again on the same
    port and database (a real outage, as the browser sees it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._live: LiveServer | None = None
        self.port = 0

    async def start(self) -> None:
        settings = self._settings.model_copy(update={"port": self.port})
        live = LiveServer(settings)
        await live.__aenter__()
        self._live = live
        self.port = live.port

    async def stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            await live.__aexit__(None, None, None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def server(tmp_path: Path, database_url: str, coturn: Coturn) -> AsyncIterator[Server]:
    settings = make_settings(
        tmp_path, database_url, turn_urls=list(coturn.urls), turn_secret=coturn.secret
    )
    srv = Server(settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


class Browsers:
    """Launches one Chromium per person; closes them all at the end of the test.

    Every uncaught exception in a page, and every Content-Security-Policy violation,
    is a bug in the client: they are collected and fail the test at teardown.
    """

    def __init__(self, pw: Playwright, tmp_path: Path) -> None:
        self._pw = pw
        self._tmp = tmp_path
        self._contexts: list[BrowserContext] = []
        self.problems: list[str] = []

    async def launch(
        self,
        name: str,
        *,
        fake_devices: bool = True,
        fake_ui: bool = True,
        extra_args: Sequence[str] = (),
        viewport: dict[str, int] | None = None,
    ) -> BrowserContext:
        args = [*BASE_ARGS, *extra_args]
        if fake_devices:
            args.append(FAKE_DEVICES)
        if fake_ui:
            args.append(FAKE_UI)
        profile = self._tmp / f"chromium-{name}"
        assert not profile.exists(), f"profile {profile} already in use"
        context = await self._pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=args,
            viewport=viewport or PHONE,  # type: ignore[arg-type]
            locale="en-GB",
            timezone_id="UTC",
        )
        self._contexts.append(context)
        context.on("weberror", lambda e: self.problems.append(f"{name}: uncaught {e.error}"))
        context.on("console", lambda m: self._console(name, m))
        context.set_default_timeout(UI_TIMEOUT_MS)
        await context.add_init_script(INSTRUMENT)
        return context

    async def page(self, name: str, **options: Any) -> Page:
        """A new browser with one page in it."""
        context = await self.launch(name, **options)
        return context.pages[0] if context.pages else await context.new_page()

    def _console(self, name: str, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(f"{name}: {message.text}")

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()
        self._contexts.clear()
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
async def browsers(playwright: Playwright, tmp_path: Path) -> AsyncIterator[Browsers]:
    b = Browsers(playwright, tmp_path)
    try:
        yield b
    finally:
        await b.close()


def machine_addresses() -> set[str]:
    """Every non-loopback address of this machine: what a relayed peer must never see."""
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True)
    found = {
        info["local"]
        for iface in json.loads(out.stdout)
        for info in iface.get("addr_info", [])
        if info["local"] not in ("127.0.0.1", "::1")
    }
    assert found, "this machine has no non-loopback address to test with"
    return found
