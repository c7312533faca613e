"""The data dir is 0700 and the SQLite database, its -wal and its -shm are 0600, after a
real start of ``ringfence serve`` as the README runs it (the default, relative data dir)
under the usual umask 022; and an older install's 0755 dir and 0644 files are closed
up at its next start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL
from tests.integration.test_serve_process import server_env
from tests.serve import ServeProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(PG_URL), reason="SQLite's files: the default database"),
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


async def start_and_write(tmp_path: Path, username: str = "alice") -> Path:
    """``ringfence serve`` with no --data-dir in ``tmp_path``; sign up one user so that
    the WAL has something in it; stop. Returns the data dir."""
    serve = ServeProcess("serve", tmp_path / "serve.log", server_env(), [], cwd=tmp_path)
    with umask(0o022):  # what the child inherits
        await serve.start()
    try:
        async with httpx.AsyncClient(base_url=serve.url) as client:
            resp = await client.post(
                "/api/v1/accounts", json={"username": username, "password": "correct horse 1"}
            )
            assert resp.status_code == 201
        data = tmp_path / "ringfence-data"
        files = {p.name: oct(mode(p)) for p in data.iterdir()}
        assert {"ringfence.db", "ringfence.db-wal", "ringfence.db-shm"} <= set(files), files
        check_modes(data)  # while it runs, with -wal and -shm in use
    finally:
        serve.stop()
    return data


def check_modes(data: Path) -> None:
    assert mode(data) == 0o700
    for name in ("ringfence.db", "ringfence.db-wal", "ringfence.db-shm"):
        if (data / name).exists():
            assert mode(data / name) == 0o600, (name, oct(mode(data / name)))


async def test_a_fresh_data_dir_is_private(tmp_path: Path) -> None:
    data = await start_and_write(tmp_path)
    check_modes(data)


async def test_an_older_install_is_closed_up_at_its_next_start(tmp_path: Path) -> None:
    data = await start_and_write(tmp_path)
    # As an earlier Ringfence left it.
    data.chmod(0o755)
    for name in ("ringfence.db", "ringfence.db-wal", "ringfence.db-shm"):
        if (data / name).exists():
            (data / name).chmod(0o644)
    await start_and_write(tmp_path, "bob")
    check_modes(data)
