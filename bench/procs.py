"""The processes a benchmark starts: ``ringfence serve``, PostgreSQL, Redis, coturn.

Every process started here is registered with :data:`REGISTRY` and stopped by
:meth:`Registry.stop_all`, which the CLI runs in a ``finally`` and at exit, so nothing
is left listening whatever happens to a run. Processes are stopped by their own pid,
never by name.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

RINGFENCE = Path(sys.executable).parent / "ringfence"
NOFILE_WANTED = 65536
# --server-errors: run every server through bench.memserver, keeping the WebSocket
# error lines that Ringfence's log filter drops.
KEEP_WS_ERRORS = False


def raise_nofile(wanted: int = NOFILE_WANTED) -> int:
    """Raise this process's open-file limit (soft, and hard if we may); returns it.

    Used in our own process before spawning load generators and as the ``preexec_fn``
    of every server child, so that thousands of sockets fit on both ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):  # needs CAP_SYS_RESOURCE
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_preexec() -> None:
    raise_nofile()
    os.setsid()  # its own process group: a ^C on the bench does not hit it twice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_cpu() -> tuple[float, float]:
    """CPU seconds of the whole machine so far, summed over its cores: (busy, all).
    Busy is everything but idle and I/O wait, stolen time included (a host that takes
    the CPU back leaves the processes here less of it)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (not guest)
    idle = fields[3] + fields[4]
    return (total - idle) / ticks, total / ticks


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each thread of a process."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def thread_split(pid: int, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds between two :func:`thread_cpu` readings: the event loop's thread
    (the main one) and all others (aiosqlite's connection threads, executors)."""
    main = after.get(pid, 0.0) - before.get(pid, 0.0)
    total = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
    return {"main": main, "other": total - main}


class Registry:
    """Everything started by this run, stopped newest first."""

    def __init__(self) -> None:
        self._stoppers: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.Lock()

    def add(self, name: str, stop: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._stoppers.append((name, stop))

        def stop_one() -> None:
            with self._lock:
                entry = next((e for e in self._stoppers if e[1] is stop), None)
                if entry is None:
                    return
                self._stoppers.remove(entry)
            stop()

        return stop_one

    def stop_all(self) -> None:
        while True:
            with self._lock:
                if not self._stoppers:
                    return
                name, stop = self._stoppers.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"bench: stopping {name} failed: {exc}", file=sys.stderr)


REGISTRY = Registry()
atexit.register(REGISTRY.stop_all)


def _terminate(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait_s: float = 10
) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- ringfence serve ---------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    stop: Callable[[], None]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/events"


class ServerStartError(RuntimeError):
    pass


def start_server(
    name: str,
    *,
    workdir: Path,
    database_url: str | None,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
    command: list[str] | None = None,
) -> Server:
    """``ringfence serve`` on a free port, its data dir under ``workdir``; waits for
    /healthz. TURN points at an external relay (a real coturn for call scenarios, else
    a placeholder URL) so no server starts a coturn of its own on a fixed port."""
    port = free_port()
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
    child_env.setdefault("RINGFENCE_TURN_URLS", "turn:127.0.0.1:3478?transport=udp")
    child_env.setdefault("RINGFENCE_TURN_SECRET", "bench-placeholder-secret-0123456789")
    # A benchmark sends as one heavy user per pair; the per-account abuse limits would
    # measure themselves instead of the server.
    child_env.setdefault("RINGFENCE_MESSAGES_PER_MINUTE", "100000")
    child_env.setdefault("RINGFENCE_MESSAGE_REQUESTS_PER_HOUR", "100000")
    child_env.setdefault("RINGFENCE_TURN_CREDENTIALS_PER_MINUTE", "1000")
    # The ring probes reuse their caller/callee pairs; late hang-ups under overload
    # otherwise run into the per-pair attempt limit (3 a minute) and count as failures.
    child_env.setdefault("RINGFENCE_CALL_ATTEMPTS_PER_MINUTE", "1000")
    child_env.setdefault("RINGFENCE_CALL_ATTEMPTS_PER_PAIR_PER_MINUTE", "1000")
    child_env.update(env or {})
    args = [
        *(command or [str(RINGFENCE)]),
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        args += ["--database-url", database_url]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=child_env, preexec_fn=_child_preexec
        )
    stop = REGISTRY.add(f"server {name}", lambda: _terminate(proc, signal.SIGINT, 15))
    server = Server(name, port, proc, log, stop)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while True:
            if proc.poll() is not None:
                stop()
                raise ServerStartError(
                    f"ringfence serve ({name}) exited with {proc.returncode}:\n{tail(log)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/healthz").status_code == 200:
                    return server
            if time.monotonic() > deadline:
                stop()
                raise ServerStartError(f"ringfence serve ({name}) not healthy:\n{tail(log)}")
            time.sleep(0.1)


# --- PostgreSQL --------------------------------------------------------------------------


@dataclass
class Postgres:
    url: str
    stop: Callable[[], None]
    settings: str


def start_postgres(*, fsync: bool = True) -> Postgres:
    """A throwaway PostgreSQL (as scripts/lib/setup.sh's start_throwaway_postgres does),
    removed on stop. Unlike the test one, it keeps fsync on by default: SQLite runs with
    synchronous=FULL, and the two should be compared on equal durability."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not bindirs or not Path(bindirs[-1], "initdb").exists():
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    bindir = bindirs[-1]
    workdir = Path(tempfile.mkdtemp(prefix="ringfence-bench-pg."))
    run: list[str] = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(workdir, "postgres", "postgres")
        run = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*run, f"{bindir}/initdb", "-D", str(workdir / "data"), "-U", "postgres",
         "--auth=trust", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = [
        f"-p {port}", f"-k {workdir}", "-c listen_addresses=127.0.0.1", "-c max_connections=300",
        "-c shared_buffers=256MB",
    ]  # fmt: skip
    if not fsync:
        options += ["-c fsync=off", "-c full_page_writes=off"]

    def stop() -> None:
        subprocess.run(
            [*run, f"{bindir}/pg_ctl", "-D", str(workdir / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)

    stop_one = REGISTRY.add("postgresql", stop)
    result = subprocess.run(
        [*run, f"{bindir}/pg_ctl", "-D", str(workdir / "data"), "-l", str(workdir / "server.log"),
         "-w", "-t", "60", "-o", " ".join(options), "start"],
        capture_output=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        log = tail(workdir / "server.log")
        stop_one()
        raise RuntimeError(f"PostgreSQL did not start:\n{log}")
    return Postgres(
        url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres",
        stop=stop_one,
        settings="fsync=on" if fsync else "fsync=off, full_page_writes=off",
    )


def create_database(pg: Postgres, name: str) -> str:
    """A fresh database on the throwaway server; returns its SQLAlchemy URL."""
    import asyncpg  # type: ignore[import-untyped]

    base = pg.url.rsplit("/", 1)[0]
    dsn = pg.url.replace("postgresql+asyncpg", "postgresql")

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{base}/{name}"


# --- Redis -------------------------------------------------------------------------------


@dataclass
class Redis:
    url: str
    stop: Callable[[], None]


def start_redis() -> Redis:
    """A throwaway redis-server without persistence (as start_throwaway_redis does),
    run in the foreground so that its pid is ours to stop."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="ringfence-bench-redis."))
    port = free_port()
    log = workdir / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
             "--save", "", "--appendonly", "no", "--maxclients", "10000"],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=_child_preexec,
        )  # fmt: skip

    def stop() -> None:
        _terminate(proc)
        shutil.rmtree(workdir, ignore_errors=True)

    stop_one = REGISTRY.add("redis", stop)
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            text = tail(log)
            stop_one()
            raise RuntimeError(f"Redis did not start:\n{text}")
        time.sleep(0.05)
    return Redis(url=f"redis://127.0.0.1:{port}/0", stop=stop_one)


# --- coturn ------------------------------------------------------------------------------


@dataclass
class Coturn:
    urls: list[str]
    secret: str
    stop: Callable[[], None]
    pids: list[int] = field(default_factory=list)


def start_coturn(min_port: int = 43000, max_port: int = 43999) -> Coturn:
    """A real coturn on a free port of 127.0.0.1, supervised by Ringfence's own
    CoturnSupervisor on an event loop in a thread (as tests/turn_fixture.py does)."""
    if shutil.which("turnserver") is None:
        raise RuntimeError("coturn is not installed (apt-get install coturn)")
    from ringfence.turn.coturn_config import CoturnOptions
    from ringfence.turn.credentials import generate_secret
    from ringfence.turn.supervisor import CoturnSupervisor

    secret = generate_secret()
    workdir = Path(tempfile.mkdtemp(prefix="ringfence-bench-coturn."))
    supervisor = CoturnSupervisor(
        CoturnOptions(
            listen_ip="127.0.0.1",
            relay_ip="127.0.0.1",
            port=0,
            min_port=min_port,
            max_port=max_port,
            realm="ringfence-bench",
            secret=secret,
            allow_loopback_peers=True,
        ),
        workdir=workdir,
        production=False,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="coturn-supervisor", daemon=True)
    thread.start()

    def stop() -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(supervisor.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    stop_one = REGISTRY.add("coturn", stop)
    try:
        asyncio.run_coroutine_threadsafe(supervisor.start(), loop).result(timeout=30)
    except BaseException:
        stop_one()
        raise
    return Coturn(urls=list(supervisor.urls), secret=secret, stop=stop_one)
