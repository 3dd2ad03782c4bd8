"""The MongoDB ticket repository keeps the port's contract (as the in-memory one does);
pending events are read from the outboxes, as the relay reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from services.intake.settings import IntakeSettings
from services.intake.store import TicketStore
from tests.contract.harnesses import MongoHarness, fresh_database
from tests.contract.ticket_repository import Harness, TicketRepositoryContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def harness(make_settings: Any) -> AsyncIterator[Harness]:
    async with fresh_database(make_settings(IntakeSettings), "intake") as db:
        store = TicketStore(db)
        await store.ensure_indexes()
        yield MongoHarness(store, store.tickets)


class TestMongoTicketRepository(TicketRepositoryContract):
    pass
