"""The call/answer commands' checks that run before any network is touched."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import cast

import pytest
import typer
from typer.testing import CliRunner

from ringfence.client.api import CallRecord
from ringfence.client.call import Call, CallState, StateChange
from ringfence.client.cli import EXIT_FAILED, EXIT_USAGE, call_label, describe, register

TOKEN = "rf_secret-token-value-123"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Ringfence (test harness)."""

    register(app)
    return app


@pytest.fixture
def closed_port_url() -> str:
    """A URL nobody listens on: connection refused, at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def token_file(tmp_path: Path, mode: int, text: str = f"  {TOKEN}\n") -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_both_commands_are_registered(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "call" in result.output
    assert "answer" in result.output


def test_missing_or_empty_token_file_is_a_usage_error(
    app: typer.Typer, tmp_path: Path, closed_port_url: str
) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app, ["call", "bob", "--server", closed_port_url, "--token-file", str(tmp_path / "nope")]
    )
    assert missing.exit_code == EXIT_USAGE
    assert "cannot read token file" in missing.output
    empty = runner.invoke(
        app,
        [
            "answer",
            "--server",
            closed_port_url,
            "--token-file",
            str(token_file(tmp_path, 0o600, "\n")),
        ],
    )
    assert empty.exit_code == EXIT_USAGE
    assert "is empty" in empty.output


def test_play_and_tone_together_are_refused(
    app: typer.Typer, tmp_path: Path, closed_port_url: str
) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    result = CliRunner().invoke(
        app,
        [
            "call",
            "bob",
            "--server",
            closed_port_url,
            "--token-file",
            str(token_file(tmp_path, 0o600)),
            "--play",
            str(wav),
            "--tone",
            "440",
        ],
    )
    assert result.exit_code == EXIT_USAGE
    assert "either --play or --tone" in result.output


def test_readable_token_file_warns_and_the_token_is_never_printed(
    app: typer.Typer, tmp_path: Path, closed_port_url: str
) -> None:
    path = token_file(tmp_path, 0o644)
    result = CliRunner().invoke(
        app,
        ["call", "bob", "--server", closed_port_url, "--token-file", str(path), "--tone", "440"],
    )
    assert "readable by other users" in result.output
    assert "chmod 600" in result.output
    assert result.exit_code == EXIT_FAILED
    assert "cannot reach" in result.output
    assert TOKEN not in result.output


def test_private_token_file_gives_no_warning(
    app: typer.Typer, tmp_path: Path, closed_port_url: str
) -> None:
    result = CliRunner().invoke(
        app,
        ["answer", "--server", closed_port_url, "--token-file", str(token_file(tmp_path, 0o600))],
    )
    assert "readable by other users" not in result.output
    assert result.exit_code == EXIT_FAILED


# --- what the terminal says about calls ---------------------------------------------------


def record(outcome: str, duration_s: int = 0, media: str = "audio") -> CallRecord:
    return cast(
        CallRecord,
        {"call_id": "c4ll-1d_000", "media": media, "outcome": outcome, "duration_s": duration_s},
    )


@pytest.mark.parametrize(
    ("call", "outgoing", "words"),
    [
        (record("completed", 192), True, "Audio call · 3:12"),
        (record("completed", 3725, "video"), False, "Video call · 1:02:05"),
        # Answered but never connected: no duration, whichever side you were on.
        (record("not_connected"), True, "Call didn't connect"),
        (record("not_connected"), False, "Call didn't connect"),
        (record("missed"), True, "Audio call · No answer"),
        (record("missed", media="video"), False, "Missed video call"),
        (record("rejected"), True, "Audio call · Declined"),
        (record("cancelled"), True, "Cancelled audio call"),
        (record("cancelled"), False, "Missed audio call"),
        (record("busy"), True, "Audio call · Busy"),
    ],
)
def test_call_labels_are_the_web_clients_words(
    call: CallRecord, outgoing: bool, words: str
) -> None:
    assert call_label(call, outgoing=outgoing) == words


def test_the_calls_command_is_registered(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["calls", "--help"])
    assert result.exit_code == 0
    assert "didn't connect" in result.output


class FakeCall:
    """Just what ``describe`` reads from a call."""

    verification_code = None

    def selected_candidate_pair(self) -> None:
        return None


def test_state_lines_say_what_happened() -> None:
    call = cast(Call, FakeCall())
    dropped = StateChange(CallState.RECONNECTING, detail="nothing received for 4s")
    assert "restarting it through the relay" in describe(dropped, call, CallState.CONNECTED)
    assert "nothing received for 4s" in describe(dropped, call, CallState.CONNECTED)
    back = describe(StateChange(CallState.CONNECTED), call, CallState.RECONNECTING)
    assert "reconnected" in back
    # Ended before media ever flowed: the call didn't connect, whoever gave up.
    never = StateChange(CallState.ENDED, "failed", "could not reach the relay server")
    assert "didn't connect" in describe(never, call, CallState.CONNECTING)
    assert "could not reach the relay server" in describe(never, call, CallState.CONNECTING)
    after = describe(StateChange(CallState.ENDED, "hangup"), call, CallState.CONNECTED)
    assert "didn't connect" not in after
    assert "ended: hangup" in after
