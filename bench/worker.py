"""Load-generator processes and the little RPC the orchestrator drives them with.

Each worker is a spawned process running one asyncio loop (uvloop for the socket-heavy
ones). The orchestrator sends ``(request id, command, kwargs)`` over a pipe; the worker
runs each command as a task, so several can be under way at once (receiving DMs while
probing ring latency), and answers ``(request id, ok, result)``. Progress goes to a
shared queue that the orchestrator turns into a progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import multiprocessing as mp
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

Progress = Callable[[str, float], None]


class WorkerState:
    """What a worker's command handlers share: their module's state and progress."""

    def __init__(self, progress_q: Any, name: str) -> None:
        self._q = progress_q
        self.name = name
        self.data: dict[str, Any] = {}
        self._pending: dict[str, float] = {}
        self._last_flush = 0.0

    def progress(self, key: str, advance: float = 1.0) -> None:
        """Advance the bar ``key``; batched to a few updates a second."""
        self._pending[key] = self._pending.get(key, 0.0) + advance
        now = time.monotonic()
        if now - self._last_flush > 0.2:
            self.flush()

    def flush(self) -> None:
        for key, value in self._pending.items():
            self._q.put(("advance", key, value))
        self._pending.clear()
        self._last_flush = time.monotonic()


def _main(conn: Connection, progress_q: Any, module: str, name: str, use_uvloop: bool) -> None:
    from bench.procs import raise_nofile

    raise_nofile()
    handlers: dict[str, Callable[..., Awaitable[Any]]] = importlib.import_module(module).HANDLERS
    state = WorkerState(progress_q, name)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        tasks: set[asyncio.Task[None]] = set()

        async def run(rid: int, cmd: str, kwargs: dict[str, Any]) -> None:
            try:
                result = await handlers[cmd](state, **kwargs)
                reply = (rid, True, result)
            except BaseException as exc:  # report, never die silently
                reply = (rid, False, "".join(traceback.format_exception(exc)))
            state.flush()
            conn.send(reply)

        def dispatch(msg: Any) -> None:
            if msg is None:
                if not done.done():
                    done.set_result(None)
                return
            rid, cmd, kwargs = msg
            task = loop.create_task(run(rid, cmd, kwargs))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def read_commands() -> None:
            # A thread of its own: the event loop must not make the pipe non-blocking.
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    msg = None
                loop.call_soon_threadsafe(dispatch, msg)
                if msg is None:
                    return

        threading.Thread(target=read_commands, name="commands", daemon=True).start()
        await done
        for task in tasks:
            task.cancel()
        if "shutdown" in handlers:
            await asyncio.wait_for(handlers["shutdown"](state), 20)

    if use_uvloop:
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())


class WorkerFailed(RuntimeError):
    pass


class Worker:
    """The orchestrator's handle on one load-generator process."""

    _ids = itertools.count(1)

    def __init__(self, name: str, module: str, progress_q: Any, *, use_uvloop: bool = True) -> None:
        ctx = mp.get_context("spawn")
        self.name = name
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_main, args=(child, progress_q, module, name, use_uvloop), name=name, daemon=True
        )
        self.proc.start()
        child.close()
        self._results: dict[int, tuple[bool, Any]] = {}

    def submit(self, cmd: str, **kwargs: Any) -> int:
        rid = next(self._ids)
        self._conn.send((rid, cmd, kwargs))
        return rid

    def poll(self) -> None:
        try:
            while self._conn.poll():
                rid, ok, result = self._conn.recv()
                self._results[rid] = (ok, result)
        except (EOFError, OSError) as exc:
            self.proc.join(5)
            raise WorkerFailed(
                f"worker {self.name} is gone ({type(exc).__name__}; exit code {self.proc.exitcode})"
            ) from exc
        if not self.proc.is_alive() and not self._conn.poll():
            raise WorkerFailed(f"worker {self.name} died (exit code {self.proc.exitcode})")

    def take(self, rid: int) -> tuple[bool, Any] | None:
        return self._results.pop(rid, None)

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
            self.proc.join(25)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
