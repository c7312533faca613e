"""Display names cannot hide or reorder what they show.

Before: ``Ringfence Support ✓`` followed by U+202E was accepted, and shown as it was
wherever the name went, the ringing screen included.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ringfence.config import Settings
from ringfence.storage.database import Database
from tests.conftest import Api


async def register(api: Api, username: str, display_name: str) -> tuple[int, dict[str, object]]:
    resp = await api.client.post(
        "/api/v1/accounts",
        json={"username": username, "password": "correct horse 1", "display_name": display_name},
    )
    body: dict[str, object] = resp.json()
    return resp.status_code, body


@pytest.mark.parametrize(
    ("display_name", "named"),
    [
        ("Ringfence Support ✓\u202e", "U+202E (right-to-left override)"),
        ("Ringfence\u2066 Support\u2069", "U+2066 (left-to-right isolate)"),
        ("Ringfence\u200b Support", "U+200B (zero width space)"),
        ("\u3164", "U+3164 (hangul filler)"),
        ("Support\U000e0020\U000e0041", "U+E0020 (tag space)"),
    ],
)
async def test_invisible_and_direction_changing_characters_are_refused_with_a_reason(
    api: Api, display_name: str, named: str
) -> None:
    status, body = await register(api, "mallory", display_name)

    assert status == 422
    assert body["error"] == "invalid_request"
    assert body["fields"] == ["display_name"]
    assert named in str(body["detail"])
    assert "cannot be part of a display name" in str(body["detail"])


async def test_names_in_every_script_and_emoji_are_welcome(api: Api) -> None:
    for username, name in (
        ("ada", "👩\u200d💻 Ada"),
        ("sara", "سارا"),
        ("mina", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
        ("support", "Ringfence Support ✓"),  # allowed: the @handle says who it is
    ):
        status, body = await register(api, username, name)
        assert status == 201, body
        assert body["user"] == {
            "id": body["user"]["id"],  # type: ignore[index]
            "username": username,
            "display_name": name,
            "verified": False,
            "deleted": False,
        }


async def test_a_name_stored_before_the_rule_is_shown_without_what_it_hid(
    api: Api, settings: Settings
) -> None:
    viewer = await api.register("viewer")
    db = Database(settings.effective_database_url)
    await db.start()
    try:
        async with db.write() as store:
            for username, name in (("legacy", "Support ✓\u202eevil"), ("blank", "\u3164\u200b")):
                await store.users.add(
                    username=username,
                    display_name=name,
                    password_hash="x",
                    now=datetime.now(UTC),
                )
    finally:
        await db.close()

    legacy = (await api.call("GET", "/api/v1/users/legacy", viewer)).json()["user"]
    blank = (await api.call("GET", "/api/v1/users/blank", viewer)).json()["user"]

    assert legacy["display_name"] == "Support ✓evil"
    assert blank["display_name"] == "blank"
