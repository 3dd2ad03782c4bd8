"""The MongoDB notifier repository keeps the port's contract (as the in-memory one does);
pending outcome events are read from the deliveries' outboxes, as the relay reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from services.notifier.settings import NotifierSettings
from services.notifier.store import NotifierStore
from tests.contract.harnesses import MongoHarness, fresh_database
from tests.contract.notifier_repository import Harness, NotifierRepositoryContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def harness(make_settings: Any) -> AsyncIterator[Harness]:
    async with fresh_database(make_settings(NotifierSettings), "notifier") as db:
        store = NotifierStore(db)
        await store.ensure_indexes()
        yield MongoHarness(store, store.deliveries)


class TestMongoNotifierRepository(NotifierRepositoryContract):
    pass
