"""The call verification code in the browser: the shared test vectors, and a real call
in which both pages show the same five words, equal to the Python implementation's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

import ringfence
from ringfence.calls.verification import fingerprints, verification_code
from tests.browser.conftest import Browsers, Server
from tests.browser.ui import (
    alice_may_call_bob,
    call_dialog,
    expect_connected,
    open_conversation,
    sign_in,
    watch_frames,
)

pytestmark = pytest.mark.browser

RUN_VECTORS = """
async (vectors) => {
  const v = await import("/verification.js");
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const out = [];
  for (const t of vectors) {
    const local = v.sdpFingerprint(t.local_sdp);
    const remote = v.sdpFingerprint(t.remote_sdp);
    out.push({
      local_fingerprints: local,
      remote_fingerprints: remote,
      sha256: hex(await v.verificationDigest(t.call_id, local, remote)),
      words: await v.verificationCode(t.call_id, t.local_sdp, t.remote_sdp),
    });
  }
  return out;
}
"""

DESCRIPTIONS = """
() => {
  const pcs = window.__rfTestPeerConnections;
  const pc = pcs[pcs.length - 1];
  return { local: pc.localDescription.sdp, remote: pc.remoteDescription.sdp };
}
"""

# The test vectors both clients are checked against.
DATA_DIR = Path(ringfence.__file__).resolve().parent / "web" / "verification"


def vectors() -> list[dict[str, Any]]:
    data = json.loads((DATA_DIR / "vectors.json").read_text(encoding="utf-8"))
    result: list[dict[str, Any]] = data["vectors"]
    assert result, "vectors.json holds no vectors"
    return result


async def test_the_browser_implementation_passes_every_vector(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("alice")
    await page.goto(server.url)
    cases = vectors()
    results = await page.evaluate(RUN_VECTORS, cases)
    assert len(results) == len(cases)
    for case, got in zip(cases, results, strict=True):
        expected = {
            key: case[key]
            for key in ("local_fingerprints", "remote_fingerprints", "sha256", "words")
        }
        assert got == expected, case["description"]


async def test_the_browser_shows_no_code_without_a_fingerprint(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("alice")
    await page.goto(server.url)
    sdp = vectors()[0]["local_sdp"]
    bare = "\r\n".join(line for line in sdp.split("\r\n") if "fingerprint" not in line)
    result = await page.evaluate(
        """async ([withPrint, bare]) => {
          const v = await import("/verification.js");
          return [v.sdpFingerprint(bare), await v.verificationCode("c1", withPrint, bare)];
        }""",
        [sdp, bare],
    )
    assert result == [None, None]


async def shown_words(page: Page) -> list[str]:
    verify = call_dialog(page).get_by_role("region", name="Verification code")
    await expect(verify).to_be_visible()
    await expect(verify).to_contain_text(
        "Read these words to each other. If they differ, someone may be listening in."
    )
    words = verify.locator("#verify-words")
    await expect(words).to_have_text(re.compile(r"^[a-z]+( [a-z]+){4}$"))
    text = await words.text_content()
    assert text is not None
    return text.split(" ")


async def test_both_sides_of_a_relayed_call_show_the_same_words(
    server: Server, browsers: Browsers
) -> None:
    await alice_may_call_bob(server.url, "hi bob, may I call you?")
    alice = await browsers.page("alice")
    bob = await browsers.page("bob")
    bob_frames = watch_frames(bob)
    await sign_in(alice, server.url, "alice")
    await sign_in(bob, server.url, "bob")

    await open_conversation(alice, "bob")
    await alice.get_by_role("button", name="Audio call").click()
    await expect(call_dialog(alice).locator("#call-status")).to_have_text("Ringing…")
    await expect(call_dialog(bob).locator("#call-status")).to_have_text("Incoming audio call")
    # No code before the call is connected: there is nothing to verify yet.
    await expect(call_dialog(alice).locator(".call-verify")).to_be_hidden()
    await expect(call_dialog(bob).locator(".call-verify")).to_be_hidden()
    await call_dialog(bob).get_by_role("button", name="Accept audio call").click()
    await expect_connected(alice)
    await expect_connected(bob)

    alice_words = await shown_words(alice)
    bob_words = await shown_words(bob)
    assert alice_words == bob_words

    (incoming,) = bob_frames.of_type("call.incoming")
    call_id = incoming["call_id"]
    for page, words in ((alice, alice_words), (bob, bob_words)):
        sdps = await page.evaluate(DESCRIPTIONS)
        assert list(verification_code(call_id, sdps["local"], sdps["remote"])) == words
    # Each side's remote fingerprints are the other's local ones (no one in between).
    alice_sdps, bob_sdps = await alice.evaluate(DESCRIPTIONS), await bob.evaluate(DESCRIPTIONS)
    assert fingerprints(alice_sdps["remote"]) == fingerprints(bob_sdps["local"])
    assert fingerprints(bob_sdps["remote"]) == fingerprints(alice_sdps["local"])

    await call_dialog(alice).get_by_role("button", name="Hang up").click()
    await expect(call_dialog(bob)).to_be_hidden()
