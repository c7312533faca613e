"""The README's promises stay true: its configuration table matches the code, and the
two commands it gives a newcomer exist and are what CI runs."""

from __future__ import annotations

import os
from pathlib import Path

from ringfence.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def render_config_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        shown = "—" if default in (None, []) else f"`{default}`"
        rows.append(f"| `RINGFENCE_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


def test_config_table_matches_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- config-table:start -->") + len("<!-- config-table:start -->")
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end].strip() == render_config_table(), (
        "README configuration table is stale; regenerate it from Settings"
    )


def test_readme_commands_exist_and_ci_runs_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for script in ("scripts/serve", "scripts/test"):
        assert script in readme
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
