"""A deleted account in the web client (issue 12, account deletion): the people it
talked with keep the conversation, under the name "Deleted account" and never its
reserved @deleted_account_… handle, with nothing offering to write to it, call it,
follow, block or report it, and a line that says why; the Calls page lists its calls
without "Call back"."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.test_calls_screen import call_list, open_calls, seed_calls
from tests.browser.ui import PASSWORD, ApiUser, console_errors, messages, sign_in

pytestmark = pytest.mark.browser

NOTE = "This account was deleted. You can still read your conversation."


async def test_a_deleted_account_is_shown_as_such_and_cannot_be_written_to_or_called(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob_api.follow("alice")
        await alice_api.send("bob", "hello bob")
        await bob_api.send("alice", "bye alice, I'm deleting my account")
        await seed_calls(server, "alice", "bob", 1)
        gone = await bob_api.call("DELETE", "/api/v1/me", json={"password": PASSWORD})
        assert gone.status_code == 204, gone.text

        alice = await browsers.page("alice", viewport=DESKTOP)
        errors = console_errors(alice)
        await sign_in(alice, server.url, "alice")

        # The inbox: the name, no handle.
        chats = alice.get_by_role("region", name="Conversations")
        link = chats.get_by_role("link", name=re.compile("Deleted account"))
        await expect(link).to_be_visible()
        await expect(link.locator(".handle")).to_have_count(0)
        await expect(chats.get_by_text("@deleted_account_")).to_have_count(0)
        await expect(chats.get_by_text("Bob")).to_have_count(0)

        # The conversation: readable, with nothing that would reach them.
        await link.click()
        await expect(alice.get_by_role("heading", level=1)).to_have_text("Deleted account")
        await expect(messages(alice, "hello bob")).to_be_visible()
        await expect(messages(alice, "bye alice, I'm deleting my account")).to_be_visible()
        await expect(alice.get_by_role("status").filter(has_text=NOTE)).to_be_visible()
        await expect(alice.get_by_text("@deleted_account_").locator("visible=true")).to_have_count(
            0
        )
        for hidden in (
            alice.get_by_role("textbox", name=re.compile("^Message ")),
            alice.get_by_role("button", name="Send", exact=True),
            alice.get_by_role("button", name="Audio call"),
            alice.get_by_role("button", name="Video call"),
            alice.get_by_role("button", name="Block"),
            alice.get_by_role("button", name="Report"),
            alice.get_by_role("button", name=re.compile("^Follow")),
        ):
            await expect(hidden).to_have_count(0)

        # The Calls page keeps the call, under the name, with no "Call back".
        await open_calls(alice)
        entry = call_list(alice).get_by_role("listitem")
        await expect(entry).to_have_count(1)
        await expect(entry.locator(".name")).to_have_text("Deleted account")
        await expect(entry.locator(".handle")).to_have_count(0)
        await expect(entry.get_by_role("button", name=re.compile("^Call back"))).to_have_count(0)
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()


async def test_an_open_conversation_changes_the_moment_the_other_account_is_deleted(
    server: Server, browsers: Browsers
) -> None:
    """No reload: the deletion's event (under the name alice knows bob by) says so."""
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob_api.follow("alice")
        await alice_api.send("bob", "hello bob")
        alice = await browsers.page("alice", viewport=DESKTOP)
        errors = console_errors(alice)
        await sign_in(alice, server.url, "alice")
        chats = alice.get_by_role("region", name="Conversations")
        await chats.get_by_role("link", name=re.compile("Bob")).click()
        composer = alice.get_by_role("textbox", name=re.compile("^Message "))
        await expect(composer).to_be_visible()
        await expect(alice.get_by_role("button", name="Audio call")).to_be_visible()

        gone = await bob_api.call("DELETE", "/api/v1/me", json={"password": PASSWORD})
        assert gone.status_code == 204, gone.text

        await expect(alice.get_by_role("heading", level=1)).to_have_text("Deleted account")
        await expect(alice.get_by_role("status").filter(has_text=NOTE)).to_be_visible()
        await expect(messages(alice, "hello bob")).to_be_visible()
        for hidden in (
            composer,
            alice.get_by_role("button", name="Audio call"),
            alice.get_by_role("button", name="Video call"),
            alice.get_by_role("button", name="Block"),
        ):
            await expect(hidden).to_have_count(0)
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()
