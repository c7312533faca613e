"""'Silence unknown callers' in the web client: saved on the server at once, and such a
call then reaches the server but never rings in the browser."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Browsers, Server
from tests.browser.ui import ApiUser, call_dialog, go_to, sign_in, watch_frames
from tests.conftest import open_socket
from tests.integration.calls.sdp import sdp_pair

pytestmark = pytest.mark.browser


async def test_silencing_unknown_callers_from_the_settings_screen(
    server: Server, browsers: Browsers
) -> None:
    alice = await ApiUser.register(server.url, "alice", "Alice")
    bob_api = await ApiUser.register(server.url, "bob", "Bob")
    try:
        # Bob accepted Alice's conversation but does not follow her: she is "unknown".
        await alice.send("bob", "hi Bob")
        assert (await bob_api.call("POST", "/api/v1/conversations/alice/accept")).status_code == 200
        refused = await alice.call("POST", "/api/v1/calls", json={"to": "bob", "media": "audio"})
        assert refused.status_code == 403

        bob = await browsers.page("bob")
        frames = watch_frames(bob)
        await sign_in(bob, server.url, "bob")
        await go_to(bob, "Privacy")
        switch = bob.get_by_role("switch", name="Silence unknown callers")
        await expect(switch).not_to_be_checked()
        await switch.click()
        await expect(bob.locator("#silence-unknown-status")).to_have_text(
            "Saved. Unknown callers are silenced and shown as missed calls."
        )
        me = (await bob_api.call("GET", "/api/v1/me")).json()
        assert me["settings"]["silence_unknown_callers"] is True
        await bob.reload()
        await expect(bob.get_by_role("switch", name="Silence unknown callers")).to_be_checked()

        # Alice's call is now taken (she can't tell it apart from any call) but never
        # rings for Bob.
        started = await alice.call("POST", "/api/v1/calls", json={"to": "bob", "media": "audio"})
        assert started.status_code == 201
        ws_url = server.url.replace("http://", "ws://") + "/api/v1/events"
        alice_ws = await open_socket(ws_url, alice.token)
        call_id = started.json()["call_id"]
        await alice_ws.send(
            {"type": "call.offer", "call_id": call_id, "sdp": (await sdp_pair())[0]}
        )
        # A control: the offer was taken (a duplicate is refused as out of turn).
        await alice_ws.send(
            {"type": "call.offer", "call_id": call_id, "sdp": (await sdp_pair())[0]}
        )
        assert (await alice_ws.recv_type("error"))["error"] == "call_state"
        await alice_ws.close()
        await expect(call_dialog(bob)).to_be_hidden()
        assert not frames.of_type("call.incoming")
    finally:
        await alice.close()
        await bob_api.close()
