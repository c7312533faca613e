"""A call shows the other person as they are now: a name changed while it rings or
while it goes on is the name the call screen shows, at once (issue 12: names that
lagged in calls in progress)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import DESKTOP, Browsers, Server
from tests.browser.ui import (
    ApiUser,
    call_dialog,
    console_errors,
    expect_connected,
    may_call,
    open_conversation,
    sign_in,
)

pytestmark = pytest.mark.browser


async def test_a_name_changed_mid_call_shows_on_the_call_screen(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await may_call(alice_api, bob_api)
        alice = await browsers.page("alice")
        bob = await browsers.page("bob", viewport=DESKTOP)
        errors = console_errors(alice) + console_errors(bob)
        await sign_in(alice, server.url, "alice")
        await sign_in(bob, server.url, "bob")
        await open_conversation(alice, "bob")
        await alice.get_by_role("button", name="Audio call").click()
        incoming = call_dialog(bob)
        await expect(incoming.get_by_role("heading", name="Alice")).to_be_visible()

        # Renamed while it rings: the ringing screen says who it is now.
        resp = await alice_api.call("PATCH", "/api/v1/me", json={"display_name": "Alice L."})
        assert resp.status_code == 200, resp.text
        await expect(incoming.locator(".call-name")).to_have_text("Alice L.")
        await expect(incoming.locator(".call-handle")).to_have_text("@alice")

        await incoming.get_by_role("button", name="Accept audio call").click()
        await expect_connected(alice)
        await expect_connected(bob)
        # And in the call: both ways.
        resp = await bob_api.call("PATCH", "/api/v1/me", json={"display_name": "Robert"})
        assert resp.status_code == 200, resp.text
        await expect(call_dialog(alice).locator(".call-name")).to_have_text("Robert")
        resp = await alice_api.call("PATCH", "/api/v1/me", json={"display_name": "Alice"})
        assert resp.status_code == 200, resp.text
        await expect(call_dialog(bob).locator(".call-name")).to_have_text("Alice")
        await call_dialog(alice).get_by_role("button", name="Hang up").click()
        assert errors == []
    finally:
        await alice_api.close()
        await bob_api.close()
