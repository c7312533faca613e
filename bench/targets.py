"""The throughput targets (issue 14), judged from one run's results: met, missed by how
much, or not measured by the scenarios that ran.

The judgement reads the same numbers the tables print; it never changes what is
measured. A DM step meets the latency target only if every message of the step was
delivered (a lost message is infinitely late) and its p99 is under the bound.
"""

from __future__ import annotations

import math
from typing import Any

from bench.report import Table

DM_P99_S = 0.050
DM_GOAL = {"dm-sqlite": 1000.0, "dm-postgres": 500.0}
RING_P99_MS = 25.0
IDLE_SOCKET_KIB = 15.0


def _p99_ms(cell: str) -> float:
    """A ring table cell ("14.8", "lost", "-") as milliseconds; lost or missing = inf."""
    try:
        return float(cell)
    except ValueError:
        return math.inf


def _dm(name: str, extra: dict[str, Any] | None) -> list[str]:
    goal = DM_GOAL[name]
    backend = "SQLite" if name == "dm-sqlite" else "PostgreSQL"
    target = f"{goal:g} DMs/s on {backend}, all delivered, p99 < {DM_P99_S * 1000:g} ms"
    if not extra or not extra.get("steps"):
        return [target, f"not measured (run `{name}`)", "-"]
    good = [
        s["rate"]
        for s in extra["steps"]
        if s["received"] == s["attempted"] and s["q"][99] < DM_P99_S
    ]
    best = max(good, default=None)
    at_goal = [s for s in extra["steps"] if s["rate"] >= goal]
    parts = [f"highest step meeting it: {best:g}/s" if best is not None else "no step met it"]
    for s in at_goal[:1]:
        p99 = s["q"][99]
        shown = "lost messages" if math.isinf(p99) else f"p99 {p99 * 1000:.0f} ms"
        parts.append(f"at {s['rate']:g}/s: {s['received']} of {s['attempted']} delivered, {shown}")
    if not at_goal:
        parts.append(f"no step at {goal:g}/s was run")
    met = best is not None and best >= goal
    return [target, "; ".join(parts), "met" if met else "missed"]


def _rings(name: str, extra: dict[str, Any] | None) -> list[str]:
    backend = "SQLite" if name == "dm-sqlite" else "PostgreSQL"
    target = (
        f"call.offer → call.incoming p99 < {RING_P99_MS:g} ms ({backend}, with and without DMs)"
    )
    if not extra or not extra.get("steps"):
        return [target, f"not measured (run `{name}`)", "-"]
    rows = [extra.get("ring_idle"), *(s["ring"] for s in extra["steps"])]
    measured = [
        ("no DM load" if row[0] == "idle" else f"DMs at {row[0]}", _p99_ms(row[-1]))
        for row in rows
        if row
    ]
    if not measured:
        return [target, "no ring probes ran", "-"]
    worst_label, worst = max(measured, key=lambda kv: kv[1])
    shown = ", ".join(
        f"{label}: {'lost probes' if math.isinf(p99) else f'{p99:g} ms'}" for label, p99 in measured
    )
    verdict = "met" if worst < RING_P99_MS else f"missed ({worst_label})"
    return [target, shown, verdict]


def _memory(extra: dict[str, Any] | None) -> list[str]:
    target = f"server memory per idle WebSocket < {IDLE_SOCKET_KIB:g} KiB (RSS)"
    if not extra or "per_conn_idle_kib" not in extra:
        return [target, "not measured (run `connect`)", "-"]
    kib = float(extra["per_conn_idle_kib"])
    return [target, f"{kib:.1f} KiB", "met" if kib < IDLE_SOCKET_KIB else "missed"]


def verdicts(sections: list[dict[str, Any]]) -> Table | None:
    """The targets table for a run's sections, or None when no scenario that measures
    one of them ran."""
    extras = {s["name"]: s["extra"] for s in sections}
    if not {"dm-sqlite", "dm-postgres", "connect"} & extras.keys():
        return None
    t = Table("Targets (issue 14)", ["target", "measured", "verdict"])
    t.add(*_dm("dm-sqlite", extras.get("dm-sqlite")))
    t.add(*_dm("dm-postgres", extras.get("dm-postgres")))
    t.add(*_rings("dm-sqlite", extras.get("dm-sqlite")))
    t.add(*_rings("dm-postgres", extras.get("dm-postgres")))
    t.add(*_memory(extras.get("connect")))
    t.notes.append(
        "5,000 sockets connected throughout the DM and ring steps; durability is checked by "
        "the test suite (tests/integration/test_serve_process.py, a SIGKILL after 201s), not here"
    )
    return t
