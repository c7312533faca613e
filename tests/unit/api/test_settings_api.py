"""GET /api/v1/me and PATCH /api/v1/me/settings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.unit.api.test_accounts import assert_error

DEFAULTS = {
    "calls_enabled": True,
    "call_audience": ["following"],
    "direct_connections": "nobody",
    "silence_unknown_callers": False,
    "read_receipts": True,
    "typing_indicators": True,
    "message_notifications": "name_only",
}


async def me(api: Api, token: str) -> dict[str, Any]:
    resp = await api.call("GET", "/api/v1/me", token)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def patch(api: Api, token: str, body: Any) -> Any:
    return await api.call("PATCH", "/api/v1/me/settings", token, json=body)


async def test_me_returns_the_user_and_default_settings(api: Api) -> None:
    token = await api.register("alice")
    body = await me(api, token)
    assert set(body) == {"user", "settings"}
    assert body["user"]["username"] == "alice"
    assert set(body["user"]) == {"id", "username", "display_name", "verified", "deleted"}
    assert body["settings"] == DEFAULTS


async def test_a_partial_update_changes_only_the_given_fields(api: Api) -> None:
    token = await api.register("alice")
    resp = await patch(api, token, {"calls_enabled": False})
    assert resp.status_code == 200
    assert resp.json() == {"settings": {**DEFAULTS, "calls_enabled": False}}
    resp = await patch(api, token, {"direct_connections": "everyone"})
    expected = {**DEFAULTS, "calls_enabled": False, "direct_connections": "everyone"}
    assert resp.json() == {"settings": expected}
    assert (await me(api, token))["settings"] == expected
    assert (await patch(api, token, {})).json() == {"settings": expected}


async def test_every_allowed_value_is_accepted(api: Api) -> None:
    token = await api.register("alice")
    for value in ("nobody", "following", "everyone"):
        resp = await patch(api, token, {"direct_connections": value})
        assert resp.json()["settings"]["direct_connections"] == value
    for audience in ([], ["following"], ["verified"], ["everyone"], ["following", "verified"]):
        resp = await patch(api, token, {"call_audience": audience})
        assert resp.json()["settings"]["call_audience"] == sorted(audience)
    for enabled in (False, True):
        resp = await patch(api, token, {"calls_enabled": enabled})
        assert resp.json()["settings"]["calls_enabled"] is enabled


async def test_call_audience_is_stored_without_duplicates(api: Api) -> None:
    token = await api.register("alice")
    resp = await patch(api, token, {"call_audience": ["verified", "following", "verified"]})
    assert resp.status_code == 200
    assert resp.json()["settings"]["call_audience"] == ["following", "verified"]


async def test_settings_are_per_user(api: Api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await patch(api, alice, {"calls_enabled": False, "call_audience": ["everyone"]})
    assert (await me(api, bob))["settings"] == DEFAULTS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"calls_enabled": "yes"}, "calls_enabled"),
        ({"calls_enabled": "true"}, "calls_enabled"),
        ({"calls_enabled": 1}, "calls_enabled"),
        ({"calls_enabled": None}, "calls_enabled"),
        ({"call_audience": "everyone"}, "call_audience"),
        ({"call_audience": ["friends"]}, "call_audience"),
        ({"call_audience": ["Everyone"]}, "call_audience"),
        ({"call_audience": [None]}, "call_audience"),
        ({"call_audience": None}, "call_audience"),
        ({"call_audience": ["following"] * 4}, "call_audience"),
        ({"call_audience": {"following": True}}, "call_audience"),
        ({"direct_connections": "all"}, "direct_connections"),
        ({"direct_connections": ["everyone"]}, "direct_connections"),
        ({"direct_connections": None}, "direct_connections"),
        ({"direct_connections": ""}, "direct_connections"),
        ({"silence_unknown_callers": "yes"}, "silence_unknown_callers"),
        ({"calls_enabled": False, "direct_connections": "all"}, "direct_connections"),
    ],
)
async def test_an_invalid_value_names_the_field_and_changes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    token = await api.register("alice")
    await patch(api, token, {"direct_connections": "following"})
    before = (await me(api, token))["settings"]
    error = assert_error(await patch(api, token, body))
    assert field in error["detail"]
    # The field, or an item of it ("call_audience.0").
    assert {name.split(".")[0] for name in error["fields"]} == {field}
    assert (await me(api, token))["settings"] == before


@pytest.mark.parametrize("body", [None, [], "calls_enabled", 1, [{"calls_enabled": False}]])
async def test_a_body_that_is_not_an_object_is_refused(api: Api, body: Any) -> None:
    token = await api.register("alice")
    assert_error(await patch(api, token, body))
    assert (await me(api, token))["settings"] == DEFAULTS
