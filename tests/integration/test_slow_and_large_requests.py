"""A real ``ringfence serve`` under oversized and slow requests, sent through raw sockets.

The issue's measurement: a 250 MB JSON body with no token was read and parsed in full
before the 401, and the server's memory went from 493 to 923 MB. Here the same body
is refused with 413 (by its Content-Length without reading it; chunked, after the
first 64 KiB), and the server's peak resident memory (``VmHWM``) is checked to stay
within a few MiB of what it was before. Slow heads (slowloris), huge heads and many
connections from one address are bounded too. Timeouts are short here so that the
tests are quick; no assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import PG_URL
from tests.integration.test_serve_process import server_env
from tests.serve import ServeProcess

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
BIG = 250 * 1000 * 1000  # the "250 MB"
# What the server may grow by while refusing a 250 MB body: its read buffers and the
# refusal, not the body. Before the fix it grew by hundreds of MiB.
GROWTH_LIMIT = 16 * MIB


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


class Serve(ServeProcess):
    def __init__(self, tmp_path: Path, database_url: str | None, **settings: str) -> None:
        args = ["--data-dir", str(tmp_path / "data")]
        if database_url:
            args += ["--database-url", database_url]
        env = server_env(**{f"RINGFENCE_{k.upper()}": v for k, v in settings.items()})
        super().__init__("serve", tmp_path / "serve.log", env, args)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, database_url: str, **settings: str) -> AsyncIterator[Serve]:
    server = Serve(tmp_path, database_url if PG_URL else None, **settings)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def read_response(reader: asyncio.StreamReader, timeout: float = 30) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            data += chunk
    return data


async def push(writer: asyncio.StreamWriter, total: int, chunked: bool) -> int:
    """Send up to ``total`` body bytes as fast as the server takes them; returns how
    many it took before it closed the connection."""
    block = b"a" * MIB
    sent = 0
    try:
        while sent < total:
            piece = block[: total - sent]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    return sent


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


async def big_login(serve: Serve, *, chunked: bool) -> tuple[bytes, int]:
    """POST a 250 MB login (no token) the way an attacker would: headers, then the body
    at full speed, reading the answer meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
    start = b'{"username": "alice", "password": "'
    if chunked:
        length, start = b"transfer-encoding: chunked", b"%x\r\n%s\r\n" % (len(start), start)
    else:
        length = b"content-length: %d" % (len(start) + BIG)
    writer.write(
        b"POST /api/v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + length
        + b"\r\n\r\n"
        + start
    )
    answer = asyncio.ensure_future(read_response(reader))
    sent = await push(writer, BIG, chunked)
    response = await answer
    await close(writer)
    return response, sent


async def test_a_250_mb_body_is_refused_without_the_server_holding_it(
    tmp_path: Path, database_url: str
) -> None:
    async with serving(tmp_path, database_url) as serve:
        before = memory_kib(serve.pid)
        for chunked in (False, True):
            response, sent = await big_login(serve, chunked=chunked)
            # The refusal, when it got through before the connection was reset (the
            # server closes while the client is still sending: a reset may overtake it).
            if response:
                assert status_of(response) == 413, response[:300]
                assert b'"error":"payload_too_large"' in response
            assert sent < BIG, "the server read the whole body"
        after = memory_kib(serve.pid)
        growth = (after["VmHWM"] - before["VmRSS"]) * 1024
        print(f"\nserver memory (KiB) before: {before}; after two 250 MB bodies: {after}")
        assert growth < GROWTH_LIMIT, (before, after)


async def test_the_refusal_is_readable_when_the_client_waits_for_it(
    tmp_path: Path, database_url: str
) -> None:
    async with serving(tmp_path, database_url) as serve:
        for length in (b"content-length: %d" % BIG, b"transfer-encoding: chunked"):
            reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
            writer.write(b"POST /api/v1/accounts HTTP/1.1\r\nhost: x\r\n" + length + b"\r\n\r\n")
            if b"chunked" in length:  # it has to see more than the cap to know
                await push(writer, 128 * 1024, chunked=True)
            response = await read_response(reader)
            await close(writer)
            assert status_of(response) == 413
            assert b"connection: close" in response.lower()


async def test_slow_heads_are_cut_off(tmp_path: Path, database_url: str) -> None:
    async with serving(tmp_path, database_url, header_read_timeout_s="1") as serve:
        # A connection that never says anything is closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        assert await read_response(reader) == b""
        await close(writer)

        # A head trickled a line at a time is answered 408 and closed, though every
        # line arrives well within the time the previous one allows.
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        answer = asyncio.ensure_future(read_response(reader))
        with contextlib.suppress(ConnectionError):
            for _ in range(60):
                if answer.done():
                    break
                writer.write(b"x-slow: 1\r\n")
                await writer.drain()
                await asyncio.sleep(0.25)
        response = await answer
        await close(writer)
        assert status_of(response) == 408
        assert b'"error":"request_timeout"' in response

        # Blank lines, which start no request, do not keep a connection open either.
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        answer = asyncio.ensure_future(read_response(reader))
        with contextlib.suppress(ConnectionError):
            for _ in range(60):
                if answer.done():
                    break
                writer.write(b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.25)
        assert answer.done()
        await close(writer)

        # A well-behaved keep-alive connection serves request after request.
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        await close(writer)


async def test_a_slow_body_is_cut_off(tmp_path: Path, database_url: str) -> None:
    async with serving(tmp_path, database_url, body_read_timeout_s="1") as serve:
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        writer.write(
            b"POST /api/v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 1000\r\n\r\n{"username": '
        )
        answer = asyncio.ensure_future(read_response(reader))
        with contextlib.suppress(ConnectionError):
            for _ in range(60):
                if answer.done():
                    break
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.25)
        response = await answer
        await close(writer)
        assert status_of(response) == 408
        assert b'"error":"request_timeout"' in response


async def test_a_huge_head_is_refused(tmp_path: Path, database_url: str) -> None:
    async with serving(tmp_path, database_url) as serve:
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        answer = asyncio.ensure_future(read_response(reader))
        line = b"x-big: " + b"a" * 1000 + b"\r\n"
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 20 * MIB and not answer.done():
                writer.write(line * 64)
                await writer.drain()
                sent += len(line) * 64
        response = await answer
        await close(writer)
        assert sent < 20 * MIB
        if response:  # unless a reset overtook it
            assert status_of(response) == 431


async def test_connections_per_address_are_capped(tmp_path: Path, database_url: str) -> None:
    # Loopback is a trusted proxy by default (it carries everyone's connections); here
    # it is an ordinary client.
    async with serving(
        tmp_path,
        database_url,
        trusted_proxies="192.0.2.1",
        max_connections_per_address="4",
        header_read_timeout_s="30",
    ) as serve:
        held = [await asyncio.open_connection("127.0.0.1", serve.port) for _ in range(4)]
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        response = await read_response(reader)
        await close(writer)
        assert status_of(response) == 503
        assert b'"error":"too_many_connections"' in response
        # One of them goes away: there is room again.
        await close(held.pop()[1])
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert status_of(await read_response(reader)) == 200
        await close(writer)
        for _, held_writer in held:
            await close(held_writer)


async def test_a_websocket_outlives_the_head_deadline(tmp_path: Path, database_url: str) -> None:
    async with serving(tmp_path, database_url, header_read_timeout_s="1") as serve:
        async with httpx.AsyncClient(base_url=serve.url) as client:
            resp = await client.post(
                "/api/v1/accounts", json={"username": "alice", "password": "correct horse 1"}
            )
            token = resp.json()["token"]
        async with websockets.connect(serve.ws_url, compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            await asyncio.sleep(2.5)  # well past the head deadline of its upgrade request
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"
