"""Worker: thousands of raw WebSocket clients, DM receivers and the ring-latency prober,
and (``--via ws``) the open-loop DM sender over the senders' own sockets.

Clients use the ``websockets`` library directly (no Ringfence client, no per-socket
keepalive of their own; the server's pings are answered by the protocol layer). Each
socket has one reader task that looks at frames as text and parses JSON only for the
few it must: a DM carries its intended send time in its text, so the receiver computes
the latency on the spot, with the machine-wide monotonic clock the sender used.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

from bench.http1 import HttpClient
from bench.worker import WorkerState

# The bench DM text is "b <seq> <intended monotonic time>".
_DM = re.compile(r'"text":"b (\d+) (\d+\.\d+)"')
# The first txn_id of an answer to message.send is the frame's own.
_TXN = re.compile(r'"txn_id":"([^"]+)"')


class Client:
    __slots__ = ("closed", "idx", "reader", "receiver", "ws")

    def __init__(self, idx: int, ws: Any, receiver: bool) -> None:
        self.idx = idx
        self.ws = ws
        self.receiver = receiver
        self.closed = False
        self.reader: asyncio.Task[None] | None = None


class State:
    def __init__(self) -> None:
        self.clients: dict[int, Client] = {}
        self.seqs = array("q")
        self.lats = array("d")
        self.waiters: dict[tuple[int, str, str], asyncio.Future[float]] = {}
        # message.send frames awaiting their answer: txn_id -> (status, arrival time).
        self.sends: dict[str, asyncio.Future[tuple[int, float]]] = {}
        self.errors = 0
        self.error_samples: list[str] = []
        self.disconnects = 0
        self.frames = 0
        # This process's own garbage-collection pauses since ``arm``, in ms: they delay
        # what it measures as much as a slow server would, so the report shows them.
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        # Its event loop's longest stall since ``arm`` (ms) and when it ended
        # (time.monotonic()): a stall here delays sends and receipts alike.
        self.stall_ms = 0.0
        self.stall_at = 0.0
        self.heartbeat: asyncio.Task[None] | None = None

    async def beat(self, every_s: float = 0.005) -> None:
        """Measure how late this loop wakes a sleeper, for as long as it runs."""
        while True:
            due = time.monotonic() + every_s
            await asyncio.sleep(every_s)
            now = time.monotonic()
            late = (now - due) * 1000
            if late > self.stall_ms:
                self.stall_ms, self.stall_at = late, now

    def on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((time.perf_counter() - self._gc_started) * 1000)


def _state(ws: WorkerState) -> State:
    st = ws.data.get("st")
    if st is None:
        st = ws.data["st"] = State()
        gc.callbacks.append(st.on_gc)
    return st


async def _read(st: State, client: Client) -> None:
    waiters = st.waiters
    try:
        async for msg in client.ws:
            now = time.monotonic()
            st.frames += 1
            if not isinstance(msg, str):
                continue
            if client.receiver and '"type":"message.new"' in msg:
                m = _DM.search(msg)
                if m is not None:
                    st.seqs.append(int(m.group(1)))
                    st.lats.append(now - float(m.group(2)))
            elif msg.startswith('{"type":"message.ack"'):
                _answered(st, msg, 201, now)
            elif '"type":"call.' in msg:
                event = json.loads(msg)
                key = (client.idx, str(event.get("call_id")), str(event.get("type")))
                fut = waiters.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_result(now)
            elif '"type":"error"' in msg:
                if '"txn_id"' in msg:
                    _answered(st, msg, int(json.loads(msg).get("status") or 400), now)
                    continue
                st.errors += 1
                if len(st.error_samples) < 5:
                    st.error_samples.append(msg[:300])
    except ConnectionClosed:
        pass
    finally:
        if not client.closed:
            st.disconnects += 1
        client.closed = True


def _answered(st: State, msg: str, status: int, now: float) -> None:
    m = _TXN.search(msg)
    fut = st.sends.pop(m.group(1), None) if m is not None else None
    if fut is not None and not fut.done():
        fut.set_result((status, now))


async def _paced(
    n: int, rate: float, start: Callable[[int, float], Coroutine[Any, Any, None] | None]
) -> float:
    """Call ``start(i, intended_time)`` for i in range(n) on a fixed timetable (open
    loop: never waiting for earlier ones to finish), run each awaitable it returns as a
    task, and return when all have finished: the seconds the timetable itself took.

    Only the tasks still running are held: a finished one is dropped at once. Holding
    all of a step's thousands of done tasks to the end made this process's full
    collections walk them, pauses that grew through the step (100 ms after 20 s at
    500/s, seen with a gc.callbacks probe) and delayed the receipts it times."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()
    began = time.monotonic()
    t0 = began + 0.01
    i = 0
    while i < n:
        due = min(n, int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            work = start(i, t0 + i / rate)
            if work is not None:
                task = loop.create_task(work)
                running.add(task)
                task.add_done_callback(running.discard)
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
    scheduled = time.monotonic() - began
    while running:
        await asyncio.wait(list(running))
    return scheduled


async def connect(
    ws: WorkerState,
    *,
    users: list[tuple[int, str, str, bool]],
    rate: float,
    bar: str | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Open and authenticate one socket per (index, ws url, token, is_receiver), starting
    them at ``rate`` per second. Latency is from the intended start to ``ready``."""
    st = _state(ws)
    from_intended = array("d")
    from_start = array("d")
    failures: list[str] = []

    async def one(k: int, intended: float) -> None:
        idx, url, token, receiver = users[k]
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                sock = await websockets.connect(
                    url,
                    compression=None,
                    ping_interval=None,
                    max_size=2**20,
                    open_timeout=None,
                    close_timeout=2,
                    user_agent_header=None,
                )
                await sock.send(json.dumps({"type": "auth", "token": token}))
                ready = await sock.recv()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])
            if bar:
                ws.progress(bar, 1)
            return
        done = time.monotonic()
        if not isinstance(ready, str) or '"type":"ready"' not in ready:
            failures.append(f"no ready: {str(ready)[:200]}")
            await sock.close()
            return
        from_intended.append(done - intended)
        from_start.append(done - started)
        client = Client(idx, sock, receiver)
        old = st.clients.pop(idx, None)
        if old is not None:
            old.closed = True
            await old.ws.close()
        st.clients[idx] = client
        client.reader = asyncio.get_running_loop().create_task(_read(st, client))
        if bar:
            ws.progress(bar, 1)

    def launch(k: int, intended: float) -> Coroutine[Any, Any, None]:
        return one(k, intended)

    t0 = time.monotonic()
    await _paced(len(users), rate, launch)
    # Thousands of long-lived client objects: without this, each full collection of
    # this process walks them all (200-240 ms pauses with 5,000 sockets on a 2-core
    # EPYC, seen with a gc.callbacks probe), stalling the sends and receipts it times.
    gc.collect()
    gc.freeze()
    return {
        "from_intended": from_intended,
        "from_start": from_start,
        "failures": failures,
        "elapsed": time.monotonic() - t0,
        "open": sum(1 for c in st.clients.values() if not c.closed),
    }


async def arm(ws: WorkerState) -> None:
    """Forget the DM latencies and counters recorded so far, and stop this process's
    automatic garbage collection until ``collect``.

    The collector's pauses in this process are measurement error: a full collection
    during a step (48 ms at 500/s, seen in the step's tenth second run after run, as
    its allocations are the same each time) held back the DMs due meanwhile, which
    then went out as one burst, and the report counted the wait and the burst's
    queue as the server's latency. What a step leaves for the collector is collected
    in ``collect``, after the step's last receipt."""
    st = _state(ws)
    gc.collect()
    gc.freeze()
    gc.disable()
    st.seqs = array("q")
    st.lats = array("d")
    st.errors, st.error_samples, st.disconnects, st.frames = 0, [], 0, 0
    st.gc_pauses = []
    st.stall_ms = st.stall_at = 0.0
    # A fresh heartbeat: the old one's sleep spans the collection above.
    if st.heartbeat is not None:
        st.heartbeat.cancel()
    st.heartbeat = asyncio.get_running_loop().create_task(st.beat())


async def collect(ws: WorkerState, *, expect: int = 0, timeout_s: float = 0.0) -> dict[str, Any]:
    """The DM latencies recorded since ``arm``, once ``expect`` of them arrived or the
    timeout passed (the drain after an open-loop step)."""
    st = _state(ws)
    deadline = time.monotonic() + timeout_s
    while len(st.lats) < expect and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    gc.enable()
    return {
        "seqs": st.seqs,
        "lats": st.lats,
        "errors": st.errors,
        "error_samples": st.error_samples,
        "disconnects": st.disconnects,
        "frames": st.frames,
        "open": sum(1 for c in st.clients.values() if not c.closed),
        "gc_ms": max(st.gc_pauses, default=0.0),
        "stall_ms": st.stall_ms,
        "stall_at": st.stall_at,
    }


async def ring(
    ws: WorkerState,
    *,
    host: str,
    port: int,
    pairs: list[tuple[int, int, str, str]],
    rate: float,
    duration_s: float,
    sdp: str,
    bar: str | None = None,
) -> dict[str, Any]:
    """Open-loop ring probes: POST /api/v1/calls, then call.offer on the caller's socket,
    until call.incoming reaches the callee's socket; then hang up. ``pairs`` holds
    (caller index, callee index, callee username, caller token); a pair is reused only
    after its previous call ended (the server allows one ringing call per pair)."""
    st = _state(ws)
    loop = asyncio.get_running_loop()
    free: deque[tuple[int, int, str, str]] = deque(pairs)
    clients: asyncio.Queue[HttpClient] = asyncio.Queue()
    for _ in range(4):
        clients.put_nowait(HttpClient(host, port))
    rows: list[dict[str, float]] = []
    failures: list[str] = []

    def expect(idx: int, call_id: str, kind: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = loop.create_future()
        st.waiters[(idx, call_id, kind)] = fut
        return fut

    async def probe(intended: float) -> None:
        if not free:
            failures.append("no free pair (previous calls still ringing)")
            return
        pair = free.popleft()
        caller, callee, callee_name, token = pair
        try:
            http = await clients.get()
            try:
                t0 = time.monotonic()
                status, body = await http.request(
                    "POST", "/api/v1/calls", {"to": callee_name, "media": "audio"}, token
                )
            finally:
                clients.put_nowait(http)
            t1 = time.monotonic()
            if status != 201:
                failures.append(f"POST /api/v1/calls: {status} {body[:150]!r}")
                return
            call_id = json.loads(body)["call_id"]
            incoming = expect(callee, call_id, "call.incoming")
            ended = expect(caller, call_id, "call.ended")
            expect(callee, call_id, "call.ended")
            offer = {"type": "call.offer", "call_id": call_id, "sdp": sdp}
            await st.clients[caller].ws.send(json.dumps(offer))
            t2 = time.monotonic()
            try:
                t3 = await asyncio.wait_for(incoming, 10)
            except TimeoutError:
                failures.append("call.incoming did not arrive within 10 s")
                t3 = float("inf")
            rows.append(
                {
                    "total": t3 - intended,
                    "queued": t0 - intended,
                    "post": t1 - t0,
                    "offer_to_incoming": t3 - t2,
                }
            )
            hangup = {"type": "call.hangup", "call_id": call_id}
            await st.clients[caller].ws.send(json.dumps(hangup))
            try:
                await asyncio.wait_for(ended, 10)
            except TimeoutError:
                failures.append("call.ended did not arrive within 10 s")
            for key in [k for k in st.waiters if k[1] == call_id]:
                st.waiters.pop(key, None)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            free.append(pair)
            if bar:
                ws.progress(bar, 1)

    def launch(_: int, intended: float) -> Coroutine[Any, Any, None]:
        return probe(intended)

    await _paced(max(1, int(rate * duration_s)), rate, launch)
    while not clients.empty():
        clients.get_nowait().close()
    return {"rows": rows, "failures": failures}


async def close_all(ws: WorkerState) -> int:
    st = _state(ws)
    clients = list(st.clients.values())
    st.clients.clear()
    for client in clients:
        client.closed = True

    async def close(client: Client) -> None:
        try:
            await asyncio.wait_for(client.ws.close(), 5)
        except Exception:
            client.ws.transport.abort()
        if client.reader is not None:
            client.reader.cancel()

    for start in range(0, len(clients), 500):
        await asyncio.gather(*(close(c) for c in clients[start : start + 500]))
    return len(clients)


async def shutdown(ws: WorkerState) -> None:
    await close_all(ws)


async def send(
    ws: WorkerState,
    *,
    pairs: list[tuple[int, str]],
    rate: float,
    duration_s: float,
    max_lag_s: float,
    run: str,
    first_seq: int = 0,
    bar: str | None = None,
) -> dict[str, Any]:
    """Open-loop DMs over the senders' own sockets: ``message.send`` at each message's
    time, timed to its ``message.ack``. ``pairs`` holds (sender index, recipient
    username), chosen by seq as the HTTP sender does; this worker sends the seqs whose
    sender it holds. A DM unanswered ``max_lag_s`` after its time counts as lost
    (status 0). Returns what ``bench.sender.send`` returns."""
    st = _state(ws)
    loop = asyncio.get_running_loop()
    n = max(1, int(rate * duration_s))
    statuses: Counter[int] = Counter()
    ok_seqs = array("q")
    resp = array("d")
    errors: list[str] = []
    attempted = 0

    async def one(seq: int, client: Client, to: str, intended: float) -> None:
        txn = f"{run}-{seq}"
        answer: asyncio.Future[tuple[int, float]] = loop.create_future()
        st.sends[txn] = answer
        text = f"b {seq} {intended:.6f}"
        frame = {"type": "message.send", "to": to, "text": text, "txn_id": txn}
        try:
            await client.ws.send(json.dumps(frame))
            wait = max(1.0, intended + max_lag_s - time.monotonic())
            status, at = await asyncio.wait_for(answer, wait)
        except Exception as exc:
            statuses[0] += 1
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        finally:
            st.sends.pop(txn, None)
            if bar:
                ws.progress(bar, 1)
        statuses[status] += 1
        if status == 201:
            ok_seqs.append(seq)
            resp.append(at - intended)
        elif len(errors) < 5:
            errors.append(f"status {status}")

    def launch(i: int, intended: float) -> Coroutine[Any, Any, None] | None:
        nonlocal attempted
        seq = first_seq + i
        idx, to = pairs[seq % len(pairs)]
        client = st.clients.get(idx)
        if client is None:
            return None  # another worker's sender
        attempted += 1
        if client.closed:
            statuses[0] += 1
            return None
        return one(seq, client, to, intended)

    t0 = time.monotonic()
    scheduled = await _paced(n, rate, launch)
    return {
        "attempted": attempted,
        "ok_seqs": ok_seqs,
        "resp": resp,
        "statuses": dict(statuses),
        "dropped": 0,
        "errors": errors,
        "scheduled_s": scheduled,
        "elapsed_s": time.monotonic() - t0,
    }


HANDLERS = {
    "connect": connect,
    "send": send,
    "arm": arm,
    "collect": collect,
    "ring": ring,
    "close_all": close_all,
    "shutdown": shutdown,
}
