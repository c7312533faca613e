"""Shared fixtures: a database (SQLite or PostgreSQL), the app in-process, a live server.

The whole suite runs once per backend. ``RINGFENCE_TEST_DATABASE_URL`` names a
PostgreSQL server (scripts/test starts a throwaway one); each test then gets a fresh
database of its own on it. Without it, each test gets a fresh SQLite file.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from ringfence.app import create_app, server_config
from ringfence.clock import Clock
from ringfence.config import Settings
from tests.turn_fixture import coturn  # noqa: F401 - one real coturn for the whole session

PG_URL = os.environ.get("RINGFENCE_TEST_DATABASE_URL", "")
# A Redis server for the tests of the Redis backend and of several nodes (scripts/test
# starts a throwaway one). With RINGFENCE_TEST_BUS=redis as well, every test's server
# uses it instead of the in-memory backend, under a key prefix of the test's own.
REDIS_URL = os.environ.get("RINGFENCE_TEST_REDIS_URL", "")
ALL_ON_REDIS = bool(REDIS_URL) and os.environ.get("RINGFENCE_TEST_BUS") == "redis"


def pytest_report_header() -> str:
    bus = "redis" if ALL_ON_REDIS else "in-memory"
    return f"ringfence database backend: {'postgresql' if PG_URL else 'sqlite'}; bus: {bus}"


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    if not PG_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'ringfence.db'}"
        return
    import asyncpg

    base = make_url(PG_URL)
    name = f"rf_test_{secrets.token_hex(6)}"
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield base.set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def behind_the_servers_back(
    settings: Settings, *statements: tuple[str, dict[str, Any]]
) -> None:
    """Change the database as another process would (``ringfence admin`` without Redis,
    or a second node whose announcement was lost): in one transaction, of its own
    engine, telling the server nothing."""
    engine = create_async_engine(settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "port": 0,
        # Tests that need media start a real coturn (tests/integration); the others
        # only need credentials minted for some relay, so they name one.
        "turn_urls": ["turn:127.0.0.1:3478?transport=udp"],
        "turn_secret": "unit-test-shared-secret-0123456789",
    }
    if ALL_ON_REDIS:
        values["redis_url"] = REDIS_URL
        values["redis_prefix"] = f"rf-test-{secrets.token_hex(6)}:"
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


class Api:
    """A thin test client: register users and call the API with their tokens."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def register(self, username: str, password: str = "correct horse 1") -> str:
        resp = await self.client.post(
            "/api/v1/accounts", json={"username": username, "password": password}
        )
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token

    async def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def send(
        self, token: str, to: str, text: str, txn_id: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"text": text}
        if txn_id is not None:
            body["txn_id"] = txn_id
        return await self.call("POST", f"/api/v1/conversations/{to}/messages", token, json=body)


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[tuple[Api, Any]]:
    """The app in-process over httpx's ASGI transport, with its lifespan running: a
    client, and the app's services."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client), app.state.services


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The app in-process over httpx's ASGI transport, with its lifespan running."""
    async with in_process(settings) as (client, _services):
        yield client


SHUTDOWN_LIMIT_S = 60.0


def stacks_of_tasks() -> str:
    """Where each task of this event loop is waiting, for a report of a hang."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(limit=12, file=out)
    return out.getvalue()


class LiveServer:
    """A real uvicorn server on 127.0.0.1, in this test's event loop."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.app = create_app(settings, clock)
        self.server = uvicorn.Server(server_config(self.app, settings))
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def __aenter__(self) -> LiveServer:
        self.server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self.server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_LIMIT_S
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server stopped during start-up")
            if loop.time() > deadline:
                raise AssertionError(
                    f"the server did not start within {SHUTDOWN_LIMIT_S:g} s; its tasks:\n"
                    + stacks_of_tasks()
                )
            await asyncio.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is None:
            return
        # uvicorn gives connections 5 s and then runs the lifespan shutdown; a shutdown
        # that takes far longer is a bug, so say where every task is stuck instead of
        # hanging until pytest's timeout.
        done, _ = await asyncio.wait({self._task}, timeout=SHUTDOWN_LIMIT_S)
        if not done:
            raise AssertionError(
                f"the server did not shut down within {SHUTDOWN_LIMIT_S:g} s; its tasks:\n"
                + stacks_of_tasks()
            )
        self._task.result()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/events"

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[tuple[LiveServer, Api]]:
    async with LiveServer(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        yield server, Api(client)


class Socket:
    """A WebSocket client that has authenticated; ``ready`` holds the server's reply."""

    def __init__(self, ws: websockets.ClientConnection, ready: dict[str, Any]) -> None:
        self.ws = ws
        self.ready = ready

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        return data

    async def recv_type(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next event of this type, skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.recv(max(0.01, deadline - loop.time()))
            if event.get("type") == type_:
                return event

    async def nothing_within(self, seconds: float) -> None:
        """Assert that no event arrives in the given time."""
        try:
            event = await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event: {event!r}")

    async def close(self) -> None:
        await self.ws.close()


async def open_socket(
    ws_url: str, token: str, since: int | None = None, device_id: str | None = None
) -> Socket:
    ws = await websockets.connect(ws_url, compression=None, max_size=2**22)
    frame: dict[str, Any] = {"type": "auth", "token": token}
    if since is not None:
        frame["since"] = since
    if device_id is not None:
        frame["device_id"] = device_id
    await ws.send(json.dumps(frame))
    ready = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ready["type"] == "ready", ready
    return Socket(ws, ready)


class DbPeek:
    """A second, independent connection to the test's database: what it sees was
    committed, and ``dump`` shows everything stored (to prove what is *not* stored)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(url)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def dump(self) -> str:
        """Every row of every table, as text."""
        from sqlalchemy import inspect

        async with self.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        lines = []
        for table in tables:
            lines += [f"{table}: {row!r}" for row in await self.rows(f'SELECT * FROM "{table}"')]
        return "\n".join(lines)

    async def close(self) -> None:
        await self.engine.dispose()


@pytest.fixture
async def db_peek(database_url: str) -> AsyncIterator[DbPeek]:
    peek = DbPeek(database_url)
    yield peek
    await peek.close()
