"""A compact conversation header on a phone (issue 12, §4.7): at 390x844 the header is
one row, and the actions of the row under it (Follow, Block, Report) sit in a "⋯"
menu with every action, usable from the keyboard alone (the WAI-ARIA menu button
pattern). Its "Audio call" places a call just as the button does. The desktop
header is unchanged."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import DESKTOP, PHONE, Browsers, Server
from tests.browser.ui import (
    alice_may_call_bob,
    call_dialog,
    console_errors,
    open_conversation,
    sign_in,
)

pytestmark = pytest.mark.browser

ITEMS = ["Audio call", "Video call", "Follow", "Block", "Report"]


async def test_the_phone_menu_works_by_keyboard_and_places_a_call(
    server: Server, browsers: Browsers
) -> None:
    await alice_may_call_bob(server.url, "hi bob, may I call you?")
    alice = await browsers.page("alice", viewport=PHONE)
    bob = await browsers.page("bob", viewport=DESKTOP)
    errors = console_errors(alice) + console_errors(bob)
    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")

    # The desktop is as it was: the buttons in a row, no menu.
    await open_conversation(bob, "alice")
    await expect(bob.get_by_role("button", name="More actions")).to_be_hidden()
    for name in ("Audio call", "Video call", "Block", "Report"):
        await expect(bob.get_by_role("button", name=name, exact=True)).to_be_visible()

    # The phone: Block and Report only in the menu.
    await open_conversation(alice, "bob")
    more = alice.get_by_role("button", name="More actions")
    await expect(more).to_be_visible()
    await expect(more).to_have_attribute("aria-haspopup", "menu")
    await expect(more).to_have_attribute("aria-expanded", "false")
    await expect(alice.get_by_role("button", name="Block", exact=True)).to_be_hidden()
    await expect(alice.get_by_role("button", name="Report", exact=True)).to_be_hidden()
    header = alice.locator(".conv-header")
    box = await header.bounding_box()
    assert box is not None
    assert box["width"] <= PHONE["width"]

    # Enter opens it on its first item; arrows move, and wrap; Escape closes it and
    # gives focus back to "⋯".
    await more.focus()
    await alice.keyboard.press("Enter")
    menu = alice.get_by_role("menu", name="More actions")
    await expect(menu).to_be_visible()
    await expect(more).to_have_attribute("aria-expanded", "true")
    items = menu.locator('[role^="menuitem"]')
    await expect(items).to_have_text(ITEMS)
    await expect(menu.get_by_role("menuitem", name="Audio call")).to_be_focused()
    await alice.keyboard.press("ArrowDown")
    await expect(menu.get_by_role("menuitem", name="Video call")).to_be_focused()
    await alice.keyboard.press("ArrowUp")
    await alice.keyboard.press("ArrowUp")
    await expect(menu.get_by_role("menuitem", name="Report")).to_be_focused()
    await alice.keyboard.press("Home")
    await expect(menu.get_by_role("menuitem", name="Audio call")).to_be_focused()
    await alice.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(more).to_be_focused()
    await expect(more).to_have_attribute("aria-expanded", "false")

    # Space opens it too; Enter on "Audio call" rings Bob, as the button would.
    await alice.keyboard.press(" ")
    await expect(menu.get_by_role("menuitem", name="Audio call")).to_be_focused()
    await alice.keyboard.press("Enter")
    await expect(menu).to_be_hidden()
    await expect(call_dialog(alice).locator("#call-status")).to_have_text("Ringing…")
    incoming = call_dialog(bob)
    await expect(incoming.get_by_role("heading", name="Alice")).to_be_visible()
    await expect(incoming.locator("#call-status")).to_have_text("Incoming audio call")
    await call_dialog(alice).get_by_role("button", name="Hang up").click()
    await expect(incoming).to_be_hidden()
    assert errors == []
