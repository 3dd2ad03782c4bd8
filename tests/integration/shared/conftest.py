"""Fixtures of the shared-mechanics integration tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pymongo.asynchronous.database import AsyncDatabase

    from shared.infra.modes import Infra


@pytest.fixture
async def scratch_db(infra: Infra, uid: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A database of this test's own on the session's MongoDB, dropped after it."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    try:
        yield client[f"t{uid}"]
    finally:
        await client.drop_database(f"t{uid}")
        await client.close()
