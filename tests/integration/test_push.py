"""Web Push end to end: a live server pushes to a local push service (tests/
push_service.py), which checks every VAPID signature and decrypts every body with
the subscription's own private key, as a browser would.

Also: the subscription endpoints, and the endpoints the server refuses to send to
(SSRF), with the test-only ``push_allow_insecure_endpoints`` off.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.config import Settings
from tests.conftest import Api, LiveServer, Socket, make_settings, open_socket
from tests.integration.calls.sdp import sdp_pair
from tests.push_service import LocalPushService, Subscription, make_subscription

pytestmark = pytest.mark.integration

SUBS = "/api/v1/me/push-subscriptions"


@pytest.fixture
def push_service() -> Iterator[LocalPushService]:
    service = LocalPushService().start()
    yield service
    service.stop()
    assert service.errors == []


@pytest.fixture
def push_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        push_allow_insecure_endpoints=True,
        push_workers=1,
        push_timeout_s=20,
        push_subscriptions_per_account=3,
    )


@pytest.fixture
async def live(
    push_settings: Settings, push_service: LocalPushService
) -> AsyncIterator[tuple[LiveServer, Api]]:
    async with (
        LiveServer(push_settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        config = (await client.get("/api/v1/push/config")).json()
        push_service.vapid_public_key = config["vapid_public_key"]
        yield server, Api(client)
        push_service.release()  # a hung push must not hold up the shutdown


async def drained(live: LiveServer) -> None:
    """Every push queued so far has been answered by the push service."""
    await asyncio.wait_for(live.app.state.services.push.drained(), 30)


async def subscribe(api: Api, token: str, sub: Subscription) -> int:
    resp = await api.call("POST", SUBS, token, json=sub.to_json())
    assert resp.status_code == 201, resp.text
    sub_id: int = resp.json()["id"]
    return sub_id


async def befriend(api: Api, caller: str, callee: str) -> tuple[str, str]:
    """``callee`` follows ``caller``, who has written first: a call from them rings."""
    caller_token = await api.register(caller)
    callee_token = await api.register(callee)
    resp = await api.call("PUT", f"/api/v1/me/following/{caller}", callee_token)
    assert resp.status_code == 204
    resp = await api.send(caller_token, callee, "hi, may I call you?")
    assert resp.status_code == 201
    return caller_token, callee_token


async def ring(live: LiveServer, api: Api, caller: str, callee: str) -> tuple[str, Socket, Socket]:
    a_ws = await open_socket(live.ws_url, caller)
    b_ws = await open_socket(live.ws_url, callee)
    resp = await api.call("POST", "/api/v1/calls", caller, json={"to": "bob", "media": "audio"})
    assert resp.status_code == 201, resp.text
    call_id: str = resp.json()["call_id"]
    offer, _ = await sdp_pair()
    await a_ws.send({"type": "call.offer", "call_id": call_id, "sdp": offer})
    assert (await b_ws.recv_type("call.incoming"))["call_id"] == call_id
    return call_id, a_ws, b_ws


async def test_the_vapid_key_is_made_once_and_kept_private(
    live: tuple[LiveServer, Api], push_settings: Settings
) -> None:
    _, api = live
    key = (await api.call("GET", "/api/v1/push/config")).json()["vapid_public_key"]
    point = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(point) == 65
    assert point[0] == 4
    pem = push_settings.data_dir / "vapid-private.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    async with LiveServer(push_settings) as again, httpx.AsyncClient(base_url=again.url) as c:
        assert (await c.get("/api/v1/push/config")).json()["vapid_public_key"] == key


async def test_a_call_rings_and_ends_through_push(
    live: tuple[LiveServer, Api], push_service: LocalPushService, push_settings: Settings
) -> None:
    server, api = live
    alice, bob = await befriend(api, "alice", "bob")
    phone = push_service.subscribe()
    await subscribe(api, bob, phone)
    await drained(server)
    call_id, a_ws, _ = await ring(server, api, alice, bob)
    await drained(server)
    # Who is calling: what the woken service worker asks, with bob's session only.
    who = await api.call("GET", f"/api/v1/push/calls/{call_id}", bob)
    assert who.status_code == 200, who.text
    assert who.json()["caller"]["username"] == "alice"
    for token in (alice, await api.register("mallory")):
        assert (await api.call("GET", f"/api/v1/push/calls/{call_id}", token)).status_code == 404
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    await a_ws.recv_type("call.ended")
    await drained(server)
    # The hello message bob got before subscribing was not pushed; the call was.
    assert push_service.payloads(phone) == [
        {"type": "call.incoming", "call_id": call_id},
        {"type": "call.ended", "call_id": call_id},
    ]
    incoming = next(p for p in push_service.pushes if p.path == phone.path)
    assert incoming.headers["urgency"] == "high"
    assert int(incoming.headers["ttl"]) == push_settings.ring_timeout_s
    assert incoming.claims["aud"] == push_service.origin
    # The call has ended: nobody learns of it any more.
    assert (await api.call("GET", f"/api/v1/push/calls/{call_id}", bob)).status_code == 404


async def set_notifications(api: Api, token: str, value: str) -> None:
    resp = await api.call(
        "PATCH", "/api/v1/me/settings", token, json={"message_notifications": value}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["settings"]["message_notifications"] == value


async def test_messages_are_pushed_as_the_setting_says(
    live: tuple[LiveServer, Api], push_service: LocalPushService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, api = live
    alice, bob = await befriend(api, "alice", "bob")
    me = (await api.call("GET", "/api/v1/me", bob)).json()
    assert me["settings"]["message_notifications"] == "name_only"  # the default
    phone = push_service.subscribe()
    await subscribe(api, bob, phone)
    sent = []
    for value in ("name_only", "off", "name_and_text"):
        await set_notifications(api, bob, value)
        resp = await api.send(alice, "bob", f"under {value}")
        sent.append(resp.json()["message"]["id"])
        await drained(server)
    base = {"type": "message.new", "from": "alice", "request": False}
    assert push_service.payloads(phone) == [
        {**base, "message_id": sent[0], "show": "name_only"},
        {**base, "message_id": sent[2], "show": "name_and_text"},
    ]
    # A stranger's message is a request, and says so; a blocked sender's is withheld
    # and pushes nothing.
    mallory = await api.register("mallory")
    resp = await api.send(mallory, "bob", "hello?")
    await drained(server)
    assert push_service.payloads(phone)[-1] == {
        **base,
        "from": "mallory",
        "request": True,
        "message_id": resp.json()["message"]["id"],
        "show": "name_and_text",
    }
    assert (await api.call("PUT", "/api/v1/me/blocked/mallory", bob)).status_code == 204
    before = len(push_service.payloads(phone))
    assert (await api.send(mallory, "bob", "let me in")).status_code == 201
    await drained(server)
    assert len(push_service.payloads(phone)) == before
    # The endpoint is a capability: it is in no log line, whatever the level.
    secret_part = phone.path.rsplit("/", 1)[1]
    # (httpx would log each request's URL at INFO: it is kept to warnings.)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not [r for r in caplog.records if secret_part in r.getMessage()]


async def test_subscriptions_are_listed_updated_capped_and_end_with_the_session(
    live: tuple[LiveServer, Api], push_service: LocalPushService
) -> None:
    server, api = live
    bob = await api.register("bob")
    other = await api.register("eve")
    first = push_service.subscribe()
    sub_id = await subscribe(api, bob, first)
    # The same endpoint again (a browser re-subscribing): the same row, new keys.
    renewed = Subscription(first.endpoint, push_service.subscribe().private_key, first.auth)
    assert await subscribe(api, bob, renewed) == sub_id
    # Two tabs registering one endpoint at once: one row, never an error.
    twice = await asyncio.gather(subscribe(api, bob, renewed), subscribe(api, bob, renewed))
    assert twice == [sub_id, sub_id]
    listed = (await api.call("GET", SUBS, bob)).json()["subscriptions"]
    assert [(s["id"], s["push_service"], s["current"]) for s in listed] == [
        (sub_id, "127.0.0.1", True)
    ]
    assert first.endpoint not in str(listed)  # a capability: never echoed
    # Someone else's is not theirs to delete, and looks like none at all.
    resp = await api.call("DELETE", f"{SUBS}/{sub_id}", other)
    assert resp.status_code == 404
    assert (await api.call("DELETE", f"{SUBS}/999999", other)).json() == resp.json()
    # The cap (3 in this test).
    for _ in range(2):
        await subscribe(api, bob, push_service.subscribe())
    over = await api.call("POST", SUBS, bob, json=push_service.subscribe().to_json())
    assert over.status_code == 400
    assert over.json()["error"] == "too_many_push_subscriptions"
    assert (await api.call("DELETE", f"{SUBS}/{sub_id}", bob)).status_code == 204
    assert len((await api.call("GET", SUBS, bob)).json()["subscriptions"]) == 2
    # Signing out ends the session and its subscriptions with it.
    second = await api.call(
        "POST", "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
    )
    laptop = second.json()["token"]
    await subscribe(api, laptop, push_service.subscribe())
    assert (await api.call("DELETE", "/api/v1/sessions/current", bob)).status_code == 204
    left = (await api.call("GET", SUBS, laptop)).json()["subscriptions"]
    assert [s["current"] for s in left] == [True]
    # A password change ends the other sessions, and their subscriptions.
    phone = await api.call(
        "POST", "/api/v1/sessions", json={"username": "bob", "password": "correct horse 1"}
    )
    await subscribe(api, phone.json()["token"], push_service.subscribe())
    changed = await api.call(
        "POST",
        "/api/v1/me/password",
        laptop,
        json={"current_password": "correct horse 1", "new_password": "correct horse 2"},
    )
    assert changed.status_code == 204, changed.text
    left = (await api.call("GET", SUBS, laptop)).json()["subscriptions"]
    assert [s["current"] for s in left] == [True]
    # Deleting the account takes every subscription with it.
    bob_id = (await api.call("GET", "/api/v1/me", laptop)).json()["user"]["id"]
    deleted = await api.call("DELETE", "/api/v1/me", laptop, json={"password": "correct horse 2"})
    assert deleted.status_code == 204, deleted.text
    async with server.services.db.read() as store:
        assert await store.push.for_user(bob_id) == []
    await drained(server)


async def test_a_gone_subscription_is_deleted(
    live: tuple[LiveServer, Api], push_service: LocalPushService
) -> None:
    server, api = live
    alice, bob = await befriend(api, "alice", "bob")
    gone = push_service.subscribe("gone")
    await subscribe(api, bob, gone)
    await api.send(alice, "bob", "are you there?")
    await drained(server)
    assert len(push_service.payloads(gone)) == 1  # delivered once, answered 410
    assert (await api.call("GET", SUBS, bob)).json()["subscriptions"] == []
    assert server.app.state.services.push.counts["gone"] == 1


async def test_a_hung_push_service_does_not_hold_up_the_call(
    live: tuple[LiveServer, Api], push_service: LocalPushService
) -> None:
    server, api = live
    alice, bob = await befriend(api, "alice", "bob")
    await subscribe(api, bob, push_service.subscribe("hang"))
    # The hello message's push is held by the push service (one worker, so every push
    # after it waits in the queue)...
    await api.send(alice, "bob", "ping")
    await asyncio.to_thread(push_service.hung.wait, 30)
    # ...and still the call rings on bob's socket, and can be hung up.
    call_id, a_ws, b_ws = await ring(server, api, alice, bob)
    await a_ws.send({"type": "call.hangup", "call_id": call_id})
    assert (await b_ws.recv_type("call.ended"))["call_id"] == call_id
    assert not server.app.state.services.push.counts  # nothing answered yet
    push_service.release()
    await drained(server)
    assert server.app.state.services.push.counts["sent"] == 3


@pytest.fixture
async def strict(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    """A server with the test-only flag off, as in production."""
    settings = make_settings(tmp_path, database_url)
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        yield Api(client)


REFUSED = [
    "http://push.example.com/x",  # not https
    "https://127.0.0.1/x",
    "https://10.1.2.3/x",
    "https://192.168.1.1/x",
    "https://172.16.0.1/x",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/x",
    "https://0.0.0.0/x",
    "https://224.0.0.1/x",
    "https://240.0.0.1/x",
    "https://[::1]/x",
    "https://[::]/x",
    "https://[fc00::1]/x",
    "https://[fd12:3456::1]/x",
    "https://[fe80::1]/x",
    "https://[::ffff:127.0.0.1]/x",
    "https://[::ffff:10.0.0.1]/x",
    "https://[64:ff9b::a00:1]/x",  # NAT64 of 10.0.0.1
    "https://[2002:7f00:1::1]/x",  # 6to4 of 127.0.0.1
    "https://[ff02::1]/x",
    "https://localhost/x",  # a name that resolves to loopback
    "https://localhost:8443/x",
    "https://user:pw@push.example.com/x",
    "ftp://push.example.com/x",
    "https://push.invalid/x",  # does not resolve
]


async def test_endpoints_inside_the_network_are_refused(strict: Api) -> None:
    bob = await strict.register("bob")
    body = make_subscription("https://push.example.com/x").to_json()
    for endpoint in REFUSED:
        resp = await strict.call("POST", SUBS, bob, json={**body, "endpoint": endpoint})
        assert resp.status_code == 422, (endpoint, resp.text)
        assert endpoint not in resp.text
    assert (await strict.call("GET", SUBS, bob)).json()["subscriptions"] == []


async def test_malformed_subscriptions_are_refused(strict: Api) -> None:
    bob = await strict.register("bob")
    good: dict[str, Any] = make_subscription("https://push.example.com/x").to_json()
    keys = good["keys"]
    for bad_keys in (
        {**keys, "p256dh": "not base64!"},
        {**keys, "p256dh": keys["p256dh"][:-4]},  # not 65 bytes
        {**keys, "p256dh": "BA" + "A" * 85},  # 65 bytes, not on the curve
        {**keys, "auth": "AAAA"},  # not 16 bytes
    ):
        resp = await strict.call("POST", SUBS, bob, json={**good, "keys": bad_keys})
        assert resp.status_code in (400, 422), resp.text
    for body in ({"endpoint": "https://x"}, {**good, "extra": 1}, {**good, "endpoint": 5}):
        assert (await strict.call("POST", SUBS, bob, json=body)).status_code == 422
    assert (await strict.call("POST", SUBS, json=good)).status_code == 401


async def test_insecure_endpoints_are_announced_at_start(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ringfence")
    for flag in (False, True):
        settings = make_settings(
            tmp_path / str(flag), database_url, push_allow_insecure_endpoints=flag
        )
        async with LiveServer(settings):
            pass
        warned = [r for r in caplog.records if "push_allow_insecure_endpoints" in r.getMessage()]
        assert len(warned) == int(flag)
