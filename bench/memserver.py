"""``ringfence serve`` wrapped for diagnosis, without touching the server's code.

- ``BENCH_TRACEMALLOC_OUT``: tracemalloc on; each SIGUSR1 writes a snapshot to
  ``$BENCH_TRACEMALLOC_OUT.<n>`` (the ``memory`` scenario).
- ``BENCH_KEEP_WS_ERRORS=1``: keep uvicorn's WARNING and ERROR lines from its
  WebSocket protocol module, which Ringfence's log filter drops together with the
  debug lines it means to drop (``--server-errors``).
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import tracemalloc
from types import FrameType


def main() -> None:
    out = os.environ.get("BENCH_TRACEMALLOC_OUT")
    if out:
        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))
        counter = itertools.count(1)

        def dump(_signum: int, _frame: FrameType | None) -> None:
            path = f"{out}.{next(counter)}"
            tracemalloc.take_snapshot().dump(path + ".tmp")
            os.replace(path + ".tmp", path)

        signal.signal(signal.SIGUSR1, dump)
    if os.environ.get("BENCH_KEEP_WS_ERRORS"):
        import ringfence.app

        original = ringfence.app._without_client_addresses

        def keep_errors(record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING or original(record)

        ringfence.app._without_client_addresses = keep_errors
    from ringfence.cli import main as ringfence_main

    sys.argv = ["ringfence", *sys.argv[1:]]
    ringfence_main()


if __name__ == "__main__":
    main()
