"""Ringfence installs as an app and opens without a network (issue 11, "Installable
app"): the manifest and its icons, /favicon.ico, Chromium's own installability check,
a service worker that controls the page and caches the app shell only, and an offline
start that shows the app with a notice instead of the browser's error page."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.async_api import Page, Response, expect

from tests.browser.conftest import Browsers, Server
from tests.browser.ui import (
    ApiUser,
    console_errors,
    expect_online,
    messages,
    open_conversation,
    sign_up,
)

pytestmark = pytest.mark.browser

OFFLINE_TEXT = "You're offline — Ringfence will reconnect when the network is back."

CONTROLLED = "() => navigator.serviceWorker.controller !== null"

# Everything in every Cache Storage cache of the origin: {cache name: [request URLs]}.
CACHES = """
async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out[name] = (await cache.keys()).map((request) => request.url);
  }
  return out;
}
"""

# The same, with each response's headers and text.
CACHED_RESPONSES = """
async () => {
  const out = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      const response = await cache.match(request);
      const headers = [...response.headers.keys()];
      out.push({ url: request.url, headers, body: await response.text() });
    }
  }
  return out;
}
"""


async def until_controlled(page: Page) -> None:
    """The service worker is active and controls the page."""
    await page.wait_for_function(CONTROLLED)
    state = await page.evaluate(
        "navigator.serviceWorker.ready.then((r) => [r.active.state, r.scope])"
    )
    assert state[0] == "activated"
    assert state[1] == f"{page.url.split('#')[0].rstrip('/')}/"


def offline_notice(page: Page) -> Any:
    return page.get_by_role("status").filter(has_text=OFFLINE_TEXT)


async def test_the_manifest_icons_and_favicon_make_an_installable_app(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("alice")
    errors = console_errors(page)
    favicon_requests: list[Response] = []
    page.on("response", lambda r: favicon_requests.append(r) if "favicon" in r.url else None)
    await page.goto(server.url)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # The manifest is linked, and valid.
    href = await page.locator('link[rel="manifest"]').get_attribute("href")
    assert href == "/manifest.webmanifest"
    resp = await page.request.get(server.url + href)
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/manifest+json"
    manifest = await resp.json()
    assert manifest["name"] == "Ringfence"
    assert manifest["short_name"] == "Ringfence"
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["background_color"])
    purposes: dict[str, set[str]] = {}
    for icon in manifest["icons"]:
        got = await page.request.get(server.url + icon["src"])
        assert got.status == 200, icon["src"]
        assert got.headers["content-type"] == icon["type"], icon["src"]
        # The browser decodes it, at the size the manifest says.
        size = await page.evaluate(
            """(src) => new Promise((resolve, reject) => {
                 const img = new Image();
                 img.onload = () => resolve(`${img.naturalWidth}x${img.naturalHeight}`);
                 img.onerror = () => reject(new Error(`can't load ${src}`));
                 img.src = src;
               })""",
            icon["src"],
        )
        if icon["sizes"] != "any":
            assert size == icon["sizes"], icon["src"]
        purposes.setdefault(icon.get("purpose", "any"), set()).add(icon["sizes"])
    assert {"192x192", "512x512"} <= purposes["any"]
    assert "512x512" in purposes["maskable"]

    # /favicon.ico: a real image, named by the page too.
    favicon = await page.request.get(server.url + "/favicon.ico")
    assert favicon.status == 200
    assert favicon.headers["content-type"].startswith("image/")
    icons = await page.locator('link[rel="icon"]').evaluate_all("(ls) => ls.map((l) => l.href)")
    assert f"{server.url}/favicon.ico" in icons
    assert all(r.status == 200 for r in favicon_requests), [
        (r.url, r.status) for r in favicon_requests
    ]

    # Chromium's own verdict: installable, and the manifest parses without errors.
    await until_controlled(page)
    cdp = await page.context.new_cdp_session(page)
    parsed = await cdp.send("Page.getAppManifest")
    assert parsed["url"] == f"{server.url}/manifest.webmanifest"
    assert parsed["errors"] == []
    verdict = await cdp.send("Page.getInstallabilityErrors")
    assert verdict["installabilityErrors"] == []

    assert errors == []


async def test_the_worker_controls_the_app_and_caches_the_shell_only(
    server: Server, browsers: Browsers
) -> None:
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        page = await browsers.page("alice")
        errors = console_errors(page)
        api_responses: list[Response] = []
        page.on("response", lambda r: api_responses.append(r) if "/api/" in r.url else None)
        await sign_up(page, server.url, "alice", "Alice")
        signed_up = [r for r in api_responses if r.url.endswith("/api/v1/accounts")]
        assert len(signed_up) == 1
        token = (await signed_up[0].json()).get("token")
        await until_controlled(page)

        # Use the app with the worker in control: what the API answers stays out of it.
        await bob.follow("alice")
        await bob.send("alice", "secret words")
        await page.reload()
        await until_controlled(page)
        await expect_online(page)
        await open_conversation(page, "bob")
        await expect(messages(page, "secret words")).to_have_count(1)
        assert api_responses
        assert not [r.url for r in api_responses if r.from_service_worker]

        worker = (await page.request.get(server.url + "/sw.js")).headers
        assert worker["cache-control"] == "no-cache"
        assert worker["content-type"].startswith("text/javascript")
        body = await (await page.request.get(server.url + "/sw.js")).text()
        version = re.search(r'const SHELL_VERSION = "([0-9a-f]+)";', body)
        assert version is not None
        shell = re.search(r"const SHELL_FILES = (\[.*?\]);", body)
        assert shell is not None
        expected = {server.url + path for path in json.loads(shell.group(1))}

        cached = await page.evaluate(CACHES)
        # One cache, this release's, holding exactly the shell's files.
        assert list(cached) == [f"ringfence-shell-{version.group(1)}"]
        urls = next(iter(cached.values()))
        assert set(urls) == expected
        assert not [u for u in urls if "/api/" in u or u.endswith("/healthz")]
        # Nothing personal anywhere in it: no message, no token, no cookie.
        stored = await page.evaluate(CACHED_RESPONSES)
        assert stored
        for entry in stored:
            assert "secret words" not in entry["body"], entry["url"]
            if token:
                assert token not in entry["body"], entry["url"]
            assert "set-cookie" not in entry["headers"], entry["url"]
        assert errors == []
    finally:
        await bob.close()


async def test_offline_start_shows_the_app_and_says_it_is_offline(
    server: Server, browsers: Browsers
) -> None:
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        page = await browsers.page("alice")
        context = page.context
        await sign_up(page, server.url, "alice", "Alice")
        await bob.follow("alice")
        await until_controlled(page)
        await expect_online(page)
        await expect(offline_notice(page)).to_have_count(0)

        # No network at all: the reload is answered by the worker, from its copy.
        await context.set_offline(True)
        response = await page.reload()
        assert response is not None
        assert response.from_service_worker
        assert response.status == 200
        await expect(page).to_have_title(re.compile("Ringfence"))
        await expect(offline_notice(page)).to_be_visible()
        await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
        # One notice: the event stream's own banner stands aside while the browser is offline.
        await expect(page.locator("#connection")).to_be_hidden()

        # A new window while offline opens Ringfence too, never the browser's error page.
        second = await context.new_page()
        response = await second.goto(server.url)
        assert response is not None
        assert response.from_service_worker
        await expect(offline_notice(second)).to_be_visible()
        await expect(
            second.get_by_role("heading", name=re.compile(r"^(Sign in|Inbox)$"))
        ).to_be_visible()
        await second.close()

        # Back online: the notice goes, the event stream reconnects, and it works.
        await context.set_offline(False)
        await expect(offline_notice(page)).to_be_hidden()
        await expect_online(page)
        await bob.send("alice", "you're back")
        await open_conversation(page, "bob")
        await expect(messages(page, "you're back")).to_have_count(1)
    finally:
        await bob.close()


async def test_a_server_that_is_down_at_start_is_an_offline_start_too(
    server: Server, browsers: Browsers
) -> None:
    """The browser believes it is online, but the server can't be reached (a network
    without internet, a server being restarted): the worker's copy opens, says it is
    offline, and the notice goes once the server is back."""
    page = await browsers.page("carol")
    await page.goto(server.url)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await until_controlled(page)

    await server.stop()
    response = await page.reload()
    assert response is not None
    assert response.from_service_worker
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(offline_notice(page)).to_be_visible()

    await server.start()
    await expect(offline_notice(page)).to_be_hidden(timeout=20_000)
    await sign_up(page, server.url, "carol")
