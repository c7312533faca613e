"""How fast this machine's disk makes a write durable while a step runs.

Every DM is on disk before it is acknowledged (issue 14: SQLite's commit and
PostgreSQL's WAL flush both wait for an fsync), so an fsync that stalls stalls every
send behind it, and near saturation the queue it leaves takes seconds to drain. This
host's disk is shared: a probe beside the bench measured a median fsync of 0.5 ms and,
in the same minute, one of 707 ms. A step's tail can then be the disk rather than the
server, and the report has to be able to tell the two apart, as the CPU probe
(``report.cpu_probe``) does for the processor.

:class:`FsyncProbe` writes 4 KiB to a file of its own and times the ``fsync`` of it,
every ``interval_s``, on a thread of the bench's own process (an fsync releases the
GIL), in the directory it is given: the server's data directory's file system. It adds
a few dozen small writes a second, next to the hundreds of commits it watches.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class FsyncProbe:
    """Times an fsync every ``interval_s`` while in its ``with`` block."""

    def __init__(self, directory: Path, interval_s: float = 0.05) -> None:
        self._path = directory / ".bench-fsync-probe"
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._samples: list[tuple[float, float]] = []  # (monotonic start, ms)
        self._thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)

    def __enter__(self) -> FsyncProbe:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._path.unlink(missing_ok=True)

    def _run(self) -> None:
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        block = b"\0" * 4096
        try:
            while not self._stop.is_set():
                os.pwrite(fd, block, 0)
                start = time.monotonic()
                os.fsync(fd)
                self._samples.append((start, (time.monotonic() - start) * 1000))
                self._stop.wait(self._interval_s)
        finally:
            os.close(fd)

    def summary(self, t0: float, stall_ms: float) -> dict[str, Any]:
        """The median and longest fsync, when the longest began (seconds after the
        monotonic time ``t0``), and how many took ``stall_ms`` or more."""
        return summarise(self._samples, t0, stall_ms)


def summarise(samples: list[tuple[float, float]], t0: float, stall_ms: float) -> dict[str, Any]:
    """:meth:`FsyncProbe.summary` of ``(monotonic start, ms)`` samples."""
    if not samples:
        return {}
    ms = sorted(d for _, d in samples)
    at, longest = max(samples, key=lambda s: s[1])
    return {
        "n": len(ms),
        "p50_ms": ms[len(ms) // 2],
        "max_ms": longest,
        "max_at_s": at - t0,
        "stall_ms": stall_ms,
        "stalls": sum(1 for d in ms if d >= stall_ms),
    }


def describe(disk: dict[str, Any]) -> str:
    """One line for a step's notes."""
    line = (
        f"the disk's fsync (a probe beside the data, {disk['n']} times): median "
        f"{disk['p50_ms']:.1f} ms, longest {disk['max_ms']:.0f} ms in second "
        f"{max(0, int(disk['max_at_s']))}"
    )
    if disk["stalls"]:
        line += (
            f"; {disk['stalls']} took {disk['stall_ms']:.0f} ms or more (a commit waits for one)"
        )
    return line
