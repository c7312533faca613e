"""The README's own path, as a newcomer follows it: ``ringfence serve`` with its
embedded defaults, two people signing up in the web client, and an audio call.

Every other browser test runs the app in-process against a fixture coturn with
absolute tmp paths. This one starts ``ringfence serve`` the way ``scripts/serve``
does: a child process in a fresh working directory, no ``--data-dir`` (so the data
dir is the relative ``ringfence-data``), no external TURN, the embedded coturn on its
default address (127.0.0.1). Only the HTTP and relay ports are chosen free, so that
the test cannot collide with anything else on the machine; nothing else is set.

A relative data dir once made the supervisor hand coturn a config path that did not
exist from coturn's own working directory, so coturn ran on its built-in defaults,
refused Ringfence's credentials, and no call ever connected; nothing noticed, because
every other test passes an absolute path.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from ringfence.turn.supervisor import pick_free_port
from tests.browser.conftest import DESKTOP, Browsers
from tests.browser.ui import (
    call_dialog,
    expect_connected,
    expect_media_flowing,
    expect_online,
    messages,
    open_conversation,
    send_message,
    sign_up,
    stats,
)
from tests.conftest import PG_URL
from tests.serve import ServeProcess

pytestmark = [pytest.mark.browser, pytest.mark.integration]

if shutil.which("turnserver") is None:
    pytest.skip("coturn is not installed (scripts/test installs it)", allow_module_level=True)

DEFAULT_DATA_DIR = "ringfence-data"  # the README's default, relative to the working dir


class ReadmeServe(ServeProcess):
    """``ringfence serve --port P`` from ``cwd``, with nothing else configured but the
    relay's port."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd_dir = tmp_path / "newcomer"
        self.cwd_dir.mkdir()
        self.turn_port = pick_free_port("127.0.0.1")
        # The test run's own RINGFENCE_* settings (a test database, say) must not leak
        # in: this is a fresh shell that has only ever run the README's command.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
        env["RINGFENCE_TURN_PORT"] = str(self.turn_port)
        super().__init__("ringfence serve", tmp_path / "serve.log", env, [], cwd=self.cwd_dir)

    @property
    def data_dir(self) -> Path:
        return self.cwd_dir / DEFAULT_DATA_DIR


@pytest.fixture
async def readme_serve(tmp_path: Path) -> AsyncIterator[ReadmeServe]:
    if PG_URL:
        # The README's default database is SQLite in the data dir; scripts/test runs
        # this test in its SQLite pass, and there is nothing different to see on PG.
        pytest.skip("the README's path uses SQLite; it runs in the SQLite pass")
    serve = ReadmeServe(tmp_path)
    await serve.start()
    try:
        yield serve
    finally:
        serve.stop()


async def with_server_output(serve: ReadmeServe, page: Page, step: Awaitable[None]) -> None:
    """Await ``step``; if it fails, say what the call screen and the server said."""
    try:
        await step
    except AssertionError as exc:
        dialog = call_dialog(page)
        shown = await dialog.inner_text() if await dialog.count() else "(no call dialog)"
        raise AssertionError(
            f"{exc}\n--- call screen ---\n{shown}\n--- ringfence serve output ---\n{serve.log()}"
        ) from exc


async def test_readme_default_serve_carries_a_relayed_audio_call_between_two_browsers(
    readme_serve: ReadmeServe, browsers: Browsers
) -> None:
    serve = readme_serve
    alice = await browsers.page("alice")
    bob = await browsers.page("bob", viewport=DESKTOP)

    # Sign up through the form, as a newcomer does.
    await sign_up(alice, serve.url, "alice", "Alice")
    await sign_up(bob, serve.url, "bob", "Bob")
    for page in (alice, bob):
        await expect_online(page)

    # Alice writes first; Bob sees a message request and accepts it.
    await open_conversation(alice, "bob")
    await send_message(alice, "Hi Bob, can I call you?")
    await expect(messages(alice, "Hi Bob, can I call you?")).to_have_count(1)
    requests = bob.get_by_role("region", name=re.compile("^Message requests"))
    await expect(requests.get_by_text("Hi Bob, can I call you?")).to_be_visible()
    await bob.get_by_role("button", name="Accept request from Alice").click()
    # Accepting opens the conversation.
    await expect(bob).to_have_url(re.compile(r"#/c/alice$"))
    await expect(messages(bob, "Hi Bob, can I call you?")).to_have_count(1)
    # By default only people you follow may call you: Bob follows Alice.
    await bob.get_by_role("button", name="Follow", exact=True).click()
    await expect(bob.get_by_role("button", name="Following", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await send_message(bob, "Sure, go ahead")
    await expect(messages(alice, "Sure, go ahead")).to_have_count(1)

    # Alice places an audio call; Bob accepts it.
    await alice.get_by_role("button", name="Audio call").click()
    incoming = call_dialog(bob)
    await expect(incoming.locator("#call-status")).to_have_text("Incoming audio call")
    await incoming.get_by_role("button", name="Accept audio call").click()
    await with_server_output(serve, alice, expect_connected(alice))
    await with_server_output(serve, bob, expect_connected(bob))

    relay_url = re.compile(rf"^turn:127\.0\.0\.1:{serve.turn_port}\?transport=(udp|tcp)$")
    for page in (alice, bob):
        # Audio goes out and comes in, and keeps coming: it flows both ways.
        await expect_media_flowing(page, ("audio",))
        live = await stats(page)
        assert live["state"] == "connected"
        # Relayed at this end and at the other: the selected pair is relay/relay.
        assert (live["local"], live["remote"]) == ("relay", "relay"), live
        assert live["config"]["iceTransportPolicy"] == "relay"
        # ... through the embedded coturn on its default address and our port.
        urls = [url for ice in live["config"]["iceServers"] for url in ice["urls"]]
        assert urls, live["config"]
        assert all(relay_url.match(url) for url in urls), urls

    await call_dialog(alice).get_by_role("button", name="Hang up").click()
    await expect(call_dialog(alice)).to_be_hidden()
    await expect(call_dialog(bob)).to_be_hidden()
    record = re.compile(r"^Audio call · \d+:\d\d$")
    await expect(alice.locator(".call-record .call-label")).to_have_text(record)
    await expect(bob.locator(".call-record .call-label")).to_have_text(record)

    # Everything went where the README says: ./ringfence-data, with the generated
    # coturn config inside it, for the port this relay really served on.
    assert serve.data_dir.is_dir()
    assert (serve.data_dir / "ringfence.db").is_file()
    config = serve.data_dir / "coturn" / "turnserver.conf"
    assert config.is_file()
    assert f"listening-port={serve.turn_port}" in config.read_text().splitlines()
    assert "listening-ip=127.0.0.1" in config.read_text().splitlines()
