"""The clients' generated files match the Python code they come from, so the clients
and the server cannot drift apart (regenerate with scripts/lib/render_generated.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ringfence
from ringfence.generated import GENERATED

PACKAGE = Path(ringfence.__file__).resolve().parent


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_generated_file_is_current(relative: str) -> None:
    committed = (PACKAGE / relative).read_text(encoding="utf-8")
    assert committed == GENERATED[relative](), (
        f"{relative} is stale: run .venv/bin/python scripts/lib/render_generated.py"
    )
