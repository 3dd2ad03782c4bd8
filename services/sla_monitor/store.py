"""Clocks in MongoDB, keyed `<ticket>:<metric>`, with their partition and due time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING, UpdateOne

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.sla_monitor.domain import Clock
    from shared.mongo import Document


class ClockStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.clocks: AsyncCollection[Document] = db["clocks"]

    async def ensure_indexes(self) -> None:
        await self.clocks.create_index([("partition", ASCENDING), ("due_at", ASCENDING)])
        await self.clocks.create_index([("ticket_id", ASCENDING)])

    async def start_clocks(self, clocks: Sequence[Clock]) -> None:
        """Idempotent: a clock that exists is left as it is (redelivered events)."""
        if not clocks:
            return
        await self.clocks.bulk_write(
            [
                UpdateOne(
                    {"_id": clock.key},
                    {
                        "$setOnInsert": {
                            "ticket_id": clock.ticket_id,
                            "metric": clock.metric.value,
                            "priority": clock.priority.value,
                            "started_at": clock.started_at,
                            "target_s": clock.target.total_seconds(),
                            "due_at": clock.deadline,
                            "partition": clock.partition,
                            "state": "running",
                        }
                    },
                    upsert=True,
                )
                for clock in clocks
            ],
            ordered=False,
        )

    async def for_ticket(self, ticket_id: str) -> list[Document]:
        return await self.clocks.find({"ticket_id": ticket_id}).to_list()
