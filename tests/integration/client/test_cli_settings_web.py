"""``ringfence settings set calls_enabled=false`` from a terminal refuses a call from
the web client in real Chromium, and ``calls_enabled=true`` lets it ring again (at the
same person's ``ringfence listen``). The server is a real ``ringfence serve`` child
and every terminal command a real ``ringfence`` child: the setting takes effect
because the server holds it, whichever client changed it."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import expect

from tests.browser import conftest as browser
from tests.browser.conftest import DESKTOP, Browsers
from tests.browser.ui import PASSWORD, call_dialog, go_to, open_conversation, sign_in
from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import Terminals

pytestmark = [pytest.mark.integration, pytest.mark.browser]

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals
playwright = browser.playwright
browsers = browser.browsers


async def test_calls_switched_off_in_the_terminal_refuse_the_browsers_call(
    server_url: str, terminals: Terminals, browsers: Browsers
) -> None:
    alice_term = terminals("alice", server_url)
    bob = terminals("bob", server_url)
    await alice_term.ok(
        "signup", "alice", "--server", server_url, "--password-stdin",
        "--display-name", "Alice", stdin=PASSWORD,
    )  # fmt: skip
    await bob.ok(
        "signup", "bob", "--server", server_url, "--password-stdin",
        "--display-name", "Bob", stdin=PASSWORD,
    )  # fmt: skip
    await bob.ok("follow", "alice")
    await alice_term.ok("send", "bob", "may I call you?")
    await bob.ok("accept", "alice")

    # Bob's own web client shows what he set in the terminal.
    bob_page = await browsers.page("bob")
    await sign_in(bob_page, server_url, "bob")
    await go_to(bob_page, "Privacy")
    calls_switch = bob_page.get_by_role("switch", name="Allow calls")
    await expect(calls_switch).to_be_checked()

    await bob.ok("settings", "set", "calls_enabled=false")
    await bob_page.reload()
    await expect(bob_page.get_by_role("switch", name="Allow calls")).not_to_be_checked()

    alice = await browsers.page("alice", viewport=DESKTOP)
    await sign_in(alice, server_url, "alice")
    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Audio call").click()
    await expect(alice.locator("#call-alert")).to_have_text("Bob can't be called right now.")
    await expect(call_dialog(alice)).to_be_hidden()

    await bob.ok("settings", "set", "calls_enabled=true")
    listening = await bob.start("listen", "--json")
    await listening.wait_for("listening as @bob", stream="err")
    await alice.get_by_role("button", name="Audio call").click()
    await expect(call_dialog(alice)).to_be_visible()
    await listening.wait_for('"call.incoming"')
    await expect(call_dialog(bob_page).locator("#call-status")).to_have_text("Incoming audio call")
    await call_dialog(alice).get_by_role("button", name="Hang up").click()
    await listening.wait_for('"call.ended"')
    assert await listening.stop() == 0

    events = listening.lines()
    incoming = next(e for e in events if e["type"] == "call.incoming")
    assert incoming["from"]["username"] == "alice"
    assert incoming["media"] == "audio"
    # What lets a device join the call (its SDP, relay credentials) is never printed.
    for secret in ("sdp", "ice_servers", "credential", "candidate"):
        assert secret not in json.dumps(events)
    ended = next(e for e in events if e["type"] == "call.ended")
    assert ended["call_id"] == incoming["call_id"]

    history = (await bob.ok("calls", "--json")).json()["calls"]
    assert [(c["peer"]["username"], c["direction"]) for c in history] == [("alice", "incoming")]
    assert "Missed audio call" in (await bob.ok("calls")).out
