"""``python -m bench [SCENARIO ...]``: Ringfence's benchmarks, one command.

Scenarios: connect, dm-sqlite, dm-postgres, calls, nodes (``dm`` = both DM ones;
``all``, the default, runs every one; each DM run ends with a profiled step).
Each scenario starts its own servers, databases, Redis and coturn on free ports of
127.0.0.1 and stops them, whatever happens. Results are printed as tables and written
to bench/results/<time>.json and .md.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Annotated

import typer
from rich.console import Console

from bench import procs
from bench.report import Report, Table, cpu_probe, loadavg, wait_for_quiet
from bench.runner import Runner
from bench.scenarios import (
    Options,
    call_setup,
    connect_storm,
    dm_delivery,
    memory,
    nodes,
    statement_counts,
)
from bench.targets import verdicts

SCENARIOS = ["statements", "connect", "memory", "dm-sqlite", "dm-postgres", "calls", "nodes"]
ALIASES = {"all": SCENARIOS, "dm": ["dm-sqlite", "dm-postgres"], "profile": ["dm-sqlite"]}

app = typer.Typer(add_completion=False, help=__doc__)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


@app.command()
def main(
    scenarios: Annotated[
        list[str] | None, typer.Argument(help=f"any of: all, dm, {', '.join(SCENARIOS)}")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Small N and short steps, for development.")] = False,
    users: Annotated[int | None, typer.Option(help="Connected users [5000].")] = None,
    connect_rates: Annotated[
        str | None, typer.Option(help="Connect storm rates /s, comma-separated [100,500].")
    ] = None,
    rates: Annotated[
        str | None, typer.Option(help="DM rates, comma-separated [200,1000,3000].")
    ] = None,
    node_rates: Annotated[str | None, typer.Option(help="DM rates of `nodes` [200,1000].")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds per DM step [20].")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="HTTP connections of the sender [32].")
    ] = None,
    via: Annotated[
        str,
        typer.Option(
            help="How DMs are sent: ws (message.send on the senders' open sockets, as the "
            "clients do when connected) or http (POST, keep-alive connections)."
        ),
    ] = "ws",
    ring_rate: Annotated[
        float | None, typer.Option(help="Ring probes /s during DM steps [5].")
    ] = None,
    ws_workers: Annotated[int | None, typer.Option(help="WebSocket load processes [1].")] = None,
    call_repeats: Annotated[int | None, typer.Option(help="Calls per mode [10].")] = None,
    profile: Annotated[
        bool, typer.Option(help="Profile the server with py-spy (a step of each DM run).")
    ] = True,
    profile_rate: Annotated[
        float | None, typer.Option(help="DM rate /s of the profiled step [1000].")
    ] = None,
    pg_fsync: Annotated[
        bool, typer.Option(help="PostgreSQL with fsync on (as SQLite's FULL).")
    ] = True,
    server_errors: Annotated[
        bool, typer.Option(help="Keep the servers' WebSocket error lines (diagnosis).")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for a quiet machine before starting.")] = True,
    wait_max: Annotated[float, typer.Option(help="Longest wait for a quiet machine, s.")] = 600,
    load_below: Annotated[float, typer.Option(help="1-minute load average to wait for.")] = 1.0,
) -> None:
    wanted: list[str] = []
    for name in scenarios or ["all"]:
        for s in ALIASES.get(name, [name]):
            if s not in SCENARIOS:
                raise typer.BadParameter(f"unknown scenario {name!r}")
            if s not in wanted:
                wanted.append(s)
    o = Options.quick() if quick else Options()
    for key, value in {
        "users": users, "duration": duration,
        "concurrency": concurrency, "ring_rate": ring_rate, "ws_workers": ws_workers,
        "call_repeats": call_repeats, "profile_rate": profile_rate,
    }.items():  # fmt: skip
        if value is not None:
            setattr(o, key, value)
    if rates:
        o.rates = _floats(rates)
    if connect_rates:
        o.connect_rates = _floats(connect_rates)
    if node_rates:
        o.node_rates = _floats(node_rates)
    if via not in ("ws", "http"):
        raise typer.BadParameter("--via is ws or http")
    o.via = via
    o.profile = profile
    o.pg_fsync = pg_fsync
    if o.users < 2 * o.pairs + 2 * max(o.ring_pairs, int(o.ring_rate * 30)):
        o.pairs = max(1, o.users // 4)
        o.ring_pairs = max(1, o.users // 8)

    procs.raise_nofile()
    procs.KEEP_WS_ERRORS = server_errors
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    report = Report(console)
    console.print(
        f"[bold]Ringfence benchmarks[/]: {', '.join(wanted)}  "
        f"({report.machine['nproc']} cores, {report.machine['memory']}, {report.machine['cpu']}, "
        f"Python {report.machine['python']}; load average {loadavg()})"
    )
    failed = False
    quiet_note = None
    with Runner(console) as r:
        try:
            if wait:
                quiet_note = wait_for_quiet(load_below, wait_max, r.sleep, r.note)
                r.note(quiet_note)
            for name in wanted:
                load, probe_ms = loadavg(), cpu_probe()
                started = time.monotonic()
                try:
                    if name == "connect":
                        tables, extra = connect_storm(r, o)
                    elif name == "dm-sqlite":
                        tables, extra = dm_delivery(r, o, "sqlite")
                    elif name == "dm-postgres":
                        tables, extra = dm_delivery(r, o, "postgresql")
                    elif name == "statements":
                        tables, extra = statement_counts(r, o)
                    elif name == "memory":
                        tables, extra = memory(r, o)
                    elif name == "calls":
                        tables, extra = call_setup(r, o)
                    else:
                        tables, extra = nodes(r, o)
                except Exception as exc:  # one scenario failing must not stop the others
                    failed = True
                    tables = [Table(f"{name}: FAILED", ["error"], [[str(exc)[-2000:]]])]
                    extra = {"error": str(exc)}
                finally:
                    procs.REGISTRY.stop_all()  # nothing of one scenario outlives it
                extra["seconds"] = time.monotonic() - started
                report.section(name, load, tables, extra, probe_ms)
        finally:
            procs.REGISTRY.stop_all()
    judged = verdicts(report.sections)
    if judged is not None:
        report.section("targets", loadavg(), [judged], {})
    path = report.write(quiet_note)
    console.print(f"\nresults: {path} and {path.with_suffix('.md')}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    app()
