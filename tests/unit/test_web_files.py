"""The browser's generated files match the Python code they come from, so the two
clients cannot drift apart (regenerate with scripts/lib/render_web_files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ringfence
from ringfence.web_files import GENERATED

WEB = Path(ringfence.__file__).resolve().parent / "web"


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_generated_web_file_is_current(relative: str) -> None:
    committed = (WEB / relative).read_text(encoding="utf-8")
    assert committed == GENERATED[relative](), (
        f"web/{relative} is stale: run .venv/bin/python scripts/lib/render_web_files.py"
    )
