"""Reporting a user from the conversation view, in real Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from ringfence.services.moderation import REPORTS_PER_HOUR
from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import ApiUser, open_conversation, sign_in

pytestmark = pytest.mark.browser


def moderation(server: Server) -> Any:
    """The running app's moderation service (to see what the admins would see)."""
    live = server._live
    assert live is not None, "the server is not running"
    return live.services.moderation


async def report(page: Page, reason: str) -> None:
    """Open the report form, give a reason, and confirm."""
    await page.get_by_role("button", name="Report", exact=True).click()
    form = page.get_by_role("form", name=re.compile(r"^Report @"))
    await expect(form).to_be_visible()
    await expect(form.get_by_label("What happened? (optional)")).to_be_focused()
    await form.get_by_label("What happened? (optional)").fill(reason)
    await form.get_by_role("button", name="Send report").click()


async def test_reporting_a_user_reaches_the_admins(server: Server, browsers: Browsers) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob_api.send("alice", "buy cheap pills at example.invalid")
        page = await browsers.page("alice", viewport=DESKTOP)
        await sign_in(page, server.url, "alice")
        await open_conversation(page, "bob")

        # Opening the form and cancelling sends nothing.
        await page.get_by_role("button", name="Report", exact=True).click()
        await expect(page.get_by_role("button", name="Report", exact=True)).to_have_attribute(
            "aria-expanded", "true"
        )
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.get_by_role("form", name="Report @bob")).to_be_hidden()
        assert await moderation(server).reports(include_resolved=False) == []

        await report(page, "  spam links  ")
        await expect(page.get_by_role("status").filter(has_text="Reported")).to_have_text(
            "Reported. Thank you."
        )
        await expect(page.get_by_role("form", name="Report @bob")).to_be_hidden()
        (filed,) = await moderation(server).reports(include_resolved=False)
        assert filed.reporter.username == "alice"
        assert filed.reported.username == "bob"
        assert filed.reason == "spam links"

        # Past the hourly limit the page says so, neutrally.
        for n in range(REPORTS_PER_HOUR - 1):
            resp = await alice_api.call(
                "POST", "/api/v1/reports", json={"username": "bob", "reason": f"again {n}"}
            )
            assert resp.status_code == 201, resp.text
        await report(page, "one more")
        await expect(page.locator(".report-result")).to_have_text(
            "You've sent several reports recently. Please try again later."
        )
        assert len(await moderation(server).reports(include_resolved=False)) == REPORTS_PER_HOUR
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_reporting_yourself_is_not_offered(server: Server, browsers: Browsers) -> None:
    for name in ("alice", "bob"):
        await (await ApiUser.register(server.url, name)).close()
    page = await browsers.page("alice", viewport=DESKTOP)
    await sign_in(page, server.url, "alice")
    # Someone else's conversation offers it...
    await open_conversation(page, "bob")
    await expect(page.get_by_role("button", name="Report", exact=True)).to_be_visible()
    # ...your own (reachable by address) does not.
    await page.evaluate("location.hash = '#/c/alice'")
    await expect(page.locator(".handle", has_text="@alice")).to_be_visible()
    await expect(page.get_by_role("button", name="Block")).to_be_visible()
    await expect(page.get_by_role("button", name="Report", exact=True)).to_have_count(0)
    assert await moderation(server).reports(include_resolved=False) == []
