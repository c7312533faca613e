"""Fixtures for several nodes: a Redis server a test may kill and restart, and real
``ringfence serve`` processes sharing it, one PostgreSQL database and a real coturn."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import PG_URL, Api
from tests.serve import ServeProcess, free_port, until
from tests.turn_fixture import Coturn

__all__ = ["Cluster", "Node", "RedisServer"]


class RedisServer:
    """A redis-server of the test's own, without persistence, on a fixed port so that a
    restart comes back at the same address."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.workdir)]
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", *args, "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = Redis.from_url(self.url)
        try:

            async def answers() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"redis-server exited with {self.proc.returncode}")
                try:
                    return bool(await client.ping())
                except (RedisError, OSError):
                    return False

            await until(answers, 20, "redis-server to answer", step=0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL: everything it held is gone, as after a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.asynccontextmanager
async def running_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A RedisServer of the test's own in ``tmp_path/redis``, killed afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    await server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path) as server:
        yield server


class Node(ServeProcess):
    """One node of a cluster, with an HTTP client of its own."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(
            name,
            workdir / "serve.log",
            {**env, "RINGFENCE_DATA_DIR": str(workdir / "data")},
            [],
        )
        self.workdir = workdir
        self.client = httpx.AsyncClient(base_url=self.url, timeout=20)
        self.api = Api(self.client)


class Cluster:
    """Nodes sharing one PostgreSQL database, one Redis and one coturn."""

    def __init__(self, tmp_path: Path, env: dict[str, str], redis: RedisServer) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.redis = redis
        self.prefix = env["RINGFENCE_REDIS_PREFIX"]
        self.nodes: list[Node] = []

    async def start_node(self) -> Node:
        name = f"node{len(self.nodes) + 1}"
        workdir = self.tmp_path / name
        workdir.mkdir()
        node = Node(name, workdir, self.env)
        self.nodes.append(node)
        await node.start()  # one at a time: the first applies the migrations
        return node

    async def redis_keys(self, pattern: str) -> list[str]:
        """Keys of this cluster matching ``pattern`` (after the prefix)."""
        client = Redis.from_url(self.redis.url)
        try:
            return sorted(
                [key.decode() async for key in client.scan_iter(match=self.prefix + pattern)]
            )
        finally:
            await client.aclose()

    async def close(self) -> None:
        for node in self.nodes:
            node.stop()
            await node.client.aclose()


@pytest.fixture
async def cluster_factory(
    tmp_path: Path, database_url: str, coturn: Coturn, redis_server: RedisServer
) -> AsyncIterator[Callable[..., Cluster]]:
    """Builds a cluster with the given settings; its nodes are stopped after the test."""
    assert PG_URL, "several nodes need PostgreSQL: an SQLite database belongs to one node"
    clusters: list[Cluster] = []

    def make(**settings: str | float) -> Cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
        env.update(
            RINGFENCE_DATABASE_URL=database_url,
            RINGFENCE_REDIS_URL=redis_server.url,
            RINGFENCE_REDIS_PREFIX=f"rf-scale-{secrets.token_hex(4)}:",
            RINGFENCE_TURN_URLS=",".join(coturn.urls),
            RINGFENCE_TURN_SECRET=coturn.secret,
            RINGFENCE_LOG_LEVEL="info",
        )
        env.update({f"RINGFENCE_{k.upper()}": str(v) for k, v in settings.items()})
        cluster = Cluster(tmp_path, env, redis_server)
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            await cluster.close()
