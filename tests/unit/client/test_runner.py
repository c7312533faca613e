"""How the terminal commands pick a session, read KEY=VALUE settings, and turn a
failure into one line and an exit status (1: the server refused; 2: usage)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from ringfence.client.api import RingfenceError
from ringfence.client.cli import register
from ringfence.client.cli_settings import coerce, parse_assignments
from ringfence.client.events import EventStreamClosed
from ringfence.client.runner import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    explain,
    resolve_account,
)
from ringfence.client.session import SessionStore, StoredSession

TOKEN = "rf_stored-token-abcdefghijklmnop"
SERVER = "https://chat.example.org"


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    store = SessionStore(tmp_path / "ringfence")
    store.save("default", StoredSession(SERVER + "/", "alice", TOKEN))
    return store


def never(_message: str) -> None:
    raise AssertionError("no warning expected")


def test_the_stored_session_is_used_and_only_for_its_own_server(store: SessionStore) -> None:
    account = resolve_account(None, None, "default", warn=never, store=store)
    assert (account.server, account.token, account.username) == (SERVER + "/", TOKEN, "alice")
    assert TOKEN not in repr(account)
    # The same server, spelled with or without the slash, is fine.
    assert resolve_account(SERVER, None, "default", warn=never, store=store).token == TOKEN
    with pytest.raises(CliError) as elsewhere:
        resolve_account("https://evil.example", None, "default", warn=never, store=store)
    assert elsewhere.value.code == EXIT_USAGE
    assert "not https://evil.example" in elsewhere.value.message
    with pytest.raises(CliError) as missing:
        resolve_account(None, None, "work", warn=never, store=store)
    assert missing.value.code == EXIT_USAGE
    assert "--profile work" in missing.value.message


def test_a_token_file_needs_a_server_and_warns_when_readable(
    store: SessionStore, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(" rf_file-token \n")
    path.chmod(0o600)
    with pytest.raises(CliError) as no_server:
        resolve_account(None, path, "default", warn=never, store=store)
    assert no_server.value.code == EXIT_USAGE
    account = resolve_account("http://127.0.0.1:1", path, "default", warn=never, store=store)
    assert account.token == "rf_file-token"
    warnings: list[str] = []
    path.chmod(0o644)
    resolve_account("http://127.0.0.1:1", path, "default", warn=warnings.append, store=store)
    assert "chmod 600" in warnings[0]
    with pytest.raises(CliError) as bad_url:
        resolve_account("ftp://x", path, "default", warn=never, store=store)
    assert bad_url.value.code == EXIT_USAGE


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [
        (
            RingfenceError(403, "forbidden", "you cannot block yourself"),
            "you cannot block yourself",
            1,
        ),
        (
            RingfenceError(429, "rate_limited", "too many reports", retry_after_s=61.2),
            "too many reports (retry in 62s)",
            1,
        ),
        (
            RingfenceError(401, "invalid_credentials", "wrong username or password"),
            "wrong username or password",
            1,
        ),
        (
            EventStreamClosed("the session token is no longer valid", fatal=True),
            "the session token is no longer valid",
            1,
        ),
        (
            json.JSONDecodeError("x", "doc", 0),
            "https://s did not answer like a Ringfence server",
            1,
        ),
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            "cannot reach https://s: [Errno 111] Connection refused",
            1,
        ),
        (ConnectionRefusedError(), "cannot reach https://s: ConnectionRefusedError", 1),
    ],
)
def test_each_expected_failure_is_one_line(error: Exception, line: str, code: int) -> None:
    explained = explain(error, "https://s")
    assert explained is not None
    assert (explained.message, explained.code) == (line, code)


def test_a_revoked_session_says_to_sign_in_again() -> None:
    explained = explain(
        RingfenceError(401, "unauthorized", "a valid bearer token is required"), None
    )
    assert explained is not None
    assert explained.code == EXIT_REFUSED
    assert "ringfence login" in explained.message


def test_a_bug_is_not_disguised() -> None:
    assert explain(KeyError("x"), None) is None


def test_settings_assignments() -> None:
    assert parse_assignments(["calls_enabled=false", "call_audience = a,b"]) == [
        ("calls_enabled", "false"),
        ("call_audience", "a,b"),
    ]
    for bad in (["calls_enabled"], ["=x"], ["a=1", "a=2"]):
        with pytest.raises(CliError) as usage:
            parse_assignments(bad)
        assert usage.value.code == EXIT_USAGE


def test_values_take_the_type_the_server_holds() -> None:
    assert coerce("false", True) is False
    assert coerce("ON", False) is True
    assert coerce("maybe", True) == "maybe"  # for the server to refuse in its own words
    assert coerce("following, verified", ["following"]) == ["following", "verified"]
    assert coerce("", ["following"]) == []
    assert coerce("nobody", "everyone") == "nobody"
    assert coerce("5", 3) == 5
    assert coerce("x", None) == "x"  # an unknown key: sent as typed, refused by name


def test_every_command_is_there_with_json() -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Ringfence (test harness)."""

    register(app)
    runner = CliRunner()
    commands = [
        ["signup"], ["login"], ["logout"], ["whoami"], ["send"], ["inbox"], ["read"],
        ["accept"], ["decline"], ["follow"], ["unfollow"], ["block"], ["unblock"],
        ["following"], ["followers"], ["blocked"], ["report"], ["settings", "show"],
        ["settings", "set"], ["calls"], ["listen"], ["call"], ["answer"],
    ]  # fmt: skip
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "--json" in result.output, command
    for command in (["signup"], ["login"]):
        help_text = runner.invoke(app, [*command, "--help"]).output
        assert "--password-stdin" in help_text
        assert "--password " not in help_text  # never a password argument
