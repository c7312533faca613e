"""``ringfence serve`` as a real child process, for the integration tests that need one
(a crash by SIGKILL, several nodes, the admin command against a running server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

RINGFENCE = Path(sys.executable).parent / "ringfence"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, step: float = 0.1
) -> None:
    """Wait until ``condition`` holds; the timeout only bounds a broken test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(step)


class ServeProcess:
    """``ringfence serve --port P *args`` in its own process group, its output in
    ``log_path``. :meth:`start` returns once ``/healthz`` answers.

    ``cwd`` is the working directory of the child (default: the test run's own). It
    matters when no ``--data-dir`` is given: the default data dir is relative to it."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        env: dict[str, str],
        args: list[str],
        *,
        cwd: Path | None = None,
        tls: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env
        self.args = args
        self.cwd = cwd
        self.tls = tls  # serves HTTPS (its certificate is not checked here)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/api/v1/events"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(RINGFENCE), "serve", "--port", str(self.port), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=5, verify=False) as client:

            async def healthy() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited ({self.proc.returncode}):\n{self.log()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get("/healthz")).status_code == 200
                return False

            await until(healthy, 60, f"{self.name} to become healthy", step=0.05)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as in a crash or a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
