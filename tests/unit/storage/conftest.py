"""The storage tests' database: started (migrated) on the run's backend, closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ringfence.storage.database import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    try:
        yield database
    finally:
        await database.close()
