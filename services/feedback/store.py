"""Solves seen by feedback: one document per solve event (what a survey will rate)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING, UpdateOne

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.mongo import Document


class SolveStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.solves: AsyncCollection[Document] = db["solves"]

    async def ensure_indexes(self) -> None:
        await self.solves.create_index([("ticket_id", ASCENDING)])

    async def record(self, solves: Sequence[Document]) -> None:
        """Keyed by the solve event's id, so a redelivered event is a no-op."""
        if solves:
            await self.solves.bulk_write(
                [UpdateOne({"_id": s["_id"]}, {"$setOnInsert": s}, upsert=True) for s in solves],
                ordered=False,
            )

    async def for_ticket(self, ticket_id: str) -> list[Document]:
        return await self.solves.find({"ticket_id": ticket_id}).to_list()
