"""wire/ is the one definition of what crosses the network, shared by the server, the
Python client and the tests, so it must stay importable without any of them: no
FastAPI, no services, no storage. Checked in a fresh interpreter, by what got
imported."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import ringfence.wire

WIRE_MODULES = sorted(
    f"ringfence.wire.{info.name}" for info in pkgutil.iter_modules(ringfence.wire.__path__)
)
FORBIDDEN = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "ringfence.api",
    "ringfence.services",
    "ringfence.storage",
    "ringfence.realtime",
    "ringfence.client",
)


def imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_http_models_are_in_wire() -> None:
    assert {"ringfence.wire.requests", "ringfence.wire.responses", "ringfence.wire.text"} <= set(
        WIRE_MODULES
    )


@pytest.mark.parametrize("module", WIRE_MODULES)
def test_a_wire_module_imports_no_layer_above_it(module: str) -> None:
    modules = imported_after(f"import {module}")
    assert module in modules
    assert sorted(m for m in modules if _under(m, FORBIDDEN)) == []


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)
