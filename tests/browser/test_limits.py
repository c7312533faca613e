"""What the web client shows when the server says "too fast" (429): what happened, and
when to try again. In real Chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import DESKTOP, Browsers, Coturn, Server
from tests.browser.ui import ApiUser, messages, open_conversation, send_message, sign_in
from tests.conftest import make_settings

pytestmark = pytest.mark.browser

TRY_AGAIN = r"Try again in \d+ (seconds|minutes) \(at \d\d:\d\d( [AP]M)?\)\."


@pytest.fixture
async def server(tmp_path: Path, database_url: str, coturn: Coturn) -> AsyncIterator[Server]:
    settings = make_settings(
        tmp_path,
        database_url,
        turn_urls=list(coturn.urls),
        turn_secret=coturn.secret,
        messages_per_minute=2,
        follows_per_hour=1,
    )
    srv = Server(settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def test_a_send_over_the_limit_says_when_to_try_again(
    server: Server, browsers: Browsers
) -> None:
    bob = await ApiUser.register(server.url, "bob", "Bob")
    alice = await ApiUser.register(server.url, "alice", "Alice")
    await bob.follow("alice")  # a conversation bob accepts: only the per-minute limit applies
    await alice.close()
    await bob.close()
    page = await browsers.page("alice", viewport=DESKTOP)
    await sign_in(page, server.url, "alice")
    await open_conversation(page, "bob")

    for text in ("one", "two", "three"):
        await send_message(page, text)
    await expect(messages(page, "two")).to_have_count(1)
    refused = page.locator("li.msg.failed").filter(has_text="three")
    await expect(refused.get_by_role("alert")).to_have_text(
        re.compile(rf"^Not sent: You're sending messages too quickly\. {TRY_AGAIN}")
    )
    await expect(refused.get_by_role("button", name="Retry")).to_be_visible()

    # Following: one an hour here; unfollowing at once is the second, and says so.
    await page.get_by_role("button", name="Follow", exact=True).click()
    await page.get_by_role("button", name="Following", exact=True).click()
    await expect(page.get_by_role("alert").filter(has_text="Couldn't unfollow")).to_have_text(
        re.compile(rf"You've followed and unfollowed people too often\. {TRY_AGAIN}")
    )
