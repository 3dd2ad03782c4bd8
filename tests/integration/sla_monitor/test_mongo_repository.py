"""The MongoDB SLA repository keeps the port's contract (as the in-memory one does);
pending events are read from the outboxes, as the relay reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from services.sla_monitor.settings import SlaSettings
from services.sla_monitor.store import SlaStore
from tests.contract.harnesses import MongoHarness, fresh_database
from tests.contract.sla_repository import Harness, SlaRepositoryContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def harness(make_settings: Any) -> AsyncIterator[Harness]:
    async with fresh_database(make_settings(SlaSettings), "sla_monitor") as db:
        store = SlaStore(db)
        await store.ensure_indexes()
        yield MongoHarness(store, store.tickets)


class TestMongoSlaRepository(SlaRepositoryContract):
    pass
