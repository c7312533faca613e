"""Statistics, result tables (rich on the terminal, Markdown for docs) and machine facts."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table as RichTable

RESULTS = Path(__file__).parent / "results"


def quantiles(
    values: Sequence[float] | np.ndarray[Any, Any],
    total: int | None = None,
    qs: Sequence[float] = (50, 99, 99.9),
) -> dict[float, float]:
    """Percentiles (nearest rank, higher) of ``values`` padded with +inf up to ``total``:
    in an open-loop run, a message never delivered counts as infinitely late."""
    arr = np.sort(np.asarray(values, dtype=np.float64))
    missing = 0 if total is None else max(0, total - arr.size)
    if missing:
        arr = np.concatenate([arr, np.full(missing, np.inf)])
    if arr.size == 0:
        return {q: math.nan for q in qs}
    return {q: float(np.percentile(arr, q, method="higher")) for q in qs}


def ms(seconds: float, digits: int = 1) -> str:
    if math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "lost"
    return f"{seconds * 1000:.{digits}f}"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def rich(self) -> RichTable:
        table = RichTable(title=self.title, title_justify="left", caption_justify="left")
        for i, col in enumerate(self.columns):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in self.rows:
            table.add_row(*row)
        if self.notes:
            table.caption = "\n".join(self.notes)
        return table

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append(
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"
        )
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _probe_work() -> int:
    """A fixed piece of pure-Python work, like the server's (dicts, strings, calls)."""
    seen: dict[int, str] = {}
    for i in range(200_000):
        seen[i & 1023] = str(i)
    return len(seen)


def cpu_probe(repeats: int = 5) -> float:
    """How fast this machine runs Python right now: the median time, in ms, of
    :func:`_probe_work`. Its host may lend it more or less of a CPU from one hour to
    the next (the same probe has measured 35 % apart within minutes), so every
    section records it beside the load average: a run's absolute figures compare
    with another run's only where their probes agree."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _probe_work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "cpu": cpu,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
    }


def wait_for_quiet(
    threshold: float, max_wait_s: float, sleep: Callable[[float], None], note: Callable[[str], None]
) -> str:
    """Wait (bounded) until the 1-minute load average is below ``threshold``; returns
    a sentence for the record either way."""
    start = time.monotonic()
    first = loadavg()
    while float(loadavg().split()[0]) >= threshold:
        waited = time.monotonic() - start
        if waited >= max_wait_s:
            return (
                f"load average was {first} at first; still {loadavg()} after waiting "
                f"{waited:.0f}s (limit {max_wait_s:.0f}s): ran anyway"
            )
        if int(waited) % 60 == 0:
            note(f"waiting for the 1-minute load average to drop below {threshold} ({loadavg()})")
        sleep(5)
    waited = time.monotonic() - start
    return f"load average {loadavg()} after waiting {waited:.0f}s (was {first})"


def _at_start(load: str, probe_ms: float | None) -> str:
    said = f"load average at start: {load}"
    if probe_ms is not None:
        said += f"; CPU probe at start: {probe_ms:.0f} ms (fixed Python work; lower is faster)"
    return said


class Report:
    """Collects every scenario's tables and writes them out at the end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.sections: list[dict[str, Any]] = []
        self.machine = machine()
        self.command = " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])

    def section(
        self,
        name: str,
        load: str,
        tables: list[Table],
        extra: dict[str, Any],
        probe_ms: float | None = None,
    ) -> None:
        """``probe_ms``: :func:`cpu_probe` at the section's start."""
        self.sections.append(
            {
                "name": name,
                "load": load,
                "probe_ms": probe_ms,
                "tables": [asdict(t) for t in tables],
                "extra": extra,
            }
        )
        self.console.print()
        self.console.print(f"[bold]{name}[/]  ({_at_start(load, probe_ms)})")
        for table in tables:
            self.console.print(table.rich())

    def write(self, quiet_note: str | None) -> Path:
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        doc = {
            "machine": self.machine,
            "command": self.command,
            "quiet": quiet_note,
            "sections": self.sections,
        }
        path = RESULTS / f"{stamp}.json"
        path.write_text(json.dumps(doc, indent=1, default=str))
        md = [f"# Benchmark run {stamp}", "", f"Command: `{self.command}`", ""]
        md += [f"- {k}: {v}" for k, v in self.machine.items()]
        if quiet_note:
            md.append(f"- before the run: {quiet_note}")
        for section in self.sections:
            at_start = _at_start(section["load"], section.get("probe_ms"))
            md += ["", f"## {section['name']}", "", at_start[0].upper() + at_start[1:], ""]
            for t in section["tables"]:
                md.append(Table(**t).markdown())
        (RESULTS / f"{stamp}.md").write_text("\n".join(md))
        return path
