"""The orchestrator's side: workers, the progress bar, and waiting on both."""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bench.procs import REGISTRY
from bench.worker import Worker, WorkerFailed


class StepFailed(RuntimeError):
    pass


class Runner:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._ctx = mp.get_context("spawn")
        self._q = self._ctx.Queue()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._bars: dict[str, TaskID] = {}
        self._workers: list[Worker] = []

    def __enter__(self) -> Runner:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    # --- progress -----------------------------------------------------------------

    def bar(self, key: str, description: str, total: float | None) -> None:
        if key in self._bars:
            self.progress.remove_task(self._bars.pop(key))
        self._bars[key] = self.progress.add_task(description, total=total)

    def advance(self, key: str, n: float = 1) -> None:
        if key in self._bars:
            self.progress.advance(self._bars[key], n)

    def finish(self, key: str) -> None:
        task = self._bars.pop(key, None)
        if task is not None:
            self.progress.remove_task(task)

    def note(self, text: str) -> None:
        self.progress.console.print(text)

    def _pump(self) -> None:
        while True:
            try:
                kind, key, value = self._q.get_nowait()
            except queue.Empty:
                return
            if kind == "advance":
                self.advance(key, value)

    # --- workers ------------------------------------------------------------------

    def worker(self, name: str, module: str, *, use_uvloop: bool = True) -> Worker:
        w = Worker(name, module, self._q, use_uvloop=use_uvloop)
        self._workers.append(w)

        def stop() -> None:
            w.stop()
            if w in self._workers:
                self._workers.remove(w)

        w.stop_registered = REGISTRY.add(f"worker {name}", stop)  # type: ignore[attr-defined]
        return w

    def stop_worker(self, w: Worker) -> None:
        w.stop_registered()  # type: ignore[attr-defined]

    def wait(self, *pending: tuple[Worker, int], timeout: float) -> list[Any]:
        """Wait for the given requests (pumping progress); raise StepFailed on error."""
        results: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while True:
            self._pump()
            for w, rid in pending:
                if rid in results:
                    continue
                try:
                    w.poll()
                except WorkerFailed as exc:
                    raise StepFailed(str(exc)) from exc
                got = w.take(rid)
                if got is not None:
                    ok, value = got
                    if not ok:
                        raise StepFailed(f"{w.name} failed:\n{value}")
                    results[rid] = value
            if len(results) == len(pending):
                return [results[rid] for _, rid in pending]
            if time.monotonic() > deadline:
                raise StepFailed(f"timed out after {timeout:.0f}s waiting for workers")
            time.sleep(0.05)

    def call(self, w: Worker, cmd: str, *, timeout: float, **kwargs: Any) -> Any:
        return self.wait((w, w.submit(cmd, **kwargs)), timeout=timeout)[0]

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
