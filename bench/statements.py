"""How many SQL statements, and how much CPU, each hot operation costs, in-process.

The app runs inside this process over httpx's ASGI transport (no sockets, no load
generator), with SQLAlchemy's cursor events counting every statement. The CPU time is
``time.process_time`` over many sequential operations, so it is the server's own cost
per operation, free of network and client overhead (aiosqlite's thread included).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import event

from bench.report import Table
from bench.seed import seed
from ringfence.services.sockets import Refused

# Every call start hands out a credential: room for the warm-up and the repeats.
TURN_CREDENTIALS = 1000  # the most the setting allows


async def _measure(
    db_url: str, workdir: Path, repeats: int, offer_sdp: str
) -> list[dict[str, Any]]:
    from ringfence.app import create_app
    from ringfence.config import Settings

    pop = await seed(db_url, 4, pairs=[(0, 1)], call_pairs=[(2, 3)])
    settings = Settings(
        data_dir=workdir / "data",
        database_url=db_url,
        port=0,
        turn_urls=["turn:127.0.0.1:3478?transport=udp"],
        turn_secret="bench-placeholder-secret-0123456789",
        call_attempts_per_minute=1000,
        call_attempts_per_pair_per_minute=1000,
        # Hundreds of sends from one account: the per-account limit would refuse them.
        messages_per_minute=100_000,
        turn_credentials_per_minute=TURN_CREDENTIALS,
        # The socket's flood control would refuse 200 frames sent back to back.
        ws_messages_per_second=10_000,
        ws_message_burst=100_000,
    )
    app = create_app(settings)
    rows: list[dict[str, Any]] = []
    async with app.router.lifespan_context(app):
        services = app.state.services
        seen: Counter[str] = Counter()

        def on_execute(*args: Any) -> None:
            statement: str = args[2]
            seen[statement.split(None, 1)[0].upper()] += 1

        def on_commit(_conn: Any) -> None:
            seen["COMMIT"] += 1

        sync_engine = services.db.engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", on_execute)
        event.listen(sync_engine, "commit", on_commit)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            sender, recipient = pop.tokens[0], pop.usernames[1]
            caller, callee = pop.tokens[2], pop.usernames[3]
            counter = iter(range(10**9))

            async def send_dm() -> None:
                n = next(counter)
                resp = await client.post(
                    f"/api/v1/conversations/{recipient}/messages",
                    json={"text": f"hello {n}", "txn_id": f"s{n}"},
                    headers={"Authorization": f"Bearer {sender}"},
                )
                assert resp.status_code == 201, resp.text

            inbox = _Acks()
            opened = await services.sockets.open(
                json.dumps({"type": "auth", "token": sender}), inbox
            )
            assert not isinstance(opened, Refused), opened

            async def send_dm_socket() -> None:
                n = next(counter)
                inbox.acked.clear()
                frame = {
                    "type": "message.send",
                    "to": recipient,
                    "text": f"hi {n}",
                    "txn_id": f"w{n}",
                }
                assert await opened.receive(json.dumps(frame)) is None
                await inbox.acked.wait()

            async def post_call() -> str:
                resp = await client.post(
                    "/api/v1/calls",
                    json={"to": callee, "media": "audio"},
                    headers={"Authorization": f"Bearer {caller}"},
                )
                assert resp.status_code == 201, resp.text
                call_id: str = resp.json()["call_id"]
                return call_id

            async def start_call() -> None:
                # End it (in the call store only: it never rang, so nothing is recorded).
                await services.calls.store.remove(await post_call())

            # The ring path's frame: a caller's call.offer on its socket, and the callee's
            # socket told of the call (call.incoming).
            callee_inbox = _Acks(wanted='{"type":"call.incoming"')
            callee_sock = await services.sockets.open(
                json.dumps({"type": "auth", "token": pop.tokens[3]}), callee_inbox
            )
            caller_sock = await services.sockets.open(
                json.dumps({"type": "auth", "token": caller}), _Acks()
            )
            assert not isinstance(callee_sock, Refused), callee_sock
            assert not isinstance(caller_sock, Refused), caller_sock

            async def offer_call() -> None:
                call_id = await post_call()
                callee_inbox.acked.clear()
                frame = {"type": "call.offer", "call_id": call_id, "sdp": offer_sdp}
                assert await caller_sock.receive(json.dumps(frame)) is None
                await callee_inbox.acked.wait()
                await services.calls.store.remove(call_id)

            async def socket_auth() -> None:
                # What the WebSocket's auth frame costs in the database: the token
                # check, the stream position, and the live-call lookup of device_connected.
                auth = await services.accounts.authenticate(pop.tokens[1])
                await services.stream.position(auth.user.id)
                await services.calls.store.calls_of(auth.user.id)

            async def empty_get() -> None:
                resp = await client.get("/healthz")
                assert resp.status_code == 200

            for name, op in [
                ("POST /api/v1/conversations/{u}/messages (DM send)", send_dm),
                ("message.send on the socket, to its ack (DM send)", send_dm_socket),
                ("POST /api/v1/calls", start_call),
                ("POST /api/v1/calls, then call.offer on the socket", offer_call),
                ("WebSocket auth (database part)", socket_auth),
                ("GET /healthz (framework floor)", empty_get),
            ]:
                for _ in range(5):
                    await op()
                seen.clear()
                await op()
                one = dict(seen)
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(repeats):
                    await op()
                cpu = (time.process_time() - cpu0) / repeats
                wall = (time.perf_counter() - wall0) / repeats
                rows.append({"op": name, "statements": one, "cpu": cpu, "wall": wall})
            for sock in (opened, caller_sock, callee_sock):
                await services.sockets.closed(sock)
    return rows


class _Acks:
    """The socket service's transport, in place of a WebSocket: notes each frame that
    starts with ``wanted`` (an ack, by default)."""

    def __init__(self, wanted: str = '{"type":"message.ack"') -> None:
        self.acked = asyncio.Event()
        self._wanted = wanted

    async def send_text(self, data: str) -> None:
        if data.startswith(self._wanted):
            self.acked.set()

    async def close(self, code: int, reason: str) -> None:
        pass


def statements(db_url: str | None = None, repeats: int = 200) -> list[Table]:
    with tempfile.TemporaryDirectory(prefix="ringfence-bench-stmts.") as tmp:
        url = db_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        # uvloop, as `ringfence serve` runs (uvicorn picks it when installed).
        from bench.scenarios import ring_offer_sdp  # it imports this module

        # Made before the loop starts: aiortc gathers on its own loop.
        sdp = ring_offer_sdp()
        rows = uvloop.run(_measure(url, Path(tmp), repeats, sdp))
    backend = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    t = Table(
        f"SQL statements and server CPU per operation, in-process ({backend})",
        ["operation", "statements", "of which", "CPU ms/op", "wall ms/op"],
    )
    for row in rows:
        kinds = row["statements"]
        total = sum(v for k, v in kinds.items() if k != "COMMIT")
        detail = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        t.add(
            row["op"], total, detail or "-", f"{row['cpu'] * 1000:.2f}", f"{row['wall'] * 1000:.2f}"
        )
    t.notes.append(
        f"{repeats} sequential operations each, after 5 warm-up ones; the app in this process "
        "on uvloop, over httpx's ASGI transport (no sockets); CPU includes aiosqlite's "
        "thread and the httpx client (≤ the /healthz row); message.send: the socket "
        "service's frame handling and its ack, without the WebSocket protocol; call.offer: "
        "the frame on the caller's socket until the callee's socket is sent call.incoming "
        "(its cost is this row less the POST /api/v1/calls row)"
    )
    return [t]
