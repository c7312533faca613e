"""Schemathesis against the OpenAPI schema, with a bounded budget: generated requests,
valid and invalid, must never get a 5xx or a response that breaks the schema.

The server runs for real (uvicorn, the configured database) on an event loop in a
thread, so schemathesis's synchronous client can talk to it over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25


class ThreadedServer:
    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.live.__aenter__(), self.loop).result(60)
        return self.live

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.live.__aexit__(None, None, None), self.loop).result(
            60
        )
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import os

    pg = os.environ.get("RINGFENCE_TEST_DATABASE_URL", "")
    tmp = tmp_path_factory.mktemp("fuzz")
    # One database for the module; on PostgreSQL a throwaway schema is not needed since
    # the fuzzer only ever creates its own rows.
    url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}" if not pg else _fresh_pg_database(pg)
    live = LiveServer(make_settings(Path(tmp), url, password_hash_concurrency=2))
    with ThreadedServer(live) as server:
        with httpx.Client(base_url=server.url) as client:
            resp = client.post(
                "/api/v1/accounts", json={"username": "fuzzer", "password": "fuzzing-pass-1"}
            )
            assert resp.status_code == 201, resp.text
            token = resp.json()["token"]
            # Someone to talk to, so message and call routes reach their deeper rules.
            client.post(
                "/api/v1/accounts", json={"username": "target", "password": "target-pass-1"}
            )
        yield {"url": server.url, "token": token}


def _fresh_pg_database(base: str) -> str:
    import secrets

    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"rf_fuzz_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)


def test_api_never_fails_on_generated_input(fuzz_target: dict[str, Any]) -> None:
    """Every operation, with valid (positive) and invalid (negative) data: no 5xx, no
    response that breaks the schema, valid data accepted, invalid data refused."""
    api = schemathesis.openapi.from_url(f"{fuzz_target['url']}/api/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_target['token']}"}
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15, "the schema lost operations"
    for operation, mode in itertools.product(operations, list(GenerationMode)):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers)

        try:
            run()
        except Unsatisfiable:
            # An operation with no inputs (GET /healthz) has no invalid data to send.
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # collect all operations' failures, then report
            failures.append(f"{operation.label} ({mode.value} data): {exc}")
    assert not failures, "\n\n".join(failures)
