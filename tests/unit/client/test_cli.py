"""The call/answer commands' checks that run before any network is touched."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ringfence.client.cli import EXIT_FAILED, EXIT_USAGE, register

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
