"""How an incoming call rings in the browser: in one tab of a browser only (the others
show it and say so), with the tab title calling for attention, and without the
autoplay errors a page gets for trying to make sound before anyone touched it."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import Browsers, Server
from tests.browser.ui import (
    alice_may_call_bob,
    call_dialog,
    console_errors,
    expect_online,
    open_conversation,
    sign_in,
)

RINGING_HERE = "document.documentElement.dataset.ringing"


async def ringing_place(page: Page) -> str | None:
    place: str | None = await page.evaluate(RINGING_HERE)
    return place


async def test_one_tab_rings_the_others_say_so_and_one_takes_over_when_it_closes(
    server: Server, browsers: Browsers
) -> None:
    await alice_may_call_bob(server.url, "ringing you")
    alice = await browsers.page("alice")
    bob = await browsers.launch("bob")
    first = bob.pages[0] if bob.pages else await bob.new_page()
    await sign_in(first, server.url, "bob")
    # A second tab of the same browser shares the session: no gesture on it at all.
    second = await bob.new_page()
    messages: list[str] = []
    second.on("console", lambda message: messages.append(message.text))
    errors = {tab: console_errors(tab) for tab in (first, second)}
    await second.goto(server.url)
    await expect_online(second)
    await sign_in(alice, server.url, "alice")

    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Audio call").click()
    for tab in (first, second):
        await expect(call_dialog(tab).locator("#call-status")).to_have_text("Incoming audio call")
    # Exactly one tab rings; the other shows the call and says where it rings.
    for tab in (first, second):
        await expect(tab.locator("html")).to_have_attribute("data-ringing", re.compile("."))
    places = {await ringing_place(first), await ringing_place(second)}
    assert places == {"here", "elsewhere"}
    ringing, silent = (first, second) if await ringing_place(first) == "here" else (second, first)
    await expect(call_dialog(silent).locator("#ring-note")).to_have_text(
        "Ringing in another tab too: answer here or there."
    )
    await expect(call_dialog(ringing).locator("#ring-note")).to_be_hidden()
    # The title calls for attention in a tab that is not in front.
    for tab in (first, second):
        await expect(tab).to_have_title("Incoming call — Alice", timeout=5000)

    # The ringing tab goes away: the other one rings now.
    await ringing.close()
    await expect(silent.locator("html")).to_have_attribute("data-ringing", "here")
    await expect(call_dialog(silent).locator("#ring-note")).to_be_hidden()

    await call_dialog(silent).get_by_role("button", name="Decline").click()
    await expect(call_dialog(silent)).to_be_hidden()
    await expect(call_dialog(alice)).to_be_hidden()  # declined: Alice's call ended
    assert await ringing_place(silent) is None
    await expect(silent).not_to_have_title("Incoming call — Alice")
    # No sound was tried where nobody had touched the page: nothing blocked, no noise.
    assert not [m for m in messages if "AudioContext" in m or "vibrate" in m], messages
    assert errors[silent] == []
    if silent is second:
        assert errors[first] == []
