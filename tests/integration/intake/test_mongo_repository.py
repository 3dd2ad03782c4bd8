"""The MongoDB ticket repository keeps the port's contract (as the in-memory one does);
pending events are read from the tickets' outboxes, as the relay reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from services.intake.settings import IntakeSettings
from services.intake.store import TicketStore
from shared.events import parse_event
from shared.mongo import make_client, service_database
from shared.outbox import OUTBOX, OUTBOX_SINCE
from tests.contract.ticket_repository import Harness, TicketRepositoryContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from shared.events import Outgoing


@dataclass(frozen=True)
class MongoHarness:
    repository: TicketStore

    async def pending(self) -> list[Outgoing]:
        """Oldest document first, each outbox in its order."""
        docs = (
            await self.repository.tickets.find({OUTBOX_SINCE: {"$exists": True}}, {OUTBOX: 1})
            .sort([(OUTBOX_SINCE, 1), ("_id", 1)])
            .to_list()
        )
        return [
            (entry["topic"], parse_event(bytes(entry["value"])))
            for doc in docs
            for entry in doc.get(OUTBOX) or []
        ]


@pytest.fixture
async def harness(make_settings: Any) -> AsyncIterator[Harness]:
    settings: IntakeSettings = make_settings(IntakeSettings)
    client = make_client(settings)
    db = service_database(client, settings, "intake")
    store = TicketStore(db)
    await store.ensure_indexes()
    try:
        yield MongoHarness(store)
    finally:
        await client.drop_database(db.name)
        await client.close()


class TestMongoTicketRepository(TicketRepositoryContract):
    pass
