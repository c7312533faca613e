"""The CLI loads WebRTC only for calls: `ringfence inbox` or `ringfence --help` must not
pay for aiortc, PyAV and numpy (about half a second on every start). Checked in a
fresh interpreter, by what got imported, not by how long it took."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiortc", "av", "numpy")


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_cli_starts_without_webrtc() -> None:
    modules = imported_after("import ringfence.cli")
    assert not [m for m in HEAVY if m in modules]


def test_the_client_package_loads_calls_when_they_are_used() -> None:
    assert "aiortc" not in imported_after("import ringfence.client")
    modules = imported_after("from ringfence.client import place_call, ToneTrack")
    assert {"aiortc", "ringfence.client.call", "ringfence.client.media"} <= modules
