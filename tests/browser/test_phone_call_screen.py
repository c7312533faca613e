"""Video that fills a phone's screen (issue 12, §4.7): at 390x844, during a relayed
video call between two Chromium pages, the other person's video covers the whole
viewport, my own preview is small and in a corner over it, and the call's controls
sit over the bottom of the video. The desktop keeps its framed stage."""

from __future__ import annotations

import pytest
from playwright.async_api import Locator, expect

from tests.browser.conftest import DESKTOP, PHONE, Browsers, Server
from tests.browser.ui import (
    alice_may_call_bob,
    call_dialog,
    console_errors,
    expect_connected,
    expect_media_flowing,
    open_conversation,
    sign_in,
)

pytestmark = pytest.mark.browser


async def box_of(locator: Locator) -> dict[str, float]:
    box = await locator.bounding_box()
    assert box is not None, "not on screen"
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


async def test_the_other_persons_video_fills_a_phone_screen(
    server: Server, browsers: Browsers
) -> None:
    await alice_may_call_bob(server.url, "hi bob, may I call you?")
    alice = await browsers.page("alice", viewport=PHONE)
    bob = await browsers.page("bob", viewport=DESKTOP)
    errors = console_errors(alice) + console_errors(bob)
    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")
    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Video call").click()
    incoming = call_dialog(bob)
    await expect(incoming.locator("#call-status")).to_have_text("Incoming video call")
    await incoming.get_by_role("button", name="Accept video call").click()
    await expect_connected(alice)
    await expect_connected(bob)
    await expect_media_flowing(alice, ("video",))

    dialog = call_dialog(alice)
    remote = dialog.get_by_label("Remote video")
    local = dialog.get_by_label("Your camera preview")
    await expect(remote).to_be_visible()
    await expect(local).to_be_visible()
    video = await box_of(remote)
    assert video == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
    preview = await box_of(local)
    assert preview["width"] <= PHONE["width"] / 3
    assert preview["x"] + preview["width"] > PHONE["width"] * 0.9  # in the right corner
    controls = await box_of(dialog.get_by_role("group", name="Call controls"))
    assert controls["y"] + controls["height"] == pytest.approx(PHONE["height"], abs=1)
    assert controls["y"] > PHONE["height"] / 2  # over the bottom of the video
    hang_up = dialog.get_by_role("button", name="Hang up")
    await expect(hang_up).to_be_visible()

    # The desktop keeps the video framed on its stage.
    framed = await box_of(incoming.get_by_label("Remote video"))
    assert framed["width"] < DESKTOP["width"]
    assert framed["y"] > 0

    await hang_up.click()
    await expect(dialog).to_be_hidden()
    assert errors == []
