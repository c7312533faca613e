"""Screenshots of each main screen, at desktop and phone size, for the README
(issue 12, §4.8): sign-in, inbox, conversation, the Calls page, privacy settings, the
Account page, and the call screen of a real relayed video call between two Chromium
pages (through the real server and coturn, with Chromium's fake camera).

Every run overwrites docs/screenshots/<screen>-<desktop|phone>.png. The people and
messages are fixed demo data, so the pictures look the same from run to run (but
for times and the fake camera's frame), and nothing in them is anyone's own.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Browsers, Server
from tests.browser.ui import (
    ApiUser,
    call_dialog,
    console_errors,
    expect_connected,
    expect_media_flowing,
    go_to,
    messages,
    sign_in,
)

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCREENS = ("signin", "inbox", "conversation", "calls", "privacy", "account", "call")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CONVERSATION = [
    ("alice", "Hi Bob! Are we still on for the climbing trip on Saturday?"),
    ("bob", "Yes! I booked the 9:30 slot at the wall. Can you bring the spare rope?"),
    ("alice", "Sure. I'll also bring snacks for after."),
    ("bob", "Perfect. Quick call to sort out the lift?"),
]


def png_size(path: Path) -> tuple[int, int]:
    """The width and height of a PNG file, read from its IHDR chunk; fails on any
    file that isn't a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR", f"{path.name} has no IHDR chunk first"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND", f"{path.name} is cut short"
    return width, height


async def shoot(page: Page, screen: str) -> None:
    """Save this screen at both sizes (the page is left at desktop size)."""
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)  # type: ignore[arg-type]
        # The layout follows the width at once; let a frame be painted in it.
        await page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r(null)))")
        await page.screenshot(path=str(SHOTS / f"{screen}-{size}.png"), full_page=False)
    await page.set_viewport_size(SIZES["desktop"])  # type: ignore[arg-type]


async def test_screenshots_of_each_main_screen(server: Server, browsers: Browsers) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for screen in SCREENS:
        for size in SIZES:
            (SHOTS / f"{screen}-{size}.png").unlink(missing_ok=True)

    alice_api = await ApiUser.register(server.url, "alice", "Alice Moreau")
    bob_api = await ApiUser.register(server.url, "bob", "Bob Okafor")
    carol_api = await ApiUser.register(server.url, "carol", "Carol Diaz")
    dan_api = await ApiUser.register(server.url, "dan", "Dan Whitfield")
    try:
        people = {"alice": alice_api, "bob": bob_api}
        for api, other in ((alice_api, "bob"), (bob_api, "alice"), (alice_api, "carol")):
            await api.follow(other)
        await carol_api.send("alice", "The photos from Sunday are up, have a look!")
        await alice_api.send("carol", "They're lovely, thank you!")
        await dan_api.send("alice", "Hello, I'm organising the club newsletter. Got a minute?")
        for who, text in CONVERSATION:
            await people[who].send("bob" if who == "alice" else "alice", text)
    finally:
        for api in (alice_api, bob_api, carol_api, dan_api):
            await api.close()

    alice = await browsers.page("alice", viewport=SIZES["desktop"])
    bob = await browsers.page("bob", viewport=SIZES["desktop"])
    errors = console_errors(alice) + console_errors(bob)

    await alice.goto(server.url)
    await expect(alice.get_by_role("heading", name="Sign in")).to_be_visible()
    await shoot(alice, "signin")

    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")
    # An offer to turn on notifications, where the browser can have them, would sit
    # over every screen: Alice answers it as a person would, once.
    not_now = alice.get_by_text("Not now", exact=True)
    if await not_now.is_visible():
        await not_now.click()
    chats = alice.get_by_role("region", name="Conversations")
    await expect(chats.get_by_role("link", name=re.compile("Bob Okafor"))).to_be_visible()
    await expect(alice.get_by_role("region", name=re.compile("^Message requests"))).to_be_visible()
    await shoot(alice, "inbox")

    await chats.get_by_role("link", name=re.compile("Bob Okafor")).click()
    await expect(messages(alice, CONVERSATION[-1][1])).to_be_visible()
    await alice.get_by_role("textbox", name=re.compile("^Message ")).fill("Calling you now")
    await shoot(alice, "conversation")
    await alice.get_by_role("textbox", name=re.compile("^Message ")).fill("")

    await go_to(alice, "Privacy")
    await expect(alice.get_by_role("heading", level=1)).to_be_visible()
    await shoot(alice, "privacy")
    await go_to(alice, "Account")
    await expect(alice.get_by_role("heading", level=1)).to_be_visible()
    await expect(alice.get_by_text(re.compile("This device"))).not_to_have_count(0)
    await shoot(alice, "account")

    # A real call: Alice rings Bob, Bob answers, video flows through the relay.
    await go_to(alice, "Inbox")
    await chats.get_by_role("link", name=re.compile("Bob Okafor")).click()
    await alice.get_by_role("button", name="Video call").click()
    incoming = call_dialog(bob)
    await expect(incoming.locator("#call-status")).to_have_text("Incoming video call")
    await incoming.get_by_role("button", name="Accept video call").click()
    await expect_connected(alice)
    await expect_connected(bob)
    await expect_media_flowing(alice, ("audio", "video"))
    await expect(call_dialog(alice).get_by_label("Remote video")).to_be_visible()
    await shoot(alice, "call")
    await call_dialog(alice).get_by_role("button", name="Hang up").click()
    await expect(call_dialog(alice)).to_be_hidden()

    await go_to(alice, "Calls")
    await expect(alice.locator("li.call-entry").first).to_be_visible()
    await shoot(alice, "calls")

    for screen in SCREENS:
        for size, viewport in SIZES.items():
            path = SHOTS / f"{screen}-{size}.png"
            assert path.is_file(), f"{path.name} was not written"
            assert png_size(path) == (viewport["width"], viewport["height"]), path.name
    total = sum(path.stat().st_size for path in SHOTS.glob("*.png"))
    assert total < 2_500_000, f"docs/screenshots holds {total} bytes"
    assert errors == []
