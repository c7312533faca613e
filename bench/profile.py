"""Summarise a py-spy raw (collapsed-stack) profile of the server into tables."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from bench.report import Table

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

AREAS = [
    ("sqlite (C, in aiosqlite's thread)", ("sqlite3", "aiosqlite")),
    ("asyncpg", ("asyncpg",)),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("pydantic", ("pydantic",)),
    ("FastAPI / Starlette", ("fastapi", "starlette")),
    ("uvicorn / httptools", ("uvicorn", "httptools")),
    ("websockets", ("websockets",)),
    ("redis", ("redis",)),
    ("json", ("json",)),
    ("ringfence", ("ringfence",)),
    ("asyncio / threading", ("asyncio", "threading", "concurrent", "queue", "selectors")),
]


def _parse(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    file = m.group("file")
    short = "/".join(file.split("site-packages/")[-1].split("/")[-3:]) if file else ""
    return m.group("func"), short


def _area(file: str) -> str:
    for name, keys in AREAS:
        if any(k in file for k in keys):
            return name
    return "other (stdlib, interpreter)"


def summarise(path: Path, top: int = 15) -> list[Table]:
    stacks: list[tuple[list[tuple[str, str]], int, str]] = []
    for line in path.read_text(errors="replace").splitlines():
        head, _, n_text = line.rpartition(" ")
        if not head or not n_text.isdigit():
            continue
        raw = head.split(";")
        thread = next((f for f in raw if f.startswith("thread")), "")
        parsed = [_parse(f) for f in raw if not f.startswith(("process", "thread"))]
        if parsed:
            stacks.append((parsed, int(n_text), thread))
    total = sum(c for _, c, _ in stacks)
    if not total:
        return [Table("Profile", ["-"], [["py-spy recorded no samples"]])]

    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for frames, count, thread in stacks:
        func, file = frames[-1]
        self_time[f"{func} ({file})"] += count
        # The leaf's area, but C code called from SQLAlchemy/aiosqlite counts as theirs.
        leaf_area = _area(file)
        if leaf_area.startswith("other"):
            for _, fl in reversed(frames):
                a = _area(fl)
                if not a.startswith("other") and not a.startswith("asyncio"):
                    leaf_area = a
                    break
        areas[leaf_area] += count
        threads[
            "main (event loop)" if "MainThread" in thread or not thread else "other threads"
        ] += count
        seen: set[str] = set()
        for func, file in frames:
            key = f"{func} ({file})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += count

    def pct(c: int) -> str:
        return f"{100 * c / total:.1f}%"

    t_area = Table("Server CPU by area (py-spy samples, leaf frame)", ["area", "share"])
    for name, c in areas.most_common():
        t_area.add(name, pct(c))
    for name, c in threads.most_common():
        t_area.notes.append(f"{name}: {pct(c)} of samples")
    t_area.notes.append(f"{total} samples in all")

    t_self = Table(f"Top {top} functions by own time", ["function", "own time"])
    for name, c in self_time.most_common(top):
        t_self.add(name, pct(c))

    t_incl = Table(
        f"Top {top} Ringfence functions by inclusive time", ["function", "inclusive time"]
    )
    for name, c in [(n, c) for n, c in inclusive.most_common() if "ringfence/" in n][:top]:
        t_incl.add(name, pct(c))
    return [t_area, t_self, t_incl]
