"""The Account page in the web client (issue 12, part 2): display name, password and
signed-in devices.

- A new display name shows at once wherever the people Alice talks with see her (their
  inbox, their open conversation), without a reload; a name the server refuses is
  explained in plain words and changes nothing.
- Changing the password signs out Alice's other devices (their page returns to the
  sign-in form); a wrong current password, or new ones that don't match, are refused
  with plain words (the last without asking the server).
- The list of signed-in devices names each device, marks this one, never shows an
  address, and signs another device out on the spot.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, Page, Request, expect

from tests.browser.conftest import DESKTOP, Browsers, Server, machine_addresses
from tests.browser.ui import (
    PASSWORD,
    ApiUser,
    console_errors,
    expect_online,
    go_to,
    sign_in,
    sign_up,
    watch_frames,
)

pytestmark = pytest.mark.browser

NAME_RULE = "Use 1 to 64 visible characters, on one line."
NEW_PASSWORD = "a brand new one"
DEVICE = "Chrome on Linux"  # what the server makes of Playwright's Chromium on Linux


def requests_to(page: Page, path: str) -> list[str]:
    """Record every request the page makes to this API path."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.split("?")[0].endswith(path):
            seen.append(request.method)

    page.on("request", on_request)
    return seen


def chat_link(page: Page, name: str) -> Locator:
    chats = page.get_by_role("region", name="Conversations")
    return chats.get_by_role("link", name=re.compile(re.escape(name)))


def sessions_list(page: Page) -> Locator:
    return page.get_by_role("list", name="Signed-in devices").get_by_role("listitem")


async def expect_signed_out(page: Page) -> None:
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()


async def test_a_new_display_name_shows_at_once_and_a_bad_one_changes_nothing(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob_api.follow("alice")
        await alice_api.send("bob", "hello bob")

        alice = await browsers.page("alice", viewport=DESKTOP)
        bob_context = await browsers.launch("bob")
        bob_inbox = bob_context.pages[0] if bob_context.pages else await bob_context.new_page()
        bob_chat = await bob_context.new_page()  # its own tab: its own session (below)
        errors = (
            console_errors(alice, refused=("/api/v1/me",))
            + console_errors(bob_inbox)
            + console_errors(bob_chat)
        )
        bob_frames = watch_frames(bob_inbox)
        await sign_in(alice, server.url, "alice")
        # "This is a shared computer": each tab keeps a session of its own.
        await sign_in(bob_inbox, server.url, "bob", shared_computer=True)
        await sign_in(bob_chat, server.url, "bob", shared_computer=True)
        await chat_link(bob_chat, "Alice").click()
        await expect(bob_chat.get_by_role("heading", level=1)).to_have_text("Alice")
        await expect(chat_link(bob_inbox, "Alice")).to_be_visible()
        # A mark that a reload would wipe: the names must change without one.
        for page in (bob_inbox, bob_chat):
            await page.evaluate("() => { window.__rfNotReloaded = true; }")

        await go_to(alice, "Account")
        await expect(alice).to_have_title("Account · Ringfence")
        field = alice.get_by_role("textbox", name="Display name")
        await expect(field).to_have_value("Alice")
        await field.fill("Alice Liddell")
        await alice.get_by_role("button", name="Save", exact=True).click()
        status = alice.locator("#display-name-status")
        await expect(status).to_have_text(
            "Saved. People you talk with now see you as Alice Liddell."
        )
        await expect(status).to_have_attribute("aria-live", "polite")

        # Bob sees it at once: in his inbox, and in the conversation he has open (its
        # heading, its composer's label, the tab's title).
        await expect(chat_link(bob_inbox, "Alice Liddell")).to_be_visible()
        await expect(bob_chat.get_by_role("heading", level=1)).to_have_text("Alice Liddell")
        await expect(bob_chat.get_by_role("textbox", name="Message Alice Liddell")).to_be_visible()
        await expect(bob_chat).to_have_title("Alice Liddell · Ringfence")
        for page in (bob_inbox, bob_chat):
            assert await page.evaluate("() => window.__rfNotReloaded === true")
        (event,) = bob_frames.of_type("user.updated")
        assert event["user"]["username"] == "alice"
        assert event["user"]["display_name"] == "Alice Liddell"

        # Names the server refuses: only spaces, and one that would reverse the text
        # after it (U+202E). Plain words beside the field; nothing changes anywhere.
        for bad in ("   ", "evil\u202eexe"):
            await field.fill(bad)
            await alice.get_by_role("button", name="Save", exact=True).click()
            error = alice.locator("#display-name-error")
            await expect(error).to_have_text(
                f"{NAME_RULE} Your display name is still Alice Liddell."
            )
            await expect(field).to_have_attribute("aria-invalid", "true")
            await expect(field).to_be_focused()
            await expect(status).to_have_text("")
        me = await alice_api.call("GET", "/api/v1/me")
        assert me.json()["user"]["display_name"] == "Alice Liddell"
        await expect(chat_link(bob_inbox, "Alice Liddell")).to_be_visible()
        await expect(bob_chat.get_by_role("heading", level=1)).to_have_text("Alice Liddell")
        assert len(bob_frames.of_type("user.updated")) == 1

        # Alice's own page keeps her new name across a reload (the stored session
        # was updated too).
        await alice.reload()
        await expect(alice.get_by_role("textbox", name="Display name")).to_have_value(
            "Alice Liddell"
        )
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_changing_the_password_signs_out_the_other_devices(
    server: Server, browsers: Browsers
) -> None:
    laptop = await browsers.page("alice-laptop", viewport=DESKTOP)
    phone = await browsers.page("alice-phone")
    errors = console_errors(laptop, refused=("/api/v1/me/password",)) + console_errors(phone)
    password_requests = requests_to(laptop, "/api/v1/me/password")
    await sign_up(laptop, server.url, "alice", "Alice")
    await expect_online(laptop)
    await sign_in(phone, server.url, "alice")

    await go_to(laptop, "Account")
    await expect(sessions_list(laptop)).to_have_count(2)
    current = laptop.get_by_label("Current password")
    new = laptop.get_by_label("New password", exact=True)
    repeat = laptop.get_by_label("Repeat the new password")
    await expect(current).to_have_attribute("autocomplete", "current-password")
    await expect(new).to_have_attribute("autocomplete", "new-password")
    await expect(repeat).to_have_attribute("autocomplete", "new-password")
    change = laptop.get_by_role("button", name="Change password")
    error = laptop.locator("#password-error")

    # Refused here, before anything is sent: too short, then not typed alike.
    await current.fill(PASSWORD)
    await new.fill("short")
    await repeat.fill("short")
    await change.click()
    await expect(error).to_have_text("Your new password needs at least 10 characters.")
    await expect(new).to_have_attribute("aria-invalid", "true")
    await new.fill(NEW_PASSWORD)
    await repeat.fill("a brand new two")
    await change.click()
    await expect(error).to_have_text(
        "The two new passwords don't match. Type the new one again in both."
    )
    await expect(repeat).to_have_attribute("aria-invalid", "true")
    await expect(repeat).to_be_focused()
    assert password_requests == []

    # The server refuses a wrong current password: plain words, nothing changes.
    await current.fill("not my password")
    await repeat.fill(NEW_PASSWORD)
    await change.click()
    await expect(error).to_have_text("That isn't your current password.")
    await expect(current).to_have_attribute("aria-invalid", "true")
    assert password_requests == ["POST"]
    await expect_online(phone)
    await expect(phone.get_by_role("heading", name="Inbox")).to_be_visible()

    # The right one: changed, the phone is signed out (its socket closed with 4401)
    # and the list of devices now holds only this one.
    await current.fill(PASSWORD)
    await change.click()
    status = laptop.locator("#password-status")
    await expect(status).to_have_text("Password changed. Your other devices have been signed out.")
    await expect(status).to_have_attribute("aria-live", "polite")
    await expect(error).to_have_text("")
    await expect(current).to_have_value("")
    await expect(sessions_list(laptop)).to_have_count(1)
    await expect(sessions_list(laptop)).to_contain_text("This device")
    await expect_signed_out(phone)
    await expect(
        phone.get_by_role("status").filter(has_text="Your session has ended.")
    ).to_be_visible()
    await expect_online(laptop)

    # The new password is the one that works now.
    await phone.get_by_label("Username").fill("alice")
    await phone.get_by_label("Password").fill(NEW_PASSWORD)
    await phone.get_by_role("button", name="Sign in").click()
    await expect(phone.get_by_role("heading", name="Inbox")).to_be_visible()
    assert errors == []


async def test_signed_in_devices_are_listed_without_addresses_and_can_be_signed_out(
    server: Server, browsers: Browsers
) -> None:
    laptop = await browsers.page("alice-laptop", viewport=DESKTOP)
    phone = await browsers.page("alice-phone")
    errors = console_errors(laptop) + console_errors(phone)
    await sign_up(laptop, server.url, "alice", "Alice")
    await sign_in(phone, server.url, "alice")

    await go_to(laptop, "Account")
    items = sessions_list(laptop)
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_contain_text(DEVICE)
    await expect(items.nth(1)).to_contain_text(DEVICE)
    # The laptop signed in first: it is this device.
    await expect(items.nth(0)).to_contain_text("This device")
    await expect(items.nth(1)).not_to_contain_text("This device")
    for item in (items.nth(0), items.nth(1)):
        await expect(item).to_contain_text(re.compile(r"Signed in .+ · Last used .+"))
    body = await laptop.locator("body").inner_text()
    for address in {"127.0.0.1", *machine_addresses()}:
        assert address not in body, f"the page shows the address {address}"

    this_one = laptop.get_by_role("button", name=f"Sign out {DEVICE} (this device)")
    other = laptop.get_by_role("button", name=re.compile(f"^Sign out {DEVICE}, signed in "))
    await expect(this_one).to_be_visible()
    await expect(other).to_have_count(1)
    await other.click()
    await expect(laptop.locator("#sessions-status")).to_have_text(f"Signed out {DEVICE}.")
    await expect(items).to_have_count(1)
    await expect(items).to_contain_text("This device")
    await expect_signed_out(phone)
    # The name of the one left needs no date to tell it apart any more.
    await expect(
        laptop.get_by_role("button", name=f"Sign out {DEVICE} (this device)")
    ).to_be_visible()

    # This device's own button signs this tab out, as the bar's Sign out does.
    await laptop.get_by_role("button", name=f"Sign out {DEVICE} (this device)").click()
    await expect_signed_out(laptop)
    assert errors == []
