"""Worker: the open-loop DM sender.

Message ``i`` is due at ``start + i / rate``, whatever happened to earlier ones: a
producer puts each on a queue at its time, and a pool of keep-alive HTTP/1.1
connections sends them as fast as they can. The intended time travels in the text, so
a message that waited in our queue because the server was slow is charged for the
wait (coordinated omission is accounted for). A message still unsent ``max_lag_s``
after its time is dropped and counted, which keeps an overloaded run bounded.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from typing import Any

from bench.http1 import HttpClient, HttpError
from bench.worker import WorkerState
from bench.wsload import _paced


async def send(
    ws: WorkerState,
    *,
    host: str,
    pairs: list[tuple[str, str, int]],
    rate: float,
    duration_s: float,
    concurrency: int,
    max_lag_s: float,
    run: str,
    first_seq: int = 0,
    bar: str | None = None,
) -> dict[str, Any]:
    """Send ``rate * duration_s`` DMs round-robin over ``pairs`` of (sender token,
    recipient username, port of the sender's node). Returns per-message response
    latencies and status counts."""
    n = max(1, int(rate * duration_s))
    q: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    statuses: Counter[int] = Counter()
    ok_seqs = array("q")
    resp = array("d")
    dropped = 0
    errors: list[str] = []

    async def consume() -> None:
        nonlocal dropped
        clients: dict[int, HttpClient] = {}
        try:
            while (item := await q.get()) is not None:
                seq, intended = item
                if time.monotonic() - intended > max_lag_s:
                    dropped += 1
                    if bar:
                        ws.progress(bar, 1)
                    continue
                token, to, port = pairs[seq % len(pairs)]
                http = clients.get(port)
                if http is None:
                    http = clients[port] = HttpClient(host, port)
                body = {"text": f"b {seq} {intended:.6f}", "txn_id": f"{run}-{seq}"}
                try:
                    status, data = await http.request(
                        "POST", f"/api/v1/conversations/{to}/messages", body, token
                    )
                except (HttpError, OSError) as exc:
                    statuses[0] += 1
                    if len(errors) < 5:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                statuses[status] += 1
                if status == 201:
                    ok_seqs.append(seq)
                    resp.append(time.monotonic() - intended)
                elif len(errors) < 5:
                    errors.append(f"{status}: {data[:200]!r}")
                if bar:
                    ws.progress(bar, 1)
        finally:
            for http in clients.values():
                http.close()

    consumers = [asyncio.get_running_loop().create_task(consume()) for _ in range(concurrency)]
    t0 = time.monotonic()
    await _paced(n, rate, lambda i, t: q.put_nowait((first_seq + i, t)))
    scheduled = time.monotonic() - t0
    for _ in consumers:
        q.put_nowait(None)
    await asyncio.gather(*consumers)
    return {
        "attempted": n,
        "ok_seqs": ok_seqs,
        "resp": resp,
        "statuses": dict(statuses),
        "dropped": dropped,
        "errors": errors,
        "scheduled_s": scheduled,
        "elapsed_s": time.monotonic() - t0,
    }


HANDLERS = {"send": send}
