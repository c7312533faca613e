"""Privacy settings in the web client take effect on the server at once."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    alice_may_call_bob,
    call_dialog,
    go_to,
    open_conversation,
    sign_in,
    watch_frames,
)

pytestmark = pytest.mark.browser


async def save_status(page: Page, element_id: str, text: str) -> None:
    await expect(page.locator(f"#{element_id}")).to_have_text(text)


async def test_calls_off_and_audience_changes_take_effect_at_once(
    server: Server, browsers: Browsers
) -> None:
    await alice_may_call_bob(server.url, "can I call?")
    alice = await browsers.page("alice", viewport=DESKTOP)
    bob = await browsers.page("bob")
    bob_frames = watch_frames(bob)
    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")
    await open_conversation(alice, "bob")
    await go_to(bob, "Privacy")
    calls_switch = bob.get_by_role("switch", name="Allow calls")
    await expect(calls_switch).to_be_checked()
    await expect(calls_switch).to_be_enabled()

    async def refused() -> None:
        # The click clears any earlier alert before it asks the server.
        await alice.get_by_role("button", name="Audio call").click()
        await expect(alice.locator("#call-alert")).to_have_text("Bob can't be called right now.")
        await expect(call_dialog(alice)).to_be_hidden()

    # 1. Calls switched off: Alice is refused, neutrally, and nothing rings for Bob.
    await calls_switch.click()
    await save_status(bob, "calls-enabled-status", "Saved. Calls are off: nobody can call you.")
    await expect(calls_switch).not_to_be_checked()
    await refused()

    # 2. Calls on, but only verified accounts may call (Alice isn't one): refused again.
    await calls_switch.click()
    await save_status(bob, "calls-enabled-status", "Saved. Calls are on.")
    who = bob.get_by_role("group", name="Who can call you")
    await who.get_by_role("radio", name="Only verified accounts", exact=True).check()
    await save_status(bob, "audience-status", "Saved. Only verified accounts can call you.")
    await refused()
    assert not bob_frames.of_type("call.incoming")
    await expect(call_dialog(bob)).to_be_hidden()

    # 3. Everyone may call: Alice's call rings at once.
    everyone = who.get_by_role("radio", name="Everyone you've accepted a conversation with")
    await everyone.check()
    await save_status(
        bob, "audience-status", "Saved. Everyone you've accepted a conversation with can call you."
    )
    await alice.get_by_role("button", name="Audio call").click()
    await expect(call_dialog(bob).locator("#call-status")).to_have_text("Incoming audio call")
    await call_dialog(bob).get_by_role("button", name="Decline").click()
    await expect(call_dialog(alice).locator("#call-status")).to_have_text("Bob declined the call")
    await expect(call_dialog(bob)).to_be_hidden()
    await expect(call_dialog(alice)).to_be_hidden()
    await expect(alice.locator(".call-record .call-label")).to_have_text("Audio call · Declined")

    # Too many attempts: the server rate-limits (429), and the words stay neutral.
    await alice.get_by_role("button", name="Audio call").click()
    await expect(alice.locator("#call-alert")).to_have_text(
        re.compile(r"^Bob can't be called right now\. Try again in \d+ seconds\.$")
    )

    # Direct connections come with a warning; a reload shows what the server holds.
    warning = bob.get_by_role("note")
    await expect(warning).to_be_hidden()
    direct = bob.get_by_role("group", name="Direct connections")
    await direct.get_by_role("radio", name="People you follow", exact=True).check()
    await save_status(
        bob,
        "direct-status",
        "Saved. Direct connections are allowed where the other person allows them too.",
    )
    await expect(warning).to_contain_text("IP address")
    await expect(warning).to_contain_text("approximate location")
    await expect(warning).to_contain_text("Direct calls happen only when you both allow it")
    await bob.reload()
    await expect(bob.get_by_role("switch", name="Allow calls")).to_be_checked()
    await expect(bob.get_by_role("switch", name="Allow calls")).to_be_enabled()
    await expect(everyone).to_be_checked()
    await expect(who.get_by_role("radio", name="Only people you follow")).not_to_be_checked()
    await expect(direct.get_by_role("radio", name="People you follow", exact=True)).to_be_checked()
    await expect(warning).to_be_visible()
