"""A usage mistake in any `ringfence` command is one line on stderr and status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RINGFENCE = Path(sys.executable).parent / "ringfence"


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), COLUMNS="200")
    return subprocess.run(
        [str(RINGFENCE), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("send",), "ringfence send: Missing argument"),
        (("send", "--bogus", "bob", "hi"), "ringfence send: No such option: --bogus"),
        (("nosuch",), "ringfence: No such command 'nosuch'"),
        (("serve", "--port", "eighty"), "ringfence serve: Invalid value for '--port'"),
    ],
)
def test_usage_mistakes_are_one_line(args: tuple[str, ...], says: str, tmp_path: Path) -> None:
    result = run(*args, home=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(says), lines[0]
    assert lines[0].endswith("--help)")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_group_without_its_command_shows_its_help(tmp_path: Path) -> None:
    result = run("settings", home=tmp_path)
    assert result.returncode == 2
    assert result.stdout.count("Usage: ringfence settings") == 1
    assert "show" in result.stdout
