"""Rewrite the configuration table in README.md from the Settings class.

Run after adding or changing a setting: `.venv/bin/python scripts/lib/render_config_table.py`.
tests/unit/test_readme.py fails while the table and the code disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.unit.test_readme import render_config_table  # noqa: E402

START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"
readme = ROOT / "README.md"
text = readme.read_text()
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
readme.write_text(f"{head}{START}\n{render_config_table()}\n{END}{tail}")
print("README.md configuration table updated")
