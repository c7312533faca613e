"""Failures are shown to the user, never swallowed: denied camera and microphone,
missing devices, and a server that goes away (a real outage: the server is stopped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import expect

from ringfence.client import (
    EventStream,
    RingfenceClient,
    ToneTrack,
    place_call,
    wait_for_incoming,
)
from tests.browser.conftest import Browsers, Server
from tests.browser.ui import (
    PASSWORD,
    ApiUser,
    call_dialog,
    go_to,
    messages,
    open_conversation,
    peer_connection_count,
    send_message,
    sign_in,
)

pytestmark = pytest.mark.browser


@asynccontextmanager
async def python_user(
    server: Server, username: str, *, friends: tuple[str, ...]
) -> AsyncIterator[tuple[RingfenceClient, EventStream]]:
    """A Python-client user, and ``friends`` (registered through the API, to sign in
    in a browser) who may call them and be called by them."""
    async with RingfenceClient(server.url) as client:
        session = await client.register(username, PASSWORD, username.capitalize())
        for friend in friends:
            user = await ApiUser.register(server.url, friend, friend.capitalize())
            try:
                await user.follow(username)
            finally:
                await user.close()
            await client.follow(friend)
            await client.send_message(friend, "hello")
        events = EventStream(server.url, session["token"], backoff_initial_s=0.05)
        await events.connect()
        try:
            yield client, events
        finally:
            await events.close()


async def test_denied_camera_and_microphone_are_explained(
    server: Server, browsers: Browsers
) -> None:
    # No fake UI: the permission request is answered by the browser's own
    # (headless) policy, and this context has been granted nothing: denied.
    page = await browsers.page("alice", fake_ui=False)
    await page.context.clear_permissions()
    async with python_user(server, "bob", friends=("alice",)) as (bob, bob_events):
        await sign_in(page, server.url, "alice")
        await open_conversation(page, "bob")

        # Calling: the server said yes, the browser said no to the camera.
        await page.get_by_role("button", name="Video call").click()
        dialog = call_dialog(page)
        await expect(dialog.get_by_role("alert")).to_contain_text(
            "Ringfence isn't allowed to use your camera and microphone."
        )
        await expect(dialog.get_by_role("alert")).to_contain_text("site settings")
        assert await peer_connection_count(page) == 0  # no offer was ever made
        await dialog.get_by_role("button", name="Close").click()
        await expect(dialog).to_be_hidden()

        # Being called: accepting needs the microphone; the call keeps ringing so the
        # user can fix the permission, or decline.
        call = await place_call(bob, bob_events, "alice", tracks=[ToneTrack(440)])
        await expect(dialog.locator("#call-status")).to_have_text("Incoming audio call")
        await dialog.get_by_role("button", name="Accept audio call").click()
        await expect(dialog.get_by_role("alert")).to_contain_text(
            "Ringfence isn't allowed to use your microphone."
        )
        await expect(dialog.locator("#call-status")).to_have_text("Incoming audio call")
        await expect(dialog.get_by_role("button", name="Accept audio call")).to_be_enabled()
        assert await peer_connection_count(page) == 0
        await dialog.get_by_role("button", name="Decline").click()
        async with asyncio.timeout(15):
            assert await call.wait_ended() == "rejected"
        await expect(dialog).to_be_hidden()


async def test_missing_devices_are_explained(server: Server, browsers: Browsers) -> None:
    # A microphone but no camera: a video call goes on, audio only, and says so.
    no_camera = await browsers.page(
        "alice",
        extra_args=["--use-fake-device-for-media-stream=device-count=0"],
        fake_devices=False,
    )
    # No devices at all.
    no_devices = await browsers.page("carol", fake_devices=False)
    async with python_user(server, "bob", friends=("alice", "carol")) as (_bob, bob_events):
        await sign_in(no_camera, server.url, "alice")
        await open_conversation(no_camera, "bob")
        await no_camera.get_by_role("button", name="Video call").click()
        dialog = call_dialog(no_camera)
        await expect(dialog.locator("#call-status")).to_have_text("Ringing…")
        await expect(dialog).to_contain_text("No camera was found, so this call is audio only.")
        async with asyncio.timeout(15):
            incoming = await wait_for_incoming(bob_events, from_user="alice")
        assert incoming.media == "video"
        assert await incoming.reject() == "rejected"
        await expect(dialog.locator("#call-status")).to_have_text("Bob declined the call")

        await sign_in(no_devices, server.url, "carol")
        await open_conversation(no_devices, "bob")
        await no_devices.get_by_role("button", name="Video call").click()
        dialog = call_dialog(no_devices)
        await expect(dialog.get_by_role("alert")).to_have_text(
            "No microphone was found. Connect one and try again."
        )
        assert await peer_connection_count(no_devices) == 0
        await dialog.get_by_role("button", name="Close").click()
        await expect(dialog).to_be_hidden()


async def test_a_server_outage_is_shown_and_recovered_from(
    server: Server, browsers: Browsers
) -> None:
    alice_api = await ApiUser.register(server.url, "alice", "Alice")
    bob = await ApiUser.register(server.url, "bob", "Bob")
    try:
        await bob.follow("alice")
        await alice_api.send("bob", "hi")
        page = await browsers.page("alice")
        await sign_in(page, server.url, "alice")
        await open_conversation(page, "bob")
        await expect(messages(page, "hi")).to_have_count(1)

        await server.stop()
        banner = page.locator("#connection")
        await expect(banner).to_contain_text("Offline: can't reach the server.")

        # A message that can't be sent says so, and can be retried.
        await send_message(page, "are you still there?")
        failed = page.locator("li.msg.failed")
        await expect(failed).to_contain_text("Not sent: Couldn't reach the server.")
        await expect(failed.get_by_role("button", name="Retry")).to_be_visible()

        # So does a call.
        await page.get_by_role("button", name="Audio call").click()
        await expect(page.locator("#call-alert")).to_have_text(
            "Couldn't reach the server. Check your connection and try again."
        )

        # And a setting: the failed save is reported, and the switch shows the value
        # the server holds (calls on), not the one that could not be saved.
        await go_to(page, "Privacy")
        calls_switch = page.get_by_role("switch", name="Allow calls")
        await expect(page.get_by_text("Couldn't load your settings")).to_be_visible()
        await expect(calls_switch).to_be_checked()
        await calls_switch.click()
        await expect(page.locator("#calls-enabled-status")).to_have_text(
            "Not saved: Couldn't reach the server. Check your connection. "
            "Showing your current setting."
        )
        await expect(calls_switch).to_be_checked()

        # The server comes back: the client reconnects on its own, and the retried
        # send (same txn_id) is delivered exactly once.
        await server.start()
        await banner.get_by_role("button", name="Retry now").click()
        await expect(banner).to_be_hidden()
        await go_to(page, "Inbox")
        await page.get_by_role("link", name=r"Bob").click()
        await page.locator("li.msg.failed").get_by_role("button", name="Retry").click()
        await expect(messages(page, "are you still there?")).to_have_count(1)
        await expect(page.locator("li.msg.pending")).to_have_count(0)
        texts = [m["text"] for m in await bob.history("alice")]
        assert texts.count("are you still there?") == 1
    finally:
        await alice_api.close()
        await bob.close()
