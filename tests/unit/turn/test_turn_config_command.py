"""`ringfence turn-config`: the production coturn configuration an operator installs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ringfence.cli import app


def turn_config(*args: str) -> tuple[list[str], str]:
    result = CliRunner().invoke(app, ["turn-config", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines(), result.stderr


def allowed_peers(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("allowed-peer-ip")]


def test_relay_behind_nat_re_allows_its_own_private_address_only() -> None:
    lines, _ = turn_config("--external-ip", "8.8.4.4", "--listen-ip", "10.0.0.5")

    assert "listening-ip=10.0.0.5" in lines
    assert "external-ip=8.8.4.4" in lines
    assert allowed_peers(lines) == ["allowed-peer-ip=10.0.0.5"]
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" in lines
    assert "allow-loopback-peers" not in lines
    assert "no-tcp-relay" in lines


def test_a_public_relay_needs_no_exception() -> None:
    lines, stderr = turn_config("--external-ip", "8.8.4.4")

    assert allowed_peers(lines) == []
    assert "RINGFENCE_TURN_URLS=turn:8.8.4.4:3478?transport=udp,turn:8.8.4.4:3478" in stderr


def test_tls_paths_are_made_absolute_and_urls_include_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    lines, stderr = turn_config(
        "--external-ip", "192.168.1.20", "--tls-port", "5349", "--cert", "c.pem", "--pkey", "k.pem"
    )

    assert f"cert={tmp_path.resolve() / 'c.pem'}" in lines
    assert f"pkey={tmp_path.resolve() / 'k.pem'}" in lines
    assert "tls-listening-port=5349" in lines
    assert allowed_peers(lines) == ["allowed-peer-ip=192.168.1.20"]
    assert "turns:192.168.1.20:5349?transport=tcp" in stderr


def test_ipv6_urls_are_bracketed() -> None:
    lines, stderr = turn_config("--external-ip", "fd00::2")

    assert allowed_peers(lines) == ["allowed-peer-ip=fd00::2"]
    assert "turn:[fd00::2]:3478?transport=udp" in stderr
