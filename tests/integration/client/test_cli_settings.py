"""``ringfence settings show`` and ``settings set`` against a real ``ringfence serve``:
the server validates, and a change from the terminal is the server's, at once, for
every client (the call refused through the same HTTP call the web client makes; the
browser itself: test_cli_settings_web.py)."""

from __future__ import annotations

import json

import pytest

from ringfence.client import RingfenceClient, RingfenceError
from tests.integration.client import test_cli_call as harness
from tests.integration.client.test_cli_call import PASSWORD, Terminals

pytestmark = pytest.mark.integration

processes = harness.processes
server_url = harness.server_url
terminals = harness.terminals

DEFAULTS = {
    "calls_enabled": True,
    "call_audience": ["following"],
    "direct_connections": "nobody",
    "silence_unknown_callers": False,
}


async def test_settings_show_and_set_every_setting(server_url: str, terminals: Terminals) -> None:
    bob = terminals("bob", server_url)
    await bob.signup("bob")

    shown = (await bob.ok("settings", "show", "--json")).json()["settings"]
    assert {key: shown[key] for key in DEFAULTS} == DEFAULTS
    table = await bob.ok("settings", "show")
    assert "call_audience" in table.out
    assert "following" in table.out

    ran = await bob.ok(
        "settings",
        "set",
        "calls_enabled=false",
        "call_audience=following,verified",
        "direct_connections=following",
        "silence_unknown_callers=true",
        "--json",
    )
    expected = {
        "calls_enabled": False,
        "call_audience": ["following", "verified"],
        "direct_connections": "following",
        "silence_unknown_callers": True,
    }
    assert {key: ran.json()["settings"][key] for key in expected} == expected
    again = (await bob.ok("settings", "show", "--json")).json()["settings"]
    assert {key: again[key] for key in expected} == expected

    # An empty list: nobody may call.
    await bob.ok("settings", "set", "call_audience=")
    assert (await bob.ok("settings", "show", "--json")).json()["settings"]["call_audience"] == []
    human = await bob.ok("settings", "set", "calls_enabled=on", "call_audience=everyone")
    assert human.out.startswith("saved")


async def test_the_server_judges_each_value_and_says_why(
    server_url: str, terminals: Terminals
) -> None:
    bob = terminals("bob", server_url)
    await bob.signup("bob")

    # Each refusal prints exactly what the server says to the same update (the body the
    # web client would send), whatever its wording.
    cases = {
        "calls_enabled=maybe": {"calls_enabled": "maybe"},
        "direct_connections=friends": {"direct_connections": "friends"},
        "call_audience=following,friends": {"call_audience": ["following", "friends"]},
        "no_such_setting=1": {"no_such_setting": "1"},
    }
    token = json.loads(bob.session_file().read_text())["token"]
    async with RingfenceClient(server_url, token) as api:
        for assignment, body in cases.items():
            with pytest.raises(RingfenceError) as direct:
                await api.update_settings(**body)
            assert direct.value.status == 422
            ran = await bob.run("settings", "set", assignment)
            assert ran.code == 1, str(ran)
            assert ran.err == f"error: {direct.value.detail}\n", str(ran)
            assert next(iter(body)) in ran.err  # it names the setting
    # Nothing was changed by a refused update, not even its valid parts.
    partly = await bob.run("settings", "set", "calls_enabled=false", "direct_connections=friends")
    assert partly.code == 1
    shown = (await bob.ok("settings", "show", "--json")).json()["settings"]
    assert {key: shown[key] for key in DEFAULTS} == DEFAULTS

    for usage in (["settings", "set", "calls_enabled"], ["settings", "set", "=x"]):
        ran = await bob.run(*usage)
        assert ran.code == 2, str(ran)
    twice = await bob.run("settings", "set", "calls_enabled=true", "calls_enabled=false")
    assert twice.code == 2
    assert "given twice" in twice.err


async def test_calls_off_from_the_terminal_refuses_the_web_clients_call(
    server_url: str, terminals: Terminals
) -> None:
    bob = terminals("bob", server_url)
    await bob.signup("bob")
    # Alice uses the web client: the same HTTP calls it makes, through the Python client.
    async with RingfenceClient(server_url) as alice:
        await alice.register("alice", PASSWORD)
        await bob.ok("follow", "alice")
        await alice.send_message("bob", "may I call you?")
        await bob.ok("accept", "alice")

        await bob.ok("settings", "set", "calls_enabled=false")
        with pytest.raises(RingfenceError) as refused:
            await alice.start_call("bob", "audio")
        assert (refused.value.status, refused.value.code) == (403, "call_not_allowed")

        await bob.ok("settings", "set", "calls_enabled=true")
        started = await alice.start_call("bob", "audio")
        assert started["call_id"]
