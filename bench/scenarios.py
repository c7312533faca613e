"""The benchmark scenarios. Each starts, and always stops, the processes it needs."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import procs
from bench.deploy import LATE_S, Deployment, Layout, Step, start_py_spy
from bench.disk import describe
from bench.profile import summarise
from bench.report import RESULTS, Table, loadavg, ms, quantiles
from bench.runner import Runner, StepFailed


@dataclass
class Options:
    users: int = 5000
    connect_rates: list[float] = field(default_factory=lambda: [100.0, 500.0])
    setup_rate: float = 300.0
    pairs: int = 500
    ring_pairs: int = 200
    rates: list[float] = field(default_factory=lambda: [200.0, 1000.0, 3000.0])
    duration: float = 20.0
    concurrency: int = 32
    via: str = "ws"  # DMs over the senders' sockets (message.send), or "http" (POST)
    max_lag: float = 10.0
    drain: float = 10.0
    ring_rate: float = 5.0
    ws_workers: int = 1
    call_repeats: int = 10
    profile: bool = True
    profile_rate: float = 1000.0
    node_rates: list[float] = field(default_factory=lambda: [200.0, 1000.0])
    pg_fsync: bool = True

    @classmethod
    def quick(cls) -> Options:
        return cls(
            users=400,
            connect_rates=[100.0, 400.0],
            setup_rate=400,
            pairs=100,
            ring_pairs=30,
            rates=[100.0, 300.0],
            duration=4.0,
            concurrency=16,
            max_lag=5.0,
            drain=5.0,
            ring_rate=1.0,
            call_repeats=2,
            profile_rate=200.0,
            node_rates=[200.0],
        )


Section = tuple[list[Table], dict[str, Any]]


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A temporary directory; the servers' logs in it are kept in bench/results/logs."""
    path = Path(tempfile.mkdtemp(prefix=f"ringfence-bench-{name}."))
    try:
        yield path
    finally:
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for log in path.glob("*.log"):
            with contextlib.suppress(OSError):
                shutil.copy(log, logs / f"{stamp}-{name}-{log.name}")
        shutil.rmtree(path, ignore_errors=True)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path / 'bench.db'}"


def ring_offer_sdp() -> str:
    """A real aiortc audio offer (host candidates only: the server strips them for a
    relayed caller, as it would a browser's)."""
    import aioice.ice
    from aiortc import RTCPeerConnection

    # Gather on loopback only, as the call benchmark does (nothing is sent anyway).
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

    async def make() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return asyncio.run(make())


# --- connect storm ---------------------------------------------------------------------


def connect_storm(r: Runner, o: Options) -> Section:
    """N sockets connect and authenticate at each rate in turn (all closed in between);
    server memory is measured around the first storm."""
    warm = 20
    layout = Layout.build(o.users, 0, 0)
    storms: list[dict[str, Any]] = []
    rss0 = rss1 = rss2 = ok0 = 0
    out = RESULTS / "none"
    with workdir("connect") as wd:
        url = sqlite_url(wd)
        r.note(f"seeding {o.users + warm} users")
        pop = Deployment.seed(url, layout, extra_users=warm)
        server = procs.start_server("connect", workdir=wd, database_url=url)
        dep = Deployment(r, layout, pop, [server])
        try:
            dep.start_workers(o.ws_workers)
            dep.connect(list(range(o.users, o.users + warm)), 50, "warm", "warm-up sockets")
            r.sleep(2)
            rss0 = procs.rss_kib(server.pid)
            for k, rate in enumerate(o.connect_rates):
                if k:
                    for w in dep.ws_workers:
                        r.call(w, "close_all", timeout=120)
                    dep.connect(list(range(o.users, o.users + warm)), 50, "warm", "warm-up again")
                    r.sleep(5)
                cpu0 = procs.cpu_seconds(server.pid)
                gen0 = sum(procs.cpu_seconds(w.proc.pid or 0) for w in dep.ws_workers)
                th0 = procs.thread_cpu(server.pid)
                spy = None
                if o.profile and k == 0:
                    out = RESULTS / f"profile-connect-{time.strftime('%Y%m%d-%H%M%S')}.txt"
                    spy = start_py_spy(server.pid, o.users / rate, out)
                res = dep.connect(
                    list(range(o.users)), rate, "storm", f"connect storm: {o.users} at {rate:g}/s"
                )
                res["cpu"] = procs.cpu_seconds(server.pid) - cpu0
                res["gen"] = sum(procs.cpu_seconds(w.proc.pid or 0) for w in dep.ws_workers) - gen0
                res["threads"] = procs.thread_split(server.pid, th0, procs.thread_cpu(server.pid))
                res["rate"] = rate
                if spy is not None:
                    spy.wait(120)
                storms.append(res)
                if k == 0:
                    r.sleep(3)
                    rss1 = procs.rss_kib(server.pid)
                    r.sleep(10)
                    rss2 = procs.rss_kib(server.pid)
                    ok0 = len(res["from_intended"])
        finally:
            dep.close()
            server.stop()
    t = Table(
        "Connect storm (SQLite, one node)",
        ["clients", "rate /s", "ready", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms",
         "took s", "server CPU ms/conn"],
    )  # fmt: skip
    for res in storms:
        ok = len(res["from_intended"])
        q = quantiles(res["from_intended"], o.users, (50, 90, 99, 100))
        t.add(
            o.users, f"{res['rate']:g}", ok, len(res["failures"]), ms(q[50]), ms(q[90]),
            ms(q[99]), ms(q[100]), f"{res['elapsed']:.1f}", f"{res['cpu'] * 1000 / max(ok, 1):.2f}",
        )  # fmt: skip
        qs = quantiles(res["from_start"], None, (50, 99))
        t.notes.append(
            f"{res['rate']:g}/s: from the actual start p50 {ms(qs[50])} ms, p99 {ms(qs[99])} ms; "
            f"server CPU {res['threads']['main'] * 1000 / max(ok, 1):.2f} ms/conn on the event "
            f"loop thread, {res['threads']['other'] * 1000 / max(ok, 1):.2f} in other threads; "
            f"load generator {res['gen'] * 1000 / max(ok, 1):.2f} ms/conn"
        )
        if res["failures"]:
            t.notes.append(
                f"{res['rate']:g}/s failures (first 3 kinds): "
                + "; ".join(sorted(set(res["failures"]))[:3])
            )
    t.notes.insert(
        0,
        "latency: from the connection's scheduled start (open loop) to the server's `ready` "
        "frame (TCP connect, WebSocket upgrade, auth frame, token check, subscription)",
    )
    per_conn = (rss1 - rss0) / max(ok0, 1)
    per_conn_idle = (rss2 - rss0) / max(ok0, 1)
    m = Table(
        "Server memory (RSS from /proc/<pid>/status)",
        ["baseline MiB", "with clients MiB", "after 10 s idle MiB", "KiB per connection",
         "KiB per conn (idle)"],
    )  # fmt: skip
    m.add(
        f"{rss0 / 1024:.1f}", f"{rss1 / 1024:.1f}", f"{rss2 / 1024:.1f}", f"{per_conn:.1f}",
        f"{per_conn_idle:.1f}",
    )  # fmt: skip
    m.notes.append(
        f"baseline: after start-up and {warm} warm-up sockets; "
        f"then {ok0} sockets of the first storm"
    )
    tables = [t, m]
    if o.profile and out.exists():
        prof = summarise(out)
        prof[0].notes.append(f"profiled: the {o.connect_rates[0]:g}/s storm; raw profile {out}")
        tables += prof
    return tables, {
        "rss_kib": [rss0, rss1, rss2],
        "per_conn_kib": per_conn,
        "per_conn_idle_kib": per_conn_idle,
        "storms": [
            {"rate": x["rate"], "q": quantiles(x["from_intended"], o.users, (50, 99)),
             "failures": len(x["failures"])}
            for x in storms
        ],
    }  # fmt: skip


# --- DM delivery (+ ring latency, + profile) -----------------------------------------------


def _ring_pairs(o: Options) -> int:
    # The server allows 3 calls a minute per pair; reuse each pair at most twice a minute.
    return max(o.ring_pairs, math.ceil(o.ring_rate * 30)) if o.ring_rate > 0 else 0


def step_row(step: Step) -> list[str]:
    q = quantiles(step.lats, step.attempted, (50, 99, 99.9, 100))
    qr = quantiles(step.resp, step.attempted, (50, 99))
    lost = step.attempted - step.received
    cpu = " + ".join(f"{v * 100:.0f}%" for v in step.cpu.values())
    return [
        step.label, f"{step.rate:g}", str(step.attempted), str(step.received),
        f"{step.received / step.duration:.0f}", str(lost), ms(q[50]), ms(q[99]), ms(q[99.9]),
        ms(q[100]), ms(qr[50]), ms(qr[99]), cpu,
    ]  # fmt: skip


DM_COLUMNS = [
    "step", "rate /s", "sent", "delivered", "delivered /s", "late/lost", "p50 ms", "p99 ms",
    "p99.9 ms", "max ms", "HTTP p50 ms", "HTTP p99 ms", "server CPU",
]  # fmt: skip
RING_COLUMNS = [
    "during", "probes", "failed", "p50 ms", "p99 ms", "max ms", "POST p50 ms",
    "offer→incoming p50 ms", "offer→incoming p99 ms",
]  # fmt: skip


def ring_row(label: str, ring: dict[str, Any]) -> list[str]:
    rows = ring["rows"]
    n = len(rows) + len(ring["failures"])
    total = quantiles([x["total"] for x in rows], n, (50, 99, 100))
    post = quantiles([x["post"] for x in rows], None, (50,))
    o2i = quantiles([x["offer_to_incoming"] for x in rows], n, (50, 99))
    return [
        label, str(n), str(len(ring["failures"])), ms(total[50]), ms(total[99]), ms(total[100]),
        ms(post[50]), ms(o2i[50]), ms(o2i[99]),
    ]  # fmt: skip


def _step_notes(step: Step, notes: list[str], max_lag: float) -> None:
    bad = {k: v for k, v in step.statuses.items() if k != 201}
    if bad or step.dropped:
        notes.append(
            f"{step.label}: HTTP statuses {bad or '-'}; {step.dropped} not sent "
            f"(over {max_lag:g} s behind schedule)"
        )
    if step.disconnects or step.ws_errors:
        notes.append(
            f"{step.label}: {step.disconnects} sockets closed by the server, "
            f"{step.ws_errors} error frames"
        )
    if step.errors:
        notes.append(f"{step.label}: first errors: {'; '.join(step.errors[:2])}")
    if step.client_gc_ms >= 10:
        notes.append(
            f"{step.label}: the load generator's longest GC pause: {step.client_gc_ms:.0f} ms "
            "(it delays the latencies it measures)"
        )
    if step.client_stall_ms >= 20:
        notes.append(
            f"{step.label}: the load generator's longest event-loop stall: "
            f"{step.client_stall_ms:.0f} ms, in second {int(step.client_stall_at)} "
            "(it delays the sends and receipts it times)"
        )
    if step.late:
        lt = step.late
        notes.append(
            f"{step.label}: {lt['late']} DMs over {LATE_S * 1000:.0f} ms, sent in "
            f"{lt['seconds']} of the step's {lt['of']} seconds; most in second "
            f"{lt['worst_second']} ({lt['worst_count']}, up to {lt['worst_max_ms']:.0f} ms)"
        )
    if step.disk:
        notes.append(f"{step.label}: {describe(step.disk)}")
    if step.machine_cores:
        loop = step.threads.get("main")
        notes.append(
            f"{step.label}: the whole machine was busy {step.machine_cores:.2f} of its "
            f"{os.cpu_count()} cores (server, load generator and database together)"
            + (f"; the server's event loop {loop * 100:.0f}% of a core" if loop else "")
        )
    if step.ring and step.ring["failures"]:
        notes.append(
            f"{step.label}: ring failures: {'; '.join(sorted(set(step.ring['failures']))[:2])}"
        )


def _how_sent(o: Options) -> str:
    if o.via == "ws":
        return "sent as message.send frames on the senders' own sockets (--via ws)"
    return f"sent as POSTs over {o.concurrency} keep-alive HTTP/1.1 connections (--via http)"


def dm_delivery(r: Runner, o: Options, db: str, pg: procs.Postgres | None = None) -> Section:
    """Open-loop DMs at each rate over ``o.users`` connected sockets, ring probes
    alongside, and a profiled step."""
    layout = Layout.build(o.users, o.pairs, _ring_pairs(o))
    sdp = ring_offer_sdp()
    steps: list[Step] = []
    setup_failures: list[str] = []
    own_pg = False
    with workdir(f"dm-{db}") as wd:
        if db == "postgresql":
            if pg is None:
                pg = procs.start_postgres(fsync=o.pg_fsync)
                own_pg = True
            url = procs.create_database(pg, "bench_dm")
        else:
            url = sqlite_url(wd)
        try:
            r.note(f"[{db}] seeding {o.users} users")
            pop = Deployment.seed(url, layout)
            server = procs.start_server(f"dm-{db}", workdir=wd, database_url=url)
            dep = Deployment(r, layout, pop, [server], disk_dir=wd)
            try:
                dep.start_workers(o.ws_workers)
                conn = dep.connect(
                    list(range(o.users)),
                    o.setup_rate,
                    "setup",
                    f"[{db}] connecting {o.users} sockets",
                )
                setup_failures = conn["failures"]
                if len(setup_failures) > o.users // 100:
                    raise StepFailed(f"{len(setup_failures)} sockets failed: {setup_failures[:3]}")
                rss_connected = procs.rss_kib(server.pid)
                common: dict[str, Any] = {
                    "concurrency": o.concurrency, "max_lag": o.max_lag, "drain": o.drain,
                    "ring_sdp": sdp, "via": o.via,
                }  # fmt: skip
                idle = dep.dm_step(
                    "idle", rate=0, duration=min(10.0, o.duration), ring_rate=o.ring_rate, **common
                )
                dep.dm_step("warm-up", rate=100, duration=3, **common)
                for rate in o.rates:
                    r.sleep(2)
                    steps.append(
                        dep.dm_step(
                            f"{rate:g}/s",
                            rate=rate,
                            duration=o.duration,
                            ring_rate=o.ring_rate,
                            **common,
                        )
                    )
                profile_step = None
                if o.profile:
                    r.sleep(2)
                    out = RESULTS / f"profile-{db}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
                    profile_step = dep.dm_step(
                        f"{o.profile_rate:g}/s profiled", rate=o.profile_rate,
                        duration=o.duration, profile_to=out, **common,
                    )  # fmt: skip
            finally:
                dep.close()
                server.stop()
        finally:
            if own_pg and pg is not None:
                pg.stop()
    title = "SQLite" if db == "sqlite" else f"PostgreSQL ({pg.settings if pg else ''})"
    t = Table(f"DM delivery, open loop ({title}, {o.users} sockets, one node)", DM_COLUMNS)
    for step in steps:
        t.add(*step_row(step))
    t.notes.append(
        f"{o.duration:g} s per step over {len(layout.pairs)} sender→recipient pairs, "
        f"{_how_sent(o)}; latency from the scheduled send "
        f"time to the recipient's socket; a DM not delivered within {o.drain:g} s of the "
        "step's end (or not sent because it fell more than "
        f"{o.max_lag:g} s behind) counts as lost, i.e. infinitely late"
    )
    t.notes.append(f"server RSS with all sockets connected: {rss_connected / 1024:.0f} MiB")
    if setup_failures:
        t.notes.append(
            f"{len(setup_failures)} of {o.users} sockets failed to connect during set-up "
            f"({'; '.join(sorted(set(setup_failures))[:2])}); the run went on without them"
        )
    for step in steps:
        _step_notes(step, t.notes, o.max_lag)
    ring = Table(
        f"Ring latency ({title}): POST /api/v1/calls + call.offer → call.incoming", RING_COLUMNS
    )
    ring.add(*ring_row("no DM load", idle.ring or {"rows": [], "failures": []}))
    for step in steps:
        if step.ring:
            ring.add(*ring_row(f"DMs at {step.rate:g}/s", step.ring))
    ring.notes.append(
        f"open loop at {o.ring_rate:g} calls/s over {len(layout.ring)} caller/callee pairs, "
        "each call hung up after it rang; latency from the scheduled start"
    )
    ring.notes.append(
        f"server CPU during the ring-only step (5,000 idle sockets + {o.ring_rate:g} rings/s): "
        f"{next(iter(idle.cpu.values()), 0) * 100:.0f}% of a core"
    )
    if idle.ring and idle.ring["failures"]:
        ring.notes.append(
            "idle ring failures: " + "; ".join(sorted(set(idle.ring["failures"]))[:2])
        )
    tables = [t, ring]
    extra: dict[str, Any] = {
        "steps": [
            {
                "label": s.label, "rate": s.rate, "attempted": s.attempted,
                "received": s.received, "q": s.q(), "cpu": s.cpu, "statuses": s.statuses,
                "ring": ring_row(s.label, s.ring) if s.ring else None, "late": s.late,
                "disk": s.disk, "machine_cores": s.machine_cores,
            }
            for s in steps
        ],
        "ring_idle": ring_row("idle", idle.ring) if idle.ring else None,
    }  # fmt: skip
    if o.profile and profile_step is not None:
        pt = Table(f"Profiled step ({title})", DM_COLUMNS)
        pt.add(*step_row(profile_step))
        pt.notes.append(
            f"py-spy record --rate 200 --nonblocking --gil (samples holding the GIL); "
            f"raw profile: {out}"
        )
        pt.notes.append(
            "server CPU by thread: "
            f"event loop {profile_step.threads.get('main', 0) * 100:.0f}% of a core, "
            f"other threads ({'aiosqlite' if db == 'sqlite' else 'executors'}) "
            f"{profile_step.threads.get('other', 0) * 100:.0f}%"
        )
        tables.append(pt)
        if out.exists():
            tables += summarise(out)
            extra["profile"] = str(out)
        else:
            pt.notes.append("py-spy wrote no profile (is ptrace allowed?)")
    return tables, extra


# --- call set-up ------------------------------------------------------------------------


def call_setup(r: Runner, o: Options) -> Section:
    warmup = 1
    per_mode = o.call_repeats + warmup
    n = 4 * per_mode
    relay = [(i, per_mode + i) for i in range(per_mode)]
    direct = [(2 * per_mode + i, 3 * per_mode + i) for i in range(per_mode)]
    direct_users = [u for pair in direct for u in pair]
    with workdir("calls") as wd:
        url = sqlite_url(wd)
        from bench.seed import seed

        pop = asyncio.run(seed(url, n, call_pairs=[*relay, *direct], direct=direct_users))
        coturn = procs.start_coturn()
        try:
            server = procs.start_server(
                "calls",
                workdir=wd,
                database_url=url,
                env={
                    "RINGFENCE_TURN_URLS": ",".join(coturn.urls),
                    "RINGFENCE_TURN_SECRET": coturn.secret,
                },
            )
            try:
                w = r.worker("calls", "bench.callsetup", use_uvloop=False)
                r.bar("calls", "call set-up (4 modes, interleaved)", total=4 * per_mode)

                def pairs(lst: list[tuple[int, int]]) -> list[dict[str, str]]:
                    return [
                        {
                            "caller_token": pop.tokens[a],
                            "callee_token": pop.tokens[b],
                            "callee": pop.usernames[b],
                        }
                        for a, b in lst
                    ]

                res = r.call(
                    w, "run", timeout=60 + 40 * 4 * per_mode,
                    http_url=server.url, ws_url=server.ws_url, relay_pairs=pairs(relay),
                    direct_pairs=pairs(direct), turn_urls=coturn.urls, turn_secret=coturn.secret,
                    repeats=o.call_repeats, warmup=warmup, bar="calls",
                )  # fmt: skip
                r.finish("calls")
                r.stop_worker(w)
            finally:
                server.stop()
        finally:
            coturn.stop()
    t = Table(
        "Call set-up with aiortc peers (start of the call → both sides connected / hearing audio)",
        ["mode", "calls", "connected p50 ms", "connected p90 ms", "first audio p50 ms",
         "first audio p90 ms", "signaling p50 ms", "offer gather p50 ms", "ICE pair"],
    )  # fmt: skip

    def med(rows: list[dict[str, Any]], key: str, q: float = 50) -> float:
        return float(np.percentile([x[key] for x in rows], q)) if rows else math.nan

    for mode, rows in res.items():
        pair_types = sorted({x["pair"] for x in rows})
        t.add(
            mode, len(rows), ms(med(rows, "connected")), ms(med(rows, "connected", 90)),
            ms(med(rows, "first_audio")), ms(med(rows, "first_audio", 90)),
            ms(med(rows, "signaling")), ms(med(rows, "offer_gather")), ", ".join(pair_types),
        )  # fmt: skip
    overhead: dict[str, float] = {}
    for kind in ("relay", "direct"):
        s, loc = res[f"server-{kind}"], res[f"local-{kind}"]
        for key in ("connected", "first_audio"):
            diff = statistics.median(x[key] for x in s) - statistics.median(x[key] for x in loc)
            base = statistics.median(x[key] for x in loc)
            overhead[f"{kind}-{key}"] = diff / base
            t.notes.append(
                f"server adds {diff * 1000:+.1f} ms ({100 * diff / base:+.1f}%) to {kind} "
                f"{key.replace('_', ' ')} (median vs the same peers without the server)"
            )
    srv = res["server-relay"]
    t.notes.append(
        "server-relay signaling parts, p50: POST /api/v1/calls "
        f"{ms(med(srv, 'post'))} ms, offer relay {ms(med(srv, 'offer_relay'))} ms, "
        f"answer relay {ms(med(srv, 'answer_relay'))} ms"
    )
    t.notes.append(
        f"{o.call_repeats} calls per mode after {warmup} warm-up, modes interleaved; "
        "both peers in one process, host candidates on 127.0.0.1 only, one real coturn"
    )
    return [t], {"modes": res, "overhead": overhead}


# --- two nodes against one ------------------------------------------------------------------


def nodes(r: Runner, o: Options) -> Section:
    """The same DM + ring load on one node and on two nodes sharing PostgreSQL + Redis."""
    sdp = ring_offer_sdp()
    pg = procs.start_postgres(fsync=o.pg_fsync)
    redis: procs.Redis | None = None
    results: dict[str, list[Step]] = {}
    notes: list[str] = []
    extra: dict[str, Any] = {}
    try:
        try:
            redis = procs.start_redis()
        except RuntimeError as exc:
            notes.append(f"Redis could not start: {exc}")
        configs: list[tuple[str, int, bool, bool]] = [("one node, no Redis", 1, False, False)]
        if redis is not None:
            configs += [
                ("one node + Redis", 1, True, False),
                ("two nodes + Redis", 2, True, False),
                ("two nodes + Redis, sends on both", 2, True, True),
            ]
        for name, n_nodes, use_redis, split in configs:
            layout = Layout.build(o.users, o.pairs, _ring_pairs(o), split=split)
            with workdir("nodes") as wd:
                url = procs.create_database(
                    pg, f"bench_nodes_{n_nodes}_{int(use_redis)}_{int(split)}"
                )
                r.note(f"[{name}] seeding {o.users} users")
                pop = Deployment.seed(url, layout)
                env = {}
                if use_redis and redis is not None:
                    env["RINGFENCE_REDIS_URL"] = redis.url
                    env["RINGFENCE_REDIS_PREFIX"] = f"bench{n_nodes}{int(split)}:"
                servers: list[procs.Server] = []
                try:
                    for k in range(n_nodes):
                        servers.append(
                            procs.start_server(f"node{k}", workdir=wd, database_url=url, env=env)
                        )
                except procs.ServerStartError as exc:
                    notes.append(f"{name}: could not start: {str(exc)[-600:]}")
                    for s in servers:
                        s.stop()
                    continue
                dep = Deployment(r, layout, pop, servers, disk_dir=wd)
                try:
                    dep.start_workers(o.ws_workers)
                    conn = dep.connect(
                        list(range(o.users)), o.setup_rate, "setup", f"[{name}] connecting sockets"
                    )
                    if conn["failures"]:
                        notes.append(f"{name}: {len(conn['failures'])} sockets failed to connect")
                    common: dict[str, Any] = {
                        "concurrency": o.concurrency, "max_lag": o.max_lag, "drain": o.drain,
                        "ring_sdp": sdp, "via": o.via,
                    }  # fmt: skip
                    probe = dep.dm_step("probe", rate=20, duration=1, **{**common, "drain": 5.0})
                    if probe.received < probe.ok or probe.ok == 0:
                        notes.append(
                            f"{name}: cross-node delivery does not work: {probe.received} of "
                            f"{probe.ok} accepted DMs arrived (statuses {probe.statuses}); skipped"
                        )
                        continue
                    dep.dm_step("warm-up", rate=100, duration=3, **common)
                    steps = []
                    for rate in o.node_rates:
                        r.sleep(2)
                        steps.append(
                            dep.dm_step(
                                f"{rate:g}/s",
                                rate=rate,
                                duration=o.duration,
                                ring_rate=o.ring_rate,
                                **common,
                            )
                        )
                    results[name] = steps
                finally:
                    dep.close()
                    for s in servers:
                        s.stop()
    finally:
        if redis is not None:
            redis.stop()
        pg.stop()
    t = Table(
        f"Two nodes against one (PostgreSQL {pg.settings}; {o.users} sockets)",
        ["setup", *DM_COLUMNS, "ring p50 ms", "ring p99 ms"],
    )
    for name, steps in results.items():
        for step in steps:
            ring = ring_row("", step.ring) if step.ring else ["-"] * 9
            t.add(name, *step_row(step), ring[3], ring[4])
            _step_notes(step, t.notes, o.max_lag)
    if not any(name.startswith("two") for name in results):
        t.notes.insert(0, "THE TWO-NODE CONFIGURATION DID NOT RUN (see below)")
    t.notes.append(
        "two nodes: senders' HTTP and sockets and callers on node0, recipients and callees on "
        "node1, idle sockets alternate; 'sends on both': half the pairs send from node1 to "
        "node0 instead; server CPU is listed per node; DMs " + _how_sent(o).removeprefix("sent ")
    )
    t.notes += notes
    extra["configs"] = {
        name: [{"rate": s.rate, "q": s.q(), "received": s.received, "attempted": s.attempted}
               for s in steps]
        for name, steps in results.items()
    }  # fmt: skip
    return [t], extra


__all__ = ["Options", "call_setup", "connect_storm", "dm_delivery", "loadavg", "nodes"]


# --- where an idle connection's memory goes -------------------------------------------------


def _owner(tb: Any) -> str:
    """The allocating frame closest to the allocation that is not the standard library."""
    for frame in reversed(list(tb)):
        name = frame.filename
        if "site-packages" in name or "/ringfence/" in name:
            short = "/".join(name.split("site-packages/")[-1].split("/")[-3:])
            return f"{short}:{frame.lineno}"
    frame = tb[-1]
    return f"{'/'.join(frame.filename.split('/')[-2:])}:{frame.lineno}"


def memory(r: Runner, o: Options) -> Section:
    """Python allocations per idle WebSocket, by where they are made (tracemalloc).

    tracemalloc slows the server down, so this is a diagnostic run of its own, with at
    most 1,000 sockets; its RSS figure includes tracemalloc's own bookkeeping."""
    import os
    import signal
    import sys
    import tracemalloc
    from collections import Counter

    n = min(o.users, 1000)  # tracemalloc makes each connect several times dearer
    warm = 20
    layout = Layout.build(n, 0, 0)
    with workdir("memory") as wd:
        url = sqlite_url(wd)
        pop = Deployment.seed(url, layout, extra_users=warm)
        snap = wd / "snapshot"
        root = str(Path(__file__).resolve().parent.parent)
        server = procs.start_server(
            "memory",
            workdir=wd,
            database_url=url,
            command=[sys.executable, "-m", "bench.memserver"],
            env={
                "BENCH_TRACEMALLOC_OUT": str(snap),
                "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
            },
        )
        dep = Deployment(r, layout, pop, [server])

        def snapshot(k: int) -> tracemalloc.Snapshot:
            os.kill(server.pid, signal.SIGUSR1)
            path = Path(f"{snap}.{k}")
            deadline = time.monotonic() + 120
            while not path.exists():
                if time.monotonic() > deadline:
                    raise StepFailed("the server wrote no tracemalloc snapshot")
                r.sleep(0.2)
            return tracemalloc.Snapshot.load(str(path))

        try:
            dep.start_workers(1)
            dep.connect(list(range(n, n + warm)), 50, "warm", "warm-up sockets")
            r.sleep(2)
            before = snapshot(1)
            rss0 = procs.rss_kib(server.pid)
            res = dep.connect(list(range(n)), 40, "mem", f"connecting {n} sockets (tracemalloc)")
            if res["failures"]:
                raise StepFailed(f"{len(res['failures'])} sockets failed: {res['failures'][:2]}")
            r.sleep(3)
            after = snapshot(2)
            rss1 = procs.rss_kib(server.pid)
        finally:
            dep.close()
            server.stop()
    ok = len(res["from_intended"])
    diffs = after.compare_to(before, "traceback")
    owners: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for stat in diffs:
        mine = [f for f in stat.traceback if "/ringfence/" in f.filename]
        if mine:
            f = mine[-1]
            ours[f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno}"] += stat.size_diff
        else:
            ours["(no Ringfence frame: uvicorn, websockets, Starlette, FastAPI)"] += stat.size_diff
        owners[_owner(stat.traceback)] += stat.size_diff
        frame = stat.traceback[-1]
        sites[f"{'/'.join(frame.filename.split('/')[-2:])}:{frame.lineno}"] += stat.size_diff
    traced = sum(stat.size_diff for stat in diffs)
    t = Table(
        f"Python allocations per idle connection ({ok} sockets, tracemalloc)",
        ["allocated by (nearest non-stdlib frame)", "bytes per connection"],
    )
    for name, size in owners.most_common(15):
        t.add(name, f"{size / max(ok, 1):.0f}")
    t.notes.append(
        f"all traced Python allocations: {traced / max(ok, 1) / 1024:.1f} KiB per connection; "
        f"RSS grew {(rss1 - rss0) / max(ok, 1):.1f} KiB per connection "
        "(tracemalloc's own bookkeeping included)"
    )
    s = Table("The same by allocation site (innermost frame)", ["site", "bytes per connection"])
    for name, size in sites.most_common(12):
        s.add(name, f"{size / max(ok, 1):.0f}")
    return [t, s], {
        "traced_per_conn": traced / max(ok, 1),
        "rss_per_conn_kib": (rss1 - rss0) / max(ok, 1),
    }


# --- statements and CPU per operation ---------------------------------------------------------


def statement_counts(r: Runner, o: Options) -> Section:
    from bench.statements import statements

    r.note("statements: SQLite")
    tables = statements()
    pg = procs.start_postgres(fsync=o.pg_fsync)
    try:
        r.note("statements: PostgreSQL")
        tables += statements(procs.create_database(pg, "bench_statements"))
    finally:
        pg.stop()
    return tables, {}
