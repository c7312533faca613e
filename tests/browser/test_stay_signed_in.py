"""Staying signed in (issue 11, part 4): one session for every tab of a browser.

- On one's own device (the default) a person signed in in one tab is signed in in a new
  tab, and after the browser is closed and started again (a persistent profile).
- Signing out in one tab signs out every open tab at once, without a reload; signing
  in again in one tab signs the others in too.
- "This is a shared computer" at sign-in keeps the session to its tab, as before: a
  new tab shows the sign-in form, the browser's own session and the tab's never touch,
  and closing the browser loses it.
- A session revoked from another device (DELETE /me/sessions/{id}) takes every open
  tab of that browser back to the sign-in form.
- The token never appears in a URL (a page's, a request's or the WebSocket's), and
  nothing logs a console error or throws.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Playwright, WebSocketRoute, expect

from tests.browser.conftest import BASE_ARGS, CHROMIUM, UI_TIMEOUT_MS, Browsers, Server
from tests.browser.ui import PASSWORD, ApiUser, console_errors, expect_online, sign_in

pytestmark = pytest.mark.browser

SHARED = "This is a shared computer"
HINT = (
    "Keeps you signed in only in this tab, until you close it. Leave it unticked on your "
    "own device to stay signed in in every tab, even after a restart."
)
NOT_RELOADED = "() => { window.__rfNotReloaded = true; }"
STILL_NOT_RELOADED = "() => window.__rfNotReloaded === true"


class Watch:
    """What the pages of the browsers it watches do that a token must stay out of
    (page, request and WebSocket URLs), and their console errors and exceptions."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []
        self._console: list[list[str]] = []

    def context(self, context: BrowserContext) -> None:
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("weberror", lambda error: self.errors.append(f"uncaught {error.error}"))
        context.on("page", self._page)
        for page in context.pages:
            self._page(page)

    def _page(self, page: Page) -> None:
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("framenavigated", lambda frame: self.urls.append(frame.url))
        self._console.append(console_errors(page))

    def check(self, *tokens: str) -> None:
        assert self.urls, "no URL was recorded"
        assert any("/api/v1/events" in url for url in self.urls), "no WebSocket was seen"
        leaked = [url for url in self.urls if "rf_" in url or any(t in url for t in tokens)]
        assert not leaked, leaked
        problems = self.errors + [error for errors in self._console for error in errors]
        assert problems == [], problems


async def launch_profile(pw: Playwright, profile: Path) -> BrowserContext:
    """A browser on this profile directory; a second call on the same directory, once
    the first browser is closed, is a browser restart as far as the page can tell.
    The same flags as conftest's browsers."""
    context = await pw.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        headless=True,
        args=list(BASE_ARGS),
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context


async def first_page(context: BrowserContext) -> Page:
    return context.pages[0] if context.pages else await context.new_page()


async def expect_signed_in(page: Page, username: str = "alice") -> None:
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(page.locator("#me-name")).to_have_text(f"@{username}")
    await expect_online(page)


async def expect_signed_out(page: Page) -> None:
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()


async def fill_in_sign_in(page: Page, username: str) -> None:
    """Sign in from the form already on screen (no navigation, no reload)."""
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def stored(page: Page) -> dict[str, Any]:
    """What the page keeps under the session key: for the browser, and for the tab."""
    result: dict[str, Any] = await page.evaluate(
        """() => ({
          browser: localStorage.getItem("ringfence.session"),
          tab: sessionStorage.getItem("ringfence.session"),
        })"""
    )
    return result


async def token_of(page: Page) -> str:
    kept = await stored(page)
    raw = kept["tab"] or kept["browser"]
    assert raw, "the page keeps no session"
    token: str = json.loads(raw)["token"]
    return token


async def deaf_to_server_closes(page: Page) -> None:
    """Route the page's event socket through Playwright, and never pass on the
    server's closing it (4401 when the session ends): the page can then learn of a
    sign-out in another tab only from that tab. Before the page opens its socket."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_close(lambda code, reason: None)

    await page.route_web_socket(re.compile(r"/api/v1/events$"), route)


async def accepted(server: Server, token: str) -> bool:
    """Whether the server still takes this token."""
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
        resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


async def test_a_new_tab_and_a_browser_restart_stay_signed_in(
    server: Server, playwright: Playwright, tmp_path: Path
) -> None:
    await (await ApiUser.register(server.url, "alice", "Alice")).close()
    profile = tmp_path / "chromium-alice"
    watch = Watch()
    context = await launch_profile(playwright, profile)
    try:
        watch.context(context)
        first = await first_page(context)
        await first.goto(server.url)
        # The box is clearly labelled, explained, and unticked by default.
        box = first.get_by_role("checkbox", name=SHARED)
        await expect(box).not_to_be_checked()
        await expect(box).to_have_accessible_description(HINT)
        await sign_in(first, server.url, "alice")
        token = await token_of(first)
        assert (await stored(first))["tab"] is None

        # A new tab of the same browser is signed in, with the same session.
        second = await context.new_page()
        await second.goto(server.url)
        await expect_signed_in(second)
        assert await token_of(second) == token
        for page in (first, second):
            assert token not in page.url
    finally:
        await context.close()

    # The browser is closed and started again on the same profile: still signed in.
    context = await launch_profile(playwright, profile)
    try:
        watch.context(context)
        page = await first_page(context)
        await page.goto(server.url)
        await expect_signed_in(page)
        assert await token_of(page) == token
        assert token not in page.url
    finally:
        await context.close()
    watch.check(token)


async def test_signing_out_in_one_tab_signs_out_every_tab_and_signing_in_signs_them_in(
    server: Server, browsers: Browsers
) -> None:
    await (await ApiUser.register(server.url, "alice", "Alice")).close()
    context = await browsers.launch("alice")
    watch = Watch()
    watch.context(context)
    first = await first_page(context)
    await sign_in(first, server.url, "alice")
    token = await token_of(first)
    second = await context.new_page()
    await deaf_to_server_closes(second)
    await second.goto(server.url)
    await expect_signed_in(second)
    await second.evaluate(NOT_RELOADED)

    await first.get_by_role("button", name="Sign out").click()
    await expect_signed_out(first)
    # The other tab follows at once, without a reload, and says why.
    await expect_signed_out(second)
    await expect(second.get_by_role("status")).to_have_text("Your session has ended.")
    assert await second.evaluate(STILL_NOT_RELOADED)
    for page in (first, second):
        assert await stored(page) == {"browser": None, "tab": None}
    assert not await accepted(server, token)

    # Signing in again in the second tab signs the first in too, without a reload.
    await first.evaluate(NOT_RELOADED)
    await fill_in_sign_in(second, "alice")
    await expect_signed_in(second)
    await expect_signed_in(first)
    assert await first.evaluate(STILL_NOT_RELOADED)
    new_token = await token_of(second)
    assert new_token != token
    assert await token_of(first) == new_token
    watch.check(token, new_token)


async def test_a_shared_computer_keeps_the_session_to_its_tab(
    server: Server, playwright: Playwright, tmp_path: Path
) -> None:
    await (await ApiUser.register(server.url, "alice", "Alice")).close()
    await (await ApiUser.register(server.url, "bob", "Bob")).close()
    profile = tmp_path / "chromium-shared"
    watch = Watch()
    tokens: list[str] = []
    context = await launch_profile(playwright, profile)
    try:
        watch.context(context)
        first = await first_page(context)
        await sign_in(first, server.url, "alice", shared_computer=True)
        alice_token = await token_of(first)
        tokens.append(alice_token)
        assert (await stored(first))["browser"] is None
        await first.reload()  # a reload of that tab keeps it, as before
        await expect_signed_in(first)
        await first.evaluate(NOT_RELOADED)

        # A new tab shows the sign-in form.
        second = await context.new_page()
        await second.goto(server.url)
        await expect_signed_out(second)
        await expect(second.get_by_role("checkbox", name=SHARED)).not_to_be_checked()
        # Someone signs in there for the browser: the shared tab keeps its own session,
        # and signing out there leaves it alone too.
        await fill_in_sign_in(second, "bob")
        await expect_signed_in(second, "bob")
        tokens.append(await token_of(second))
        await second.get_by_role("button", name="Sign out").click()
        await expect_signed_out(second)
        await expect_signed_in(first)
        assert await token_of(first) == alice_token
        assert await first.evaluate(STILL_NOT_RELOADED)
        assert await accepted(server, alice_token)

        # Signing out of the shared tab touches no other tab either.
        third = await context.new_page()
        await sign_in(third, server.url, "bob")
        tokens.append(await token_of(third))
        await first.get_by_role("button", name="Sign out").click()
        await expect_signed_out(first)
        await expect_signed_in(third, "bob")
        assert not await accepted(server, alice_token)
        await third.get_by_role("button", name="Sign out").click()
        await expect_signed_out(third)

        # Shared again, then the browser is closed: the session went with the tab.
        await sign_in(first, server.url, "alice", shared_computer=True)
        tokens.append(await token_of(first))
    finally:
        await context.close()
    context = await launch_profile(playwright, profile)
    try:
        watch.context(context)
        page = await first_page(context)
        await page.goto(server.url)
        await expect_signed_out(page)
        assert await stored(page) == {"browser": None, "tab": None}
    finally:
        await context.close()
    watch.check(*tokens)


async def test_a_session_revoked_from_another_device_signs_out_every_tab(
    server: Server, browsers: Browsers
) -> None:
    phone = await ApiUser.register(server.url, "alice", "Alice")  # another device
    try:
        context = await browsers.launch("alice")
        watch = Watch()
        watch.context(context)
        tabs = [await first_page(context), await context.new_page(), await context.new_page()]
        await sign_in(tabs[0], server.url, "alice")
        token = await token_of(tabs[0])
        for tab in tabs[1:]:
            await tab.goto(server.url)
            await expect_signed_in(tab)
        for tab in tabs:
            await tab.evaluate(NOT_RELOADED)

        # One session for the whole browser, however many tabs it has open.
        listed = (await phone.call("GET", "/api/v1/me/sessions")).json()["sessions"]
        (browser_session,) = [s for s in listed if not s["current"]]
        resp = await phone.call("DELETE", f"/api/v1/me/sessions/{browser_session['id']}")
        assert resp.status_code == 204

        for tab in tabs:
            await expect_signed_out(tab)
            assert await tab.evaluate(STILL_NOT_RELOADED)
            assert await stored(tab) == {"browser": None, "tab": None}
        # And a new tab stays signed out.
        fresh = await context.new_page()
        await fresh.goto(server.url)
        await expect_signed_out(fresh)
        watch.check(token)
    finally:
        await phone.close()
