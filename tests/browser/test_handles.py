"""Wherever someone decides whether to trust a person, the web client shows the
@username beside the display name, which anyone can choose.

Before: the incoming-call screen showed only the display name, so "Ringfence Support
✓" could ring as if it were the service; and U+202E in a name was accepted.
"""

from __future__ import annotations

import json
import re

import pytest
import websockets
from playwright.async_api import expect

from tests.browser.conftest import Browsers, Server
from tests.browser.ui import PASSWORD, ApiUser, call_dialog, go_to, may_call, sign_in
from tests.integration.calls.sdp import sdp_pair

pytestmark = pytest.mark.browser

LOOKALIKE = "Ringfence Support ✓"


async def test_the_ringing_screen_and_the_inbox_say_who_it_really_is(
    server: Server, browsers: Browsers
) -> None:
    impostor = await ApiUser.register(server.url, "totally_not_support", LOOKALIKE)
    stranger = await ApiUser.register(server.url, "bank_helpdesk", "Your Bank")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    await may_call(impostor, bob)
    await stranger.send("bob", "Please confirm your account")
    page = await browsers.page("bob")
    await sign_in(page, server.url, "bob")

    # The inbox: a conversation and a message request, each with its @handle.
    chats = page.get_by_role("region", name="Conversations")
    await expect(chats.get_by_role("link", name=re.compile(LOOKALIKE))).to_contain_text(
        "@totally_not_support"
    )
    requests = page.get_by_role("region", name=re.compile("^Message requests"))
    await expect(requests.get_by_role("link", name=re.compile("Your Bank"))).to_contain_text(
        "@bank_helpdesk"
    )
    # The request itself, where Bob decides to accept it.
    await requests.get_by_role("link", name=re.compile("Your Bank")).click()
    await expect(page.get_by_role("region", name="Message request")).to_contain_text(
        "Your Bank (@bank_helpdesk) wants to message you"
    )
    await go_to(page, "Inbox")

    # The impostor calls: the ringing screen names the account, not only the name.
    offer = (await sdp_pair())[0]
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/events"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": impostor.token}))
        assert json.loads(await ws.recv())["type"] == "ready"
        started = await impostor.call("POST", "/api/v1/calls", json={"to": "bob", "media": "audio"})
        assert started.status_code == 201, started.text
        call_id = started.json()["call_id"]
        await ws.send(json.dumps({"type": "call.offer", "call_id": call_id, "sdp": offer}))

        dialog = call_dialog(page)
        await expect(dialog.locator("#call-status")).to_have_text("Incoming audio call")
        heading = dialog.get_by_role("heading", level=2)
        await expect(heading).to_have_text(f"{LOOKALIKE} @totally_not_support")
        await expect(heading.locator(".call-handle")).to_be_visible()
        # And the dialog's accessible name carries it too, for screen-reader users.
        await expect(dialog).to_have_accessible_name(f"{LOOKALIKE} @totally_not_support")
        await dialog.get_by_role("button", name=re.compile("^Decline")).click()
        await expect(dialog).to_be_hidden()
    for user in (impostor, stranger, bob):
        await user.close()


async def test_a_display_name_that_would_reorder_text_is_refused_at_sign_up(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("mallory")
    await page.goto(server.url)
    await page.get_by_role("button", name="Create an account").click()
    await page.get_by_label("Username").fill("mallory")
    await page.get_by_label("Display name (optional)").fill(f"{LOOKALIKE}\u202e")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()

    alert = page.get_by_role("alert").filter(has_text="U+202E")
    await expect(alert).to_contain_text("cannot be part of a display name")
    await expect(page.get_by_role("heading", name="Inbox")).to_have_count(0)
