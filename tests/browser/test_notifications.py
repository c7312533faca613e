"""Notifications while Ringfence's tab is closed (issue 11, Web Push): the service
worker shows an incoming call with the caller's name and Accept and Decline, closes it
when the call ends, declines the call from it, and shows new messages as the person's
``message_notifications`` setting says.

Headless Chromium has no push service: ``pushManager.subscribe`` never settles there.
So the page registers a subscription built in the test (a real P-256 key pair and auth
secret, held by the local push service of tests/push_service.py) through the client's
own code (notify.js's ``registerSubscription``, which also hands the worker the
session). The server then really pushes to the local push service, which checks the
VAPID signature and decrypts the body; that decrypted payload is delivered to the
worker through DevTools' ``ServiceWorker.deliverPushMessage``, as a push service would
deliver it. Notification permission is granted through the browser context.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, CDPSession, Page, Worker, expect

from tests.browser.conftest import Browsers, Server
from tests.browser.ui import ApiUser, console_errors, go_to, may_call, sign_up, wait_until
from tests.conftest import Socket, make_settings, open_socket
from tests.integration.calls.sdp import sdp_pair
from tests.push_service import LocalPushService, Subscription
from tests.turn_fixture import Coturn

pytestmark = pytest.mark.browser

NOTIFICATIONS = """
async (tag) => (await self.registration.getNotifications(tag ? { tag } : {})).map((n) => ({
  title: n.title, body: n.body, tag: n.tag, requireInteraction: n.requireInteraction,
  actions: n.actions.map((a) => [a.action, a.title]), data: n.data,
}))
"""

CLICK = """
async ([tag, action]) => {
  const [shown] = await self.registration.getNotifications({ tag });
  self.dispatchEvent(new NotificationEvent("notificationclick", { notification: shown, action }));
}
"""


@pytest.fixture
def push_service() -> Iterator[LocalPushService]:
    service = LocalPushService().start()
    yield service
    service.stop()
    assert service.errors == []


@pytest.fixture
async def server(
    tmp_path: Path, database_url: str, coturn: Coturn, push_service: LocalPushService
) -> AsyncIterator[Server]:
    settings = make_settings(
        tmp_path,
        database_url,
        turn_urls=list(coturn.urls),
        turn_secret=coturn.secret,
        push_allow_insecure_endpoints=True,
    )
    srv = Server(settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


class Pusher:
    """Delivers decrypted pushes to one browser's service worker, through DevTools."""

    def __init__(self, context: BrowserContext, cdp: CDPSession, origin: str) -> None:
        self.context = context
        self.cdp = cdp
        self.origin = origin
        self.registrations: dict[str, str] = {}
        cdp.on("ServiceWorker.workerRegistrationUpdated", self._updated)

    def _updated(self, event: dict[str, Any]) -> None:
        for reg in event["registrations"]:
            if not reg["isDeleted"]:
                self.registrations[reg["scopeURL"]] = reg["registrationId"]

    async def start(self) -> None:
        await self.cdp.send("ServiceWorker.enable")
        await wait_until(lambda: f"{self.origin}/" in self.registrations, "the registration")

    async def deliver(self, payload: dict[str, Any]) -> None:
        await self.cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": self.origin,
                "registrationId": self.registrations[f"{self.origin}/"],
                "data": json.dumps(payload),
            },
        )

    async def worker(self) -> Worker:
        for worker in self.context.service_workers:
            if worker.url.endswith("/sw.js"):
                return worker
        return await self.context.wait_for_event("serviceworker")

    async def shown(self, tag: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await (await self.worker()).evaluate(NOTIFICATIONS, tag)
        return result

    async def until_shown(self, tag: str, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _ in range(100):
            found = await self.shown(tag)
            if len(found) == count:
                return found
            await (await self.worker()).evaluate("new Promise((r) => setTimeout(r, 100))")
        raise AssertionError(f"{count} notifications tagged {tag!r} expected, found {found}")


async def subscribe_page(page: Page, sub: Subscription) -> None:
    """Register ``sub`` for the page's session through the client's own code."""
    await page.evaluate(
        """async (subscription) => {
             const { Api } = await import("/api.js");
             const { registerSubscription } = await import("/notify.js");
             const { token } = JSON.parse(localStorage.getItem("ringfence.session"));
             await registerSubscription(new Api(() => token, () => {}), token, subscription);
           }""",
        sub.to_json(),
    )


async def ring(server: Server, alice: ApiUser) -> tuple[str, Socket]:
    ws = await open_socket(f"ws://127.0.0.1:{server.port}/api/v1/events", alice.token)
    resp = await alice.call("POST", "/api/v1/calls", json={"to": "bob", "media": "audio"})
    assert resp.status_code == 201, resp.text
    call_id: str = resp.json()["call_id"]
    offer, _ = await sdp_pair()
    await ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    return call_id, ws


async def pushed(service: LocalPushService, sub: Subscription, count: int) -> dict[str, Any]:
    """The ``count``-th push the server sent to ``sub``, as the browser decrypts it."""
    await wait_until(lambda: len(service.payloads(sub)) >= count, f"push {count}")
    return service.payloads(sub)[count - 1]


async def test_a_closed_tab_rings_and_notifies(
    server: Server, browsers: Browsers, push_service: LocalPushService
) -> None:
    page = await browsers.page("bob")
    errors = console_errors(page)
    await page.context.grant_permissions(["notifications"], origin=server.url)
    await sign_up(page, server.url, "bob", "Bob Bobson")
    assert await page.evaluate("Notification.permission") == "granted"
    # The offer to turn notifications on: an explanation and a button, never a prompt.
    await expect(page.get_by_role("button", name="Turn on notifications")).to_be_visible()
    await page.wait_for_function("navigator.serviceWorker.controller !== null")
    push_service.vapid_public_key = await page.evaluate(
        "fetch('/api/v1/push/config').then((r) => r.json()).then((c) => c.vapid_public_key)"
    )
    sub = push_service.subscribe()
    await subscribe_page(page, sub)
    assert errors == []
    token = await page.evaluate("JSON.parse(localStorage.getItem('ringfence.session')).token")
    bob = ApiUser(httpx.AsyncClient(base_url=server.url, timeout=15), "bob", token)
    alice = await ApiUser.register(server.url, "alice", "Alice Liddell")
    await may_call(alice, bob)

    pusher = Pusher(page.context, await page.context.new_cdp_session(page), server.url)
    await pusher.start()
    # Ringfence's tab is closed: the page shows something else.
    await page.goto("about:blank")

    # A call rings through push: the caller's name, Accept and Decline.
    call_id, alice_ws = await ring(server, alice)
    n = len(push_service.payloads(sub))
    payload = await pushed(push_service, sub, n + 1)
    assert payload == {"type": "call.incoming", "call_id": call_id}
    await pusher.deliver(payload)
    [shown] = await pusher.until_shown(call_id, 1)
    assert shown["title"] == "Incoming call — Alice Liddell"
    assert shown["requireInteraction"] is True
    assert shown["actions"] == [["accept", "Accept"], ["decline", "Decline"]]
    # The caller hangs up: the pushed call.ended closes the notification.
    await alice_ws.send({"type": "call.hangup", "call_id": call_id})
    ended = await pushed(push_service, sub, n + 2)
    assert ended == {"type": "call.ended", "call_id": call_id}
    await pusher.deliver(ended)
    await pusher.until_shown(call_id, 0)
    await alice_ws.close()

    # Another call, declined from the notification: the caller sees it end.
    call_id, alice_ws = await ring(server, alice)
    payload = await pushed(push_service, sub, n + 3)
    await pusher.deliver(payload)
    await pusher.until_shown(call_id, 1)
    await (await pusher.worker()).evaluate(CLICK, [call_id, "decline"])
    ended_for_alice = await alice_ws.recv_type("call.ended", timeout=15)
    assert ended_for_alice == {"type": "call.ended", "call_id": call_id, "reason": "rejected"}
    assert await pusher.shown(call_id) == []
    await alice_ws.close()

    # A message, shown as bob's setting says: name and text, then name only.
    for value, text, body in (
        ("name_and_text", "see you at noon", "see you at noon"),
        ("name_only", "bring the map", ""),
    ):
        resp = await bob.call("PATCH", "/api/v1/me/settings", json={"message_notifications": value})
        assert resp.status_code == 200, resp.text
        count = len(push_service.payloads(sub))
        await alice.send("bob", text)
        message = await pushed(push_service, sub, count + 1)
        assert message["type"] == "message.new"
        assert message["from"] == "alice"
        assert text not in json.dumps(message)  # the worker fetches it, if it may
        await pusher.deliver(message)
        [note] = await pusher.until_shown("message:alice", 1)
        assert note["title"] == "New message from Alice Liddell"
        assert note["body"] == body
        await (await pusher.worker()).evaluate(
            "async () => (await self.registration.getNotifications()).forEach((n) => n.close())"
        )

    # Accept opens Ringfence at #/answer/<call id> (the worker's openWindow), and the
    # page answers that call as soon as it rings there.
    call_id, alice_ws = await ring(server, alice)
    await page.goto(f"{server.url}/#/answer/{call_id}")
    answered = await alice_ws.recv_type("call.answer", timeout=20)
    assert answered["call_id"] == call_id
    await expect(page.get_by_role("dialog")).to_be_visible()
    assert page.url.endswith("#/inbox")  # the address answers once, not on every reload
    await alice_ws.send({"type": "call.hangup", "call_id": call_id})
    await alice_ws.close()
    assert errors == []
    await alice.close()
    await bob.close()


async def test_settings_choose_what_a_message_notification_shows(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("carol")
    errors = console_errors(page)
    await sign_up(page, server.url, "carol")
    # Before permission is asked: an offer, which "Not now" puts away for good.
    offer = page.get_by_role("region", name="Notifications")
    await expect(offer).to_contain_text("when Ringfence is in the background or closed")
    await offer.get_by_role("button", name="Not now").click()
    await expect(offer).to_have_count(0)
    await page.reload()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(offer).to_have_count(0)

    await go_to(page, "Privacy")
    section = page.get_by_role("region", name="Notifications")
    await expect(section).to_contain_text("Notifications are off in this browser.")
    await expect(section.get_by_role("button", name="Turn on notifications")).to_be_visible()
    default = section.get_by_role("radio", name="Who wrote: “New message from Alex”")
    await expect(default).to_be_checked()
    await section.get_by_role("radio", name="Who wrote, and what they wrote").check()
    await expect(section.get_by_role("status").last).to_have_text(
        "Saved. Message notifications show who wrote and what."
    )
    token = await page.evaluate("JSON.parse(localStorage.getItem('ringfence.session')).token")
    async with httpx.AsyncClient(base_url=server.url) as client:
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["settings"]["message_notifications"] == "name_and_text"
    assert errors == []
