"""A suspension stops messages at once, whatever the authentication cache remembers.

Before: after ``ringfence admin suspend`` (another process, no Bus to announce it), the
cached token went on sending for up to auth_cache_ttl_s: 13 messages in 3 s.
"""

from __future__ import annotations

from ringfence.config import Settings
from tests.conftest import Api, behind_the_servers_back


async def suspend_behind_the_servers_back(settings: Settings, username: str) -> None:
    """What `ringfence admin suspend` does without Redis: the database only."""
    await behind_the_servers_back(
        settings,
        ("UPDATE users SET suspended = true WHERE username = :name", {"name": username}),
        (
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = :name)",
            {"name": username},
        ),
    )


async def test_a_suspended_sender_is_refused_on_the_very_next_message(
    api: Api, settings: Settings
) -> None:
    assert settings.auth_cache_ttl_s > 0  # the token below is cached
    alice = await api.register("alice")
    bob = await api.register("bob")
    assert (await api.send(alice, "bob", "before", txn_id="t-1")).status_code == 201

    await suspend_behind_the_servers_back(settings, "alice")

    for body in ({"text": "after"}, {"text": "before", "txn_id": "t-1"}):  # a retry too
        resp = await api.call("POST", "/api/v1/conversations/bob/messages", alice, json=body)
        assert resp.status_code == 401, resp.text
        assert resp.json() == {"error": "unauthorized", "detail": "this account is suspended"}
    history = await api.call("GET", "/api/v1/conversations/alice/messages", bob)
    assert [m["text"] for m in history.json()["messages"]] == ["before"]
