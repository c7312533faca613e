"""User text reaches an admin's terminal as text: never markup, never escape sequences.

Before: a report reason such as ``harassment, see [/]`` crashed ``ringfence admin
reports`` (Rich MarkupError), and ``--all`` kept crashing, hiding the whole queue; a
reason could carry terminal escape sequences (a hidden link, a window title, a
clipboard write), and the API took them.
"""

from __future__ import annotations

import os

import pytest

from ringfence.config import Settings
from tests.conftest import Api, LiveServer
from tests.integration.test_moderation import admin

pytestmark = pytest.mark.integration

ESCAPES = (
    "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\",  # a hidden link
    "\x1b]0;pwned\x07",  # the window title
    "\x1b]52;c;cm0gLXJmIH4=\x07",  # a clipboard write
    "\x9b31m",  # C1 control sequence introducer
)


async def test_markup_in_a_reason_is_shown_as_written_and_the_queue_stays_readable(
    live: tuple[LiveServer, Api], settings: Settings
) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    for reason in ("harassment, see [/]", "[bold red]urgent[/] [link=https://x.example]x[/link]"):
        resp = await api.call(
            "POST", "/api/v1/reports", alice, json={"username": "bob", "reason": reason}
        )
        assert resp.status_code == 201, resp.text

    for args in (("reports",), ("reports", "--all")):
        listed = await admin(settings, *args)
        assert listed.returncode == 0, listed.stderr
        flat = " ".join(listed.stdout.split())  # the table wraps long cells
        assert "harassment, see [/]" in flat
        assert "[bold red]urgent[/]" in flat


async def test_control_characters_are_refused_at_the_api(live: tuple[LiveServer, Api]) -> None:
    _, api = live
    alice = await api.register("alice")
    await api.register("bob")
    for escape in ESCAPES:
        for method, path, body in (
            ("POST", "/api/v1/reports", {"username": "bob", "reason": f"see {escape}"}),
            ("POST", "/api/v1/conversations/bob/messages", {"text": f"hi {escape}"}),
            (
                "POST",
                "/api/v1/accounts",
                {"username": "mallory", "password": "correct horse 1", "display_name": escape},
            ),
        ):
            resp = await api.call(method, path, alice, json=body)
            assert resp.status_code == 422, (path, escape, resp.text)
            error = resp.json()
            assert error["error"] == "invalid_request"
            assert "control characters" in error["detail"], error
    assert (await api.call("GET", "/api/v1/users/mallory", alice)).status_code == 404

    # Tab and line breaks are what text is made of; CRLF and CR arrive as LF.
    resp = await api.call(
        "POST",
        "/api/v1/conversations/bob/messages",
        alice,
        json={"text": "line one\r\nline two\rthree\tcolumns"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["message"]["text"] == "line one\nline two\nthree\tcolumns"
    resp = await api.call(
        "POST", "/api/v1/reports", alice, json={"username": "bob", "reason": "a\r\nb\tc"}
    )
    assert resp.status_code == 201, resp.text


async def test_escape_sequences_stored_before_the_rule_are_printed_visibly(
    live: tuple[LiveServer, Api], settings: Settings
) -> None:
    server, api = live
    svc = server.services
    alice = await svc.accounts.authenticate(await api.register("alice"))
    await api.register("bob")
    # As a report made before the API refused them: straight to the service.
    await svc.moderation.report(alice, "bob", "".join(ESCAPES) + " and [/]")

    wide = {**os.environ, "COLUMNS": "400"}  # each reason on one line, to read it back
    listed = await admin(settings, "reports", "--all", env=wide)

    assert listed.returncode == 0, listed.stderr
    for output in (listed.stdout, listed.stderr):
        assert "\x1b" not in output
        assert "\x07" not in output
        assert "\x9b" not in output
    assert "\\x1b]0;pwned\\x07" in listed.stdout
    assert "\\x9b31m and [/]" in listed.stdout
