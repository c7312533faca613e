"""Relays that fail on purpose, for the fail-fast tests (Python client and browser).

- :func:`closed_udp_port`: an address where no relay answers.
- :func:`own_coturn`: a real coturn for one test alone, which the test may freeze with
  SIGSTOP (media stops, as after a network change or a relay hiccup) and thaw with
  SIGCONT, or start late on an address the server already hands out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from ringfence.turn.coturn_config import CoturnOptions
from ringfence.turn.credentials import generate_secret
from ringfence.turn.supervisor import CoturnSupervisor

__all__ = ["closed_udp_port", "freeze", "own_coturn", "thaw"]


def closed_udp_port() -> int:
    """A UDP port of 127.0.0.1 where nothing listens (a relay that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def freeze(supervisor: CoturnSupervisor) -> int:
    """Stop coturn in its tracks (it answers nothing until thawed); returns its pid."""
    pid = supervisor.pid
    assert pid is not None, "coturn is not running"
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # its supervisor may have replaced it
        os.kill(pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def own_coturn(
    workdir: Path, *, port: int = 0, secret: str | None = None
) -> AsyncIterator[tuple[CoturnSupervisor, str]]:
    """A coturn for this test alone on 127.0.0.1 (so that freezing it harms no other
    test), with its shared secret. Relay ports 45000-45499 keep clear of the session
    coturn's."""
    secret = secret or generate_secret()
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip="127.0.0.1",
            relay_ip="127.0.0.1",
            port=port,
            min_port=45000,
            max_port=45499,
            realm="ringfence-fail-fast",
            secret=secret,
            allow_loopback_peers=True,
        ),
        workdir=workdir,
        production=False,
    )
    await supervisor.start()
    try:
        yield supervisor, secret
    finally:
        pid = supervisor.pid
        if pid is not None:
            thaw(pid)
        await supervisor.stop()
