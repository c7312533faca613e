"""Deleting an account from the web client's Account page (issue 12, part 2).

- The "Delete account" section says plainly what deleting does before anything can
  be deleted, and asks for the password and the username typed out: a username
  that isn't hers is refused on the page, without asking the server; a wrong
  password is refused by the server, in plain words, and nothing is deleted.
- Once deleted, the tab is signed out (and stays so after a reload) and the sign-in
  page says the account has been deleted; her other device is signed out too.
- Bob, who talked with her, sees "Deleted account" in the conversation he has open
  at once, and in his inbox and the conversation after a reload, with every message
  she sent still there; he can no longer write to her.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, Page, Request, expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import ApiUser, console_errors, go_to, sign_in

pytestmark = pytest.mark.browser

DELETED_NOTICE = (
    "Your account has been deleted, and every device of yours is signed out. Messages "
    "you sent stay with the people who got them, from \u201cDeleted account\u201d."
)


def deletions(page: Page) -> list[str]:
    """Every DELETE /api/v1/me the page makes."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "DELETE" and request.url.split("?")[0].endswith("/api/v1/me"):
            seen.append(request.method)

    page.on("request", on_request)
    return seen


def chat_link(page: Page, name: str) -> Locator:
    chats = page.get_by_role("region", name="Conversations")
    return chats.get_by_role("link", name=re.compile(re.escape(name)))


async def expect_signed_out(page: Page) -> None:
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()


async def test_deleting_the_account_signs_out_and_leaves_deleted_account_behind(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob_api.follow("alice")
        await alice_api.send("bob", "hello bob, it's alice")
        await bob_api.send("alice", "hi alice")
        await alice_api.send("bob", "last words")

        alice = await browsers.page("alice", viewport=DESKTOP)
        phone = await browsers.page("alice-phone")
        bob = await browsers.page("bob", viewport=DESKTOP)
        errors = (
            console_errors(alice, refused=("/api/v1/me", "/api/v1/sessions/current"))
            + console_errors(phone)
            + console_errors(bob, refused=("/messages",))
        )
        asked = deletions(alice)
        await sign_in(alice, server.url, "alice")
        await sign_in(phone, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await chat_link(bob, "Alice").click()
        await expect(bob.get_by_role("heading", level=1)).to_have_text("Alice")
        await expect(bob.get_by_text("last words")).to_be_visible()

        await go_to(alice, "Account")
        section = alice.get_by_role("region", name="Delete account")
        await expect(section).to_be_visible()
        await expect(section.locator("#delete-warning")).to_contain_text("This can't be undone.")
        await expect(section.locator("#delete-warning")).to_contain_text(
            "Messages you sent stay with the people who got them"
        )
        password = section.get_by_label("Your password")
        confirm = section.get_by_label("Type your username to confirm")
        button = section.get_by_role("button", name="Delete my account")
        error = alice.locator("#delete-error")
        await expect(password).to_have_attribute("type", "password")

        # Refused on the page: no password, then a username that isn't hers.
        await button.click()
        await expect(error).to_have_text("Enter your password.")
        await expect(password).to_be_focused()
        await password.fill("correct horse 1")
        await confirm.fill("bob")
        await button.click()
        await expect(error).to_have_text("Type your username, alice, to confirm.")
        await expect(confirm).to_have_attribute("aria-invalid", "true")
        await expect(confirm).to_be_focused()
        assert asked == []

        # Refused by the server: the wrong password. Nothing is deleted.
        await confirm.fill("alice")
        await password.fill("not my password")
        await button.click()
        await expect(error).to_have_text("That isn't your password. Your account was not deleted.")
        await expect(password).to_have_attribute("aria-invalid", "true")
        assert asked == ["DELETE"]
        me = await alice_api.call("GET", "/api/v1/me")
        assert me.status_code == 200

        # The right one: deleted, signed out here and on the phone.
        await password.fill("correct horse 1")
        await button.click()
        await expect_signed_out(alice)
        await expect(alice.get_by_role("status").filter(has_text=DELETED_NOTICE)).to_be_visible()
        await expect_signed_out(phone)
        assert asked == ["DELETE", "DELETE"]
        assert (await alice_api.call("GET", "/api/v1/me")).status_code == 401
        await alice.reload()
        await expect_signed_out(alice)

        # Bob's open conversation says so at once (the server told him); after a
        # reload his inbox and the conversation do too, with her messages kept.
        await expect(bob.get_by_role("heading", level=1)).to_have_text("Deleted account")
        await bob.reload()
        await go_to(bob, "Inbox")
        link = chat_link(bob, "Deleted account")
        await expect(link).to_be_visible()
        await expect(chat_link(bob, "Alice")).to_have_count(0)
        await link.click()
        await expect(bob.get_by_role("heading", level=1)).to_have_text("Deleted account")
        await expect(bob.get_by_text("hello bob, it's alice")).to_be_visible()
        await expect(bob.get_by_text("last words")).to_be_visible()
        await expect(bob.get_by_text("hi alice")).to_be_visible()
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()
