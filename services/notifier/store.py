"""Deliveries: one document per (event, channel, recipient), the exactly-once guard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING, UpdateOne

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.notifier.domain import Email
    from shared.mongo import Document


class DeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deliveries: AsyncCollection[Document] = db["deliveries"]

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index([("ticket_id", ASCENDING)])
        await self.deliveries.create_index([("state", ASCENDING)])

    async def claim(self, emails: Sequence[Email], now: datetime) -> set[str]:
        """Record the planned deliveries; return the keys not yet sent (to send now)."""
        if not emails:
            return set()
        await self.deliveries.bulk_write(
            [
                UpdateOne(
                    {"_id": e.delivery_key},
                    {
                        "$setOnInsert": {
                            "ticket_id": e.ticket_id,
                            "cause_event_id": e.cause_event_id,
                            "channel": "email",
                            "template": e.template,
                            "state": "pending",
                            "created_at": now,
                        }
                    },
                    upsert=True,
                )
                for e in emails
            ],
            ordered=False,
        )
        keys = [e.delivery_key for e in emails]
        done = await self.deliveries.find(
            {"_id": {"$in": keys}, "state": {"$in": ["sent", "failed"]}}, {"_id": 1}
        ).to_list()
        return set(keys) - {d["_id"] for d in done}

    async def finish(self, outcomes: Sequence[tuple[str, str, str | None]], now: datetime) -> None:
        """(key, state, error) for each attempted delivery, in one write."""
        if outcomes:
            await self.deliveries.bulk_write(
                [
                    UpdateOne(
                        {"_id": key}, {"$set": {"state": state, "error": error, "done_at": now}}
                    )
                    for key, state, error in outcomes
                ],
                ordered=False,
            )

    async def for_ticket(self, ticket_id: str) -> list[Document]:
        return await self.deliveries.find({"ticket_id": ticket_id}).to_list()
