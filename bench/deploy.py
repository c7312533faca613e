"""A deployment under test: seeded users, one or two servers, and the load generators.

User indexes are laid out as: DM senders, DM recipients, ring callers, ring callees,
then idle users. With two nodes, senders and callers use node 0 (HTTP and WebSocket),
recipients and callees node 1, and idle users alternate, so every DM and every ring
crosses from one node to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.disk import FsyncProbe
from bench.procs import Server, cpu_seconds, machine_cpu, rss_kib, thread_cpu, thread_split
from bench.report import quantiles
from bench.runner import Runner
from bench.seed import Population, seed
from bench.worker import Worker


@dataclass(frozen=True)
class Layout:
    n: int
    pairs: list[tuple[int, int]]
    ring: list[tuple[int, int]]
    split: bool = False  # two nodes: half the DM pairs send from node 1 to node 0

    @classmethod
    def build(cls, n: int, n_pairs: int, n_ring: int, *, split: bool = False) -> Layout:
        if n < 2 * n_pairs + 2 * n_ring:
            raise ValueError(
                f"{n} users cannot hold {n_pairs} DM pairs and {n_ring} ring pairs "
                f"(need {2 * n_pairs + 2 * n_ring})"
            )
        p, r = n_pairs, n_ring
        pairs = [(i, p + i) for i in range(p)]
        ring = [(2 * p + i, 2 * p + r + i) for i in range(r)]
        return cls(n=n, pairs=pairs, ring=ring, split=split)

    def side(self, i: int) -> int:
        """0 for senders and callers, 1 for recipients and callees, else alternating.
        With ``split``, odd DM pairs go the other way (sender on 1, recipient on 0)."""
        p, r = len(self.pairs), len(self.ring)
        if self.split and i < 2 * p:
            return i % 2 if i < p else 1 - (i - p) % 2
        if i < p or 2 * p <= i < 2 * p + r:
            return 0
        if i < 2 * p + 2 * r:
            return 1
        return i % 2


@dataclass
class Step:
    """One open-loop DM step's raw results."""

    label: str
    rate: float
    duration: float
    attempted: int
    ok: int
    statuses: dict[int, int]
    dropped: int
    received: int
    lats: np.ndarray
    resp: np.ndarray
    ring: dict[str, Any] | None
    cpu: dict[str, float]
    rss_kib: dict[str, int]
    errors: list[str]
    ws_errors: int
    disconnects: int
    wall: float
    profile: Path | None = None
    threads: dict[str, float] = field(default_factory=dict)
    # The load generator's longest garbage-collection pause during the step, ms.
    client_gc_ms: float = 0.0
    # Where in the step the DMs over the latency target were sent (see late_spread).
    late: dict[str, Any] = field(default_factory=dict)
    # The load generator's longest event-loop stall (ms) and when, in s into the step.
    client_stall_ms: float = 0.0
    client_stall_at: float = 0.0
    # The disk's fsync during the step (bench.disk.summarise), if it was probed.
    disk: dict[str, Any] = field(default_factory=dict)
    # The whole machine's busy CPU during the step, in cores (server, load generator
    # and database together): near nproc, the server was short of CPU, not of work.
    machine_cores: float = 0.0

    def q(self, which: str = "lats") -> dict[float, float]:
        return quantiles(getattr(self, which), self.attempted)


@dataclass
class Deployment:
    runner: Runner
    layout: Layout
    pop: Population
    servers: list[Server]
    ws_workers: list[Worker] = field(default_factory=list)
    sender: Worker | None = None
    # The file system of the servers' data, where each step times the disk's fsync.
    disk_dir: Path | None = None
    _seq: int = 0

    # --- set-up -------------------------------------------------------------------

    @staticmethod
    def seed(url: str, layout: Layout, extra_users: int = 0) -> Population:
        return asyncio.run(
            seed(url, layout.n + extra_users, pairs=layout.pairs, call_pairs=layout.ring)
        )

    def node(self, i: int) -> Server:
        return self.servers[0] if len(self.servers) == 1 else self.servers[self.layout.side(i)]

    def worker_of(self, i: int) -> int:
        """Ring pairs must share a worker (the prober needs both sockets)."""
        k = len(self.ws_workers)
        p = len(self.layout.pairs)
        r = len(self.layout.ring)
        if 2 * p <= i < 2 * p + 2 * r:
            return ((i - 2 * p) % r) % k
        return i % k

    def start_workers(self, n_ws: int) -> None:
        for k in range(n_ws):
            self.ws_workers.append(self.runner.worker(f"ws{k}", "bench.wsload"))
        self.sender = self.runner.worker("sender", "bench.sender")

    def connect(self, indexes: list[int], rate: float, bar: str, label: str) -> dict[str, Any]:
        """Connect the given users' sockets, split over the ws workers, at ``rate`` in all."""
        receivers = {r for _, r in self.layout.pairs}
        per_worker: list[list[tuple[int, str, str, bool]]] = [[] for _ in self.ws_workers]
        for i in indexes:
            per_worker[self.worker_of(i)].append(
                (i, self.node(i).ws_url, self.pop.tokens[i], i in receivers)
            )
        self.runner.bar(bar, label, total=len(indexes))
        k = len(self.ws_workers)
        pending = [
            (w, w.submit("connect", users=users, rate=rate / k, bar=bar))
            for w, users in zip(self.ws_workers, per_worker, strict=True)
            if users
        ]
        results = self.runner.wait(*pending, timeout=len(indexes) / rate + 120)
        self.runner.finish(bar)
        merged: dict[str, Any] = {"from_intended": [], "from_start": [], "failures": [], "open": 0}
        for res in results:
            merged["from_intended"] += list(res["from_intended"])
            merged["from_start"] += list(res["from_start"])
            merged["failures"] += res["failures"]
            merged["open"] += res["open"]
        merged["elapsed"] = max(res["elapsed"] for res in results)
        return merged

    # --- one open-loop step ----------------------------------------------------------

    def dm_step(
        self,
        label: str,
        *,
        rate: float,
        duration: float,
        concurrency: int,
        max_lag: float,
        drain: float,
        ring_rate: float = 0.0,
        ring_sdp: str = "",
        profile_to: Path | None = None,
        via: str = "http",
    ) -> Step:
        assert self.sender is not None
        r = self.runner
        for w in self.ws_workers:
            r.call(w, "arm", timeout=30)
        n = max(1, int(rate * duration)) if rate > 0 else 0
        first_seq = self._seq
        self._seq += n + 1
        run_id = f"r{int(time.time())}"  # txn_id is "<run>-<seq>": [A-Za-z0-9._~-]
        pairs = [
            (self.pop.tokens[s], self.pop.usernames[t], self.node(s).port)
            for s, t in self.layout.pairs
        ]
        cpu0 = {s.name: cpu_seconds(s.pid) for s in self.servers}
        machine0 = machine_cpu()
        th0 = thread_cpu(self.servers[0].pid)
        t0 = time.monotonic()
        pending: list[tuple[Worker, int]] = []
        if n and via == "ws":
            # Each ws worker sends the DMs of the senders whose sockets it holds.
            r.bar(f"{label}-dm", f"{label}: DMs at {rate:g}/s (message.send)", total=n)
            ws_pairs = [(s, self.pop.usernames[t]) for s, t in self.layout.pairs]
            for w in self.ws_workers:
                pending.append(
                    (
                        w,
                        w.submit(
                            "send",
                            pairs=ws_pairs,
                            rate=rate,
                            duration_s=duration,
                            max_lag_s=max_lag,
                            run=run_id,
                            first_seq=first_seq,
                            bar=f"{label}-dm",
                        ),
                    )
                )
        elif n:
            r.bar(f"{label}-dm", f"{label}: DMs at {rate:g}/s", total=n)
            pending.append(
                (
                    self.sender,
                    self.sender.submit(
                        "send",
                        host="127.0.0.1",
                        pairs=pairs,
                        rate=rate,
                        duration_s=duration,
                        concurrency=concurrency,
                        max_lag_s=max_lag,
                        run=run_id,
                        first_seq=first_seq,
                        bar=f"{label}-dm",
                    ),
                )
            )
        ring_w: list[tuple[Worker, int]] = []
        if ring_rate > 0 and self.layout.ring:
            r.bar(f"{label}-ring", f"{label}: ring probes at {ring_rate:g}/s", total=None)
            by_worker: dict[int, list[tuple[int, int, str, str]]] = {}
            for caller, callee in self.layout.ring:
                by_worker.setdefault(self.worker_of(caller), []).append(
                    (caller, callee, self.pop.usernames[callee], self.pop.tokens[caller])
                )
            caller_node = self.node(self.layout.ring[0][0])
            for k, ring_pairs in by_worker.items():
                w = self.ws_workers[k]
                ring_w.append(
                    (
                        w,
                        w.submit(
                            "ring",
                            host="127.0.0.1",
                            port=caller_node.port,
                            pairs=ring_pairs,
                            rate=ring_rate / len(by_worker),
                            duration_s=duration,
                            sdp=ring_sdp,
                            bar=f"{label}-ring",
                        ),
                    )
                )
        spy: subprocess.Popen[bytes] | None = None
        if profile_to is not None:
            spy = start_py_spy(self.servers[0].pid, duration, profile_to)
        with contextlib.ExitStack() as stack:
            probe = stack.enter_context(FsyncProbe(self.disk_dir)) if self.disk_dir else None
            results = r.wait(*pending, *ring_w, timeout=duration + max_lag + 120)
        wall = time.monotonic() - t0
        cpu = {s.name: cpu_seconds(s.pid) - cpu0[s.name] for s in self.servers}
        machine1 = machine_cpu()
        threads = thread_split(self.servers[0].pid, th0, thread_cpu(self.servers[0].pid))
        send = _merged(results[: len(pending)]) if n else None
        ring_results = results[len(pending) :]
        ok = len(send["ok_seqs"]) if send else 0
        # How many DMs each worker should see: a DM's recipient is fixed by its seq.
        expect = [0] * len(self.ws_workers)
        if send:
            npairs = len(self.layout.pairs)
            for seq in send["ok_seqs"]:
                expect[self.worker_of(self.layout.pairs[seq % npairs][1])] += 1
        collected = r.wait(
            *[
                (w, w.submit("collect", expect=e, timeout_s=drain))
                for w, e in zip(self.ws_workers, expect, strict=True)
            ],
            timeout=drain + 60,
        )
        r.finish(f"{label}-dm")
        r.finish(f"{label}-ring")
        if spy is not None:
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)
        lats = np.concatenate([np.asarray(c["lats"], dtype=np.float64) for c in collected])
        seqs = np.concatenate([np.asarray(c["seqs"], dtype=np.int64) for c in collected])
        # Only this step's DMs: one of an earlier step that was queued past that step's
        # drain arrives during this one, and is neither this step's nor on its clock.
        ours = (seqs >= first_seq) & (seqs < first_seq + n)
        lats, seqs = lats[ours], seqs[ours]
        stall = max(collected, key=lambda c: c["stall_ms"])
        ring: dict[str, Any] | None = None
        if ring_results:
            ring = {"rows": [], "failures": []}
            for res in ring_results:
                ring["rows"] += res["rows"]
                ring["failures"] += res["failures"]
        return Step(
            label=label,
            rate=rate,
            duration=duration,
            attempted=n,
            ok=ok,
            statuses=send["statuses"] if send else {},
            dropped=send["dropped"] if send else 0,
            received=int(lats.size),
            lats=lats,
            resp=np.asarray(send["resp"] if send else [], dtype=np.float64),
            ring=ring,
            cpu={k: v / wall for k, v in cpu.items()},
            rss_kib={s.name: rss_kib(s.pid) for s in self.servers},
            errors=(send["errors"] if send else [])
            + [e for c in collected for e in c["error_samples"]],
            ws_errors=sum(c["errors"] for c in collected),
            disconnects=sum(c["disconnects"] for c in collected),
            wall=wall,
            profile=profile_to,
            threads={k: v / wall for k, v in threads.items()},
            client_gc_ms=max(c["gc_ms"] for c in collected),
            client_stall_ms=stall["stall_ms"],
            client_stall_at=stall["stall_at"] - t0,
            late=late_spread((seqs - first_seq) / rate if rate else seqs * 0.0, lats),
            disk=probe.summary(t0, LATE_S * 1000) if probe is not None else {},
            machine_cores=(machine1[0] - machine0[0]) / wall,
        )

    def close(self) -> None:
        for w in self.ws_workers:
            with contextlib.suppress(Exception):
                self.runner.call(w, "close_all", timeout=60)
        for w in [*self.ws_workers, *([self.sender] if self.sender else [])]:
            self.runner.stop_worker(w)
        self.ws_workers.clear()
        self.sender = None


# The latency target the DM steps are judged by (issue 14), seconds.
LATE_S = 0.050


def late_spread(sent_at: np.ndarray, lats: np.ndarray) -> dict[str, Any]:
    """How the DMs later than the target spread over the step: whether a tail comes
    from a few stalls (all in one or two seconds) or from a loaded server (every
    second has some). ``sent_at`` is each DM's scheduled time from the step's start."""
    late = lats > LATE_S
    if not late.any():
        return {}
    seconds = np.floor(sent_at).astype(np.int64)
    per_second = np.bincount(seconds[late])
    worst = int(np.argmax(per_second))
    in_worst = seconds == worst
    return {
        "late": int(late.sum()),
        "seconds": int(np.count_nonzero(per_second)),
        "of": int(seconds.max()) + 1 if seconds.size else 0,
        "worst_second": worst,
        "worst_count": int(per_second[worst]),
        "worst_max_ms": float(lats[in_worst].max() * 1000),
    }


def _merged(sends: list[dict[str, Any]]) -> dict[str, Any]:
    """One sender result from the results of several (one per ws worker)."""
    if len(sends) == 1:
        return sends[0]
    statuses: dict[int, int] = {}
    for one in sends:
        for status, count in one["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "attempted": sum(one["attempted"] for one in sends),
        "ok_seqs": [seq for one in sends for seq in one["ok_seqs"]],
        "resp": [t for one in sends for t in one["resp"]],
        "statuses": statuses,
        "dropped": sum(one["dropped"] for one in sends),
        "errors": [e for one in sends for e in one["errors"]][:5],
    }


def start_py_spy(pid: int, duration: float, out: Path) -> subprocess.Popen[bytes]:
    import sys

    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise RuntimeError("py-spy is not installed in the venv (.venv/bin/pip install py-spy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(spy), "record", "--pid", str(pid), "--duration", str(int(duration)),
            "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking", "--gil",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
