"""Without coturn installed and no external relay configured, `ringfence serve` refuses
to start and says how to fix it: calls must never fall back to direct connections."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RINGFENCE = str(Path(sys.executable).with_name("ringfence"))


def test_missing_turnserver_stops_start_up_with_instructions(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    env["PATH"] = str(tmp_path)  # a PATH on which no turnserver can be found
    result = subprocess.run(
        [RINGFENCE, "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "turnserver" in result.stderr
    assert "apt-get install coturn" in result.stderr
    assert "RINGFENCE_TURN_URLS" in result.stderr
