"""Request bodies are bounded before anything reads them: a body over ``max_body_bytes``
gets 413 with a JSON body, refused by its Content-Length without reading a byte, or
counted as it arrives when chunked; a body that stops arriving gets 408.

These drive the ASGI app directly, so that the test sees exactly how much of the body
the server asked for. tests/integration/test_slow_and_large_requests.py sends the same
through a real socket to ``ringfence serve`` and watches its memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ringfence.app import create_app
from tests.conftest import Api, make_settings

CAP = 4096


@dataclass
class Exchange:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks_read: int = 0  # http.request messages the app pulled through receive()
    bytes_read: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


async def drive(
    app: FastAPI,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    chunks: Iterator[bytes],
    *,
    stall: bool = False,
) -> Exchange:
    """One HTTP request through the ASGI app; ``chunks`` is pulled only as the app asks
    for it. With ``stall`` the body stops arriving after the given chunks."""
    out = Exchange()
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if not pending:
            if stall:
                await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        out.chunks_read += 1
        out.bytes_read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out.status = message["status"]
            out.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("198.51.100.7", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    await app(scope, receive, send)
    return out


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(tmp_path, database_url, max_body_bytes=CAP, body_read_timeout_s=0.2)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


JSON = (b"content-type", b"application/json")


def login_body(size: int) -> bytes:
    """A login of exactly ``size`` bytes (padded with JSON whitespace)."""
    body = json.dumps({"username": "alice", "password": "wrong password"}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def assert_refused(out: Exchange, status: int, code: str) -> None:
    assert out.status == status, (out.status, out.body[:200])
    assert out.headers["content-type"] == "application/json"
    assert out.json()["error"] == code
    assert out.headers["connection"] == "close"  # the rest of the body is not read
    assert "content-security-policy" in out.headers  # the usual headers, as for any answer


async def test_a_declared_large_body_is_refused_before_any_byte_is_read(app: FastAPI) -> None:
    size = 250 * 1024 * 1024
    out = await drive(
        app,
        "POST",
        "/api/v1/sessions",
        [JSON, (b"content-length", str(size).encode())],
        iter([b"a" * 65536] * 8),
    )
    assert_refused(out, 413, "payload_too_large")
    assert str(CAP) in out.json()["detail"]
    assert out.chunks_read == 0


async def test_a_chunked_body_is_counted_and_refused_once_it_passes_the_cap(
    app: FastAPI,
) -> None:
    # No Content-Length: the server only learns the size by reading.
    out = await drive(app, "POST", "/api/v1/sessions", [JSON], iter([b"{" + b" " * 1023] * 1000))
    assert_refused(out, 413, "payload_too_large")
    assert out.bytes_read <= CAP + 1024  # it stopped at the first chunk past the cap


async def test_the_cap_holds_for_every_route_not_only_json_ones(app: FastAPI) -> None:
    for method, path in (("POST", "/api/v1/nope"), ("PUT", "/"), ("POST", "/healthz")):
        out = await drive(
            app, method, path, [(b"content-length", str(CAP + 1).encode())], iter([b"a"])
        )
        assert_refused(out, 413, "payload_too_large")
        assert out.chunks_read == 0


async def test_a_body_up_to_the_cap_is_served_as_before(app: FastAPI) -> None:
    body = login_body(CAP)
    assert len(body) == CAP
    out = await drive(
        app,
        "POST",
        "/api/v1/sessions",
        [JSON, (b"content-length", str(CAP).encode())],
        iter([body]),
    )
    # Read and answered by the login route (unknown user), not by the limit.
    assert out.status == 401, out.body
    assert out.json()["error"] == "invalid_credentials"


async def test_a_nonsense_content_length_is_a_json_400(app: FastAPI) -> None:
    for value in (b"abc", b"-1", b"1e9", b"12, 13"):
        out = await drive(
            app, "POST", "/api/v1/sessions", [JSON, (b"content-length", value)], iter([b"{}"])
        )
        assert_refused(out, 400, "bad_request")
        assert out.chunks_read == 0


async def test_a_body_that_stops_arriving_is_a_json_408(app: FastAPI) -> None:
    out = await drive(
        app,
        "POST",
        "/api/v1/sessions",
        [JSON, (b"content-length", b"100")],
        iter([b'{"username": "al']),
        stall=True,
    )
    assert_refused(out, 408, "request_timeout")


async def test_the_default_cap_holds_the_largest_valid_message(api: Api) -> None:
    """64 KiB: the largest body a client needs is a 10,000-character message, at most
    40,000 bytes of UTF-8 (as browsers and httpx send JSON)."""
    alice = await api.register("alice")
    await api.register("bob")
    text = "\U0001f600" * 10_000
    resp = await api.send(alice, "bob", text)
    assert resp.status_code == 201, resp.text
    assert len(resp.request.content) > 40_000
