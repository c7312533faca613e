"""What a person does in the web client, as Playwright steps, and what the page shows.

Everything is found the way a person (or a screen reader) finds it: by role and
accessible name. Waits are on visible state, with Playwright's bounded timeouts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from playwright.async_api import Locator, Page, WebSocket, WebSocketRoute, expect

from tests.browser.conftest import machine_addresses

PASSWORD = "correct horse 1"
CALL_TIMEOUT_MS = 30_000


@dataclass
class Frames:
    """Every WebSocket frame a page received, parsed."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == type_]


def watch_frames(page: Page) -> Frames:
    """Record the frames the page receives on any WebSocket (set up before goto)."""
    frames = Frames()

    def on_socket(ws: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            if isinstance(payload, str):
                try:
                    frames.received.append(json.loads(payload))
                except ValueError:
                    frames.received.append({"type": "<not json>", "raw": payload})

        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return frames


class SocketCutter:
    """Routes a page's event socket through Playwright, so a test can cut it the way
    a network drop would, keep it down, and let it come back. It also records the
    auth frames the page sends (to check how it resumes)."""

    def __init__(self) -> None:
        self.auth_frames: list[dict[str, Any]] = []
        self.message_sends: list[dict[str, Any]] = []
        self.down = False
        # Set by a test: the next message.send reaches the server, but the socket
        # drops before its answer reaches the page (the answer is lost with it).
        self.drop_after_next_send = False
        self._sockets: list[WebSocketRoute] = []

    async def install(self, page: Page) -> None:
        """Before the page opens its socket (before signing in)."""
        await page.route_web_socket(re.compile(r"/api/v1/events$"), self._route)

    async def _route(self, ws: WebSocketRoute) -> None:
        if self.down:
            await ws.close(code=1011, reason="network down")
            return
        server = ws.connect_to_server()
        self._sockets.append(ws)

        losing = False

        def to_server(message: str | bytes) -> None:
            nonlocal losing
            if isinstance(message, str) and '"auth"' in message:
                self.auth_frames.append(json.loads(message))
            if isinstance(message, str) and '"message.send"' in message:
                self.message_sends.append(json.loads(message))
                if self.drop_after_next_send:
                    self.drop_after_next_send = False
                    losing = True
            server.send(message)

        def to_page(message: str | bytes) -> None:
            if losing:
                if isinstance(message, str) and '"message.ack"' in message:
                    # The server answered: the network drops before the page hears it.
                    asyncio.get_running_loop().create_task(
                        ws.close(code=1011, reason="network down")
                    )
                return
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    async def cut(self) -> None:
        """Drop the current socket; reconnections fail until :meth:`restore`."""
        self.down = True
        await self._sockets[-1].close(code=1011, reason="network down")

    def restore(self) -> None:
        self.down = False


async def sign_up(page: Page, url: str, username: str, display_name: str = "") -> None:
    await page.goto(url)
    await page.get_by_role("button", name="Create an account").click()
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await page.get_by_label("Username").fill(username)
    if display_name:
        await page.get_by_label("Display name (optional)").fill(display_name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()


async def sign_in(page: Page, url: str, username: str, *, shared_computer: bool = False) -> None:
    """Sign in from the form. ``shared_computer`` ticks "This is a shared computer":
    the session is then this tab's own, as another device's would be."""
    await page.goto(url)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    if shared_computer:
        await page.get_by_role("checkbox", name="This is a shared computer").check()
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect_online(page)


async def expect_online(page: Page) -> None:
    """The event stream is connected (the offline banner is gone)."""
    await expect(page.locator("#connection")).to_be_hidden()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open")


async def go_to(page: Page, where: str) -> None:
    """Follow a link of the main navigation ("Inbox", "Privacy")."""
    await page.get_by_role("navigation", name="Main").get_by_role("link", name=where).click()


async def open_conversation(page: Page, username: str) -> None:
    await go_to(page, "Inbox")
    await page.get_by_label("Message someone").fill(username)
    await page.get_by_role("button", name="Open").click()
    await expect(page.get_by_role("textbox", name=re.compile(r"^Message "))).to_be_visible()
    await expect(page.locator(".handle", has_text=f"@{username}")).to_be_visible()


async def send_message(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name=re.compile(r"^Message ")).fill(text)
    await page.get_by_role("button", name="Send", exact=True).click()


def messages(page: Page, text: str) -> Locator:
    """Delivered messages (not pending sends) with exactly this text."""
    return page.locator("li.msg:not(.pending) .bubble", has_text=re.compile(f"^{re.escape(text)}$"))


def call_dialog(page: Page) -> Locator:
    return page.get_by_role("dialog")


async def expect_connected(page: Page) -> None:
    """The call screen says media flows over the relay."""
    dialog = call_dialog(page)
    await expect(dialog.get_by_role("timer")).to_be_visible(timeout=CALL_TIMEOUT_MS)
    await expect(dialog.locator("#call-status")).to_have_text(
        re.compile(r"^(Audio|Video) call$"), timeout=CALL_TIMEOUT_MS
    )
    await expect(dialog.locator("#route-badge")).to_have_text(
        "Relayed — your address is hidden", timeout=CALL_TIMEOUT_MS
    )


# --- getStats(), read from the page's own peer connection -----------------------------

STATS = """
async () => {
  const pcs = window.__rfTestPeerConnections;
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const report = await pc.getStats();
  const out = { state: pc.connectionState, inbound: {}, outbound: {}, local: null, remote: null,
                config: pc.getConfiguration() };
  let pair = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp") {
      const entry = (out.inbound[s.kind] ??= { bytes: 0, energy: 0 });
      entry.bytes += s.bytesReceived || 0;
      entry.energy += s.totalAudioEnergy || 0;
    }
    if (s.type === "outbound-rtp") {
      const entry = (out.outbound[s.kind] ??= { bytes: 0 });
      entry.bytes += s.bytesSent || 0;
    }
    if (s.type === "transport" && s.selectedCandidatePairId)
      pair = report.get(s.selectedCandidatePairId);
  });
  if (pair) {
    out.local = report.get(pair.localCandidateId)?.candidateType ?? null;
    out.remote = report.get(pair.remoteCandidateId)?.candidateType ?? null;
  }
  return out;
}
"""

BYTES_ABOVE = """
async ([direction, kind, floor]) => {
  const pcs = window.__rfTestPeerConnections;
  const pc = pcs[pcs.length - 1];
  if (!pc) return false;
  const report = await pc.getStats();
  let bytes = 0;
  report.forEach((s) => {
    if (s.kind !== kind) return;
    if (direction === "in" && s.type === "inbound-rtp") bytes += s.bytesReceived || 0;
    if (direction === "out" && s.type === "outbound-rtp") bytes += s.bytesSent || 0;
  });
  return bytes > floor;
}
"""


async def stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] | None = await page.evaluate(STATS)
    assert result is not None, "the page has no peer connection"
    return result


async def poll(page: Page, script: str, arg: Any, what: str) -> None:
    """Evaluate an async predicate in the page until it holds, for at most
    CALL_TIMEOUT_MS. (``page.wait_for_function`` would not await its promise.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CALL_TIMEOUT_MS / 1000
    while not await page.evaluate(script, arg):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def wait_bytes(page: Page, direction: str, kind: str, floor: int) -> None:
    """Wait until the page's peer connection has sent/received more than ``floor``
    bytes of this kind of media."""
    await poll(page, BYTES_ABOVE, [direction, kind, floor], f"{kind} bytes {direction} > {floor}")


async def expect_media_flowing(page: Page, kinds: tuple[str, ...]) -> None:
    """Bytes go out and come in for each kind, and keep coming (two readings)."""
    first = await stats(page)
    for kind in kinds:
        await wait_bytes(page, "out", kind, first["outbound"].get(kind, {}).get("bytes", 0))
        await wait_bytes(page, "in", kind, first["inbound"].get(kind, {}).get("bytes", 0))
    later = await stats(page)
    for kind in kinds:
        assert later["outbound"][kind]["bytes"] > 0
        assert later["inbound"][kind]["bytes"] > 0


async def senders_enabled(page: Page, kind: str) -> list[bool]:
    """``enabled`` of each track the page's peer connection sends, of this kind."""
    result: list[bool] = await page.evaluate(
        """(kind) => {
          const pcs = window.__rfTestPeerConnections;
          return pcs[pcs.length - 1].getSenders()
            .filter((s) => s.track && s.track.kind === kind).map((s) => s.track.enabled);
        }""",
        kind,
    )
    return result


async def peer_connection_count(page: Page) -> int:
    count: int = await page.evaluate("window.__rfTestPeerConnections.length")
    return count


async def media_requests(page: Page) -> int:
    count: int = await page.evaluate("window.__rfTestMedia.requests")
    return count


# --- the API, for setting up people quickly ----------------------------------------------


class ApiUser:
    """A person set up through the HTTP API (faster than the UI where the UI is not
    what the test is about)."""

    def __init__(self, client: httpx.AsyncClient, username: str, token: str) -> None:
        self.client = client
        self.username = username
        self.token = token

    @classmethod
    async def register(cls, base_url: str, username: str, display_name: str = "") -> ApiUser:
        client = httpx.AsyncClient(base_url=base_url, timeout=15)
        body = {"username": username, "password": PASSWORD}
        if display_name:
            body["display_name"] = display_name
        resp = await client.post("/api/v1/accounts", json=body)
        assert resp.status_code == 201, resp.text
        return cls(client, username, resp.json()["token"])

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def follow(self, username: str) -> None:
        resp = await self.call("PUT", f"/api/v1/me/following/{username}")
        assert resp.status_code == 204, resp.text

    async def send(self, to: str, text: str) -> dict[str, Any]:
        resp = await self.call("POST", f"/api/v1/conversations/{to}/messages", json={"text": text})
        assert resp.status_code == 201, resp.text
        message: dict[str, Any] = resp.json()["message"]
        return message

    async def history(self, with_user: str) -> list[dict[str, Any]]:
        resp = await self.call("GET", f"/api/v1/conversations/{with_user}/messages")
        assert resp.status_code == 200, resp.text
        result: list[dict[str, Any]] = resp.json()["messages"]
        return result

    async def close(self) -> None:
        await self.client.aclose()


async def may_call(caller: ApiUser, callee: ApiUser) -> None:
    """Under default settings ``caller`` may then call ``callee``: the callee follows
    the caller, and the caller has messaged the callee (so the conversation is accepted)."""
    await callee.follow(caller.username)
    await caller.send(callee.username, f"hi {callee.username}, may I call you?")


async def alice_may_call_bob(url: str, message: str = "may I call you?") -> None:
    """Register Alice and Bob so that, under default settings, Alice may call Bob (he
    follows her; she has written to him, which opens the conversation)."""
    alice = await ApiUser.register(url, "alice", "Alice")
    bob = await ApiUser.register(url, "bob", "Bob")
    try:
        await bob.follow("alice")
        await alice.send("bob", message)
    finally:
        await alice.close()
        await bob.close()


def candidate_lines(frames: Frames) -> list[str]:
    """Every ICE candidate the page was sent: trickled ones and those inside SDPs."""
    lines = [str(f["candidate"]["candidate"]) for f in frames.of_type("call.candidate")]
    for frame in frames.received:
        sdp = frame.get("sdp")
        if isinstance(sdp, str):
            lines += [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return lines


def matching(lines: list[str], predicate: Callable[[str], bool]) -> list[str]:
    return [line for line in lines if predicate(line)]


class SocketTap:
    """Routes a page's event socket through Playwright so a test can send a frame to
    the server *on the page's own connection* (as its device), the way a modified
    client would."""

    def __init__(self) -> None:
        self._servers: list[WebSocketRoute] = []

    async def install(self, page: Page) -> None:
        """Before the page opens its socket (before signing in)."""
        await page.route_web_socket(re.compile(r"/api/v1/events$"), self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self._servers.append(server)
        ws.on_message(server.send)

    def send(self, frame: dict[str, Any]) -> None:
        """Send a frame to the server over the page's current socket."""
        assert self._servers, "the page has not opened its event socket"
        self._servers[-1].send(json.dumps(frame))


def addresses_in(lines: list[str]) -> set[str]:
    """Every IP address that appears as a token in these candidate/SDP lines."""
    found = set()
    for line in lines:
        for token in re.split(r"[\s/]+", line):
            try:
                found.add(str(ipaddress.ip_address(token)))
            except ValueError:
                continue
    return found


def assert_only_relay_candidates(frames: Frames, who: str) -> None:
    """Every candidate the page was sent is a relay candidate, and neither they nor any
    line of the SDPs it was sent (c=, o=...) carries an address of this machine."""
    lines = candidate_lines(frames)
    assert lines, f"{who} received no ICE candidates at all"
    assert all(" typ relay" in line for line in lines), (who, lines)
    sdp_lines = [
        line
        for frame in frames.received
        if isinstance(frame.get("sdp"), str)
        for line in frame["sdp"].splitlines()
    ]
    assert sdp_lines, f"{who} received no SDP"
    leaked = addresses_in(lines + sdp_lines) & machine_addresses()
    assert not leaked, f"{who} was sent this machine's address(es) {leaked}"


# --- unread counts, receipts and typing (issue 12) --------------------------------------


def console_errors(page: Page, refused: tuple[str, ...] = ()) -> list[str]:
    """Collect the page's console errors (each one a bug unless a test expects it), but
    for the browser's own request for /favicon.ico, which the app doesn't make, and its
    own "Failed to load resource" line for a request the test expects the server to
    refuse (to a URL ending in one of ``refused``)."""
    errors: list[str] = []

    def on_console(message: Any) -> None:
        url = message.location.get("url", "")
        if message.type != "error" or url.endswith("/favicon.ico"):
            return
        if "Failed to load resource" in message.text and url.endswith(refused):
            return
        errors.append(f"{message.text} ({url})")

    page.on("console", on_console)
    return errors


@dataclass
class SentFrames:
    """Every JSON frame a page sent, parsed, with when it went (event-loop time, s)."""

    sent: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [f for _, f in self.sent if f.get("type") == type_]

    def times_of(self, type_: str) -> list[float]:
        return [t for t, f in self.sent if f.get("type") == type_]


def watch_sent_frames(page: Page) -> SentFrames:
    """Record the frames the page sends on any WebSocket (set up before goto)."""
    frames = SentFrames()
    loop = asyncio.get_running_loop()

    def on_socket(ws: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            if isinstance(payload, str):
                try:
                    frame = json.loads(payload)
                except ValueError:
                    frame = {"type": "<not json>", "raw": payload}
                frames.sent.append((loop.time(), frame))

        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    return frames


def message_status(page: Page, text: str) -> Locator:
    """The read receipt ("Sent", "Read") under the delivered message with this text."""
    bubble = page.locator(".bubble", has_text=re.compile(f"^{re.escape(text)}$"))
    return page.locator("li.msg:not(.pending)").filter(has=bubble).get_by_role("status")


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    """Wait for a condition the test observes from outside the page (frames, say)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
