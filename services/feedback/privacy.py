"""Requester data in feedback: export and erasure. Erased surveys keep their scores (CSAT
stays true) but lose who gave them (a pseudonym instead of the requester id), the rating's
comment and the subject; the ticket facts lose the subject."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING

from shared.privacy_export import MAX_RECORDS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pymongo.asynchronous.database import AsyncDatabase

    from shared.events import RequesterErasureRequested
    from shared.mongo import Document


class FeedbackEraser:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._surveys = db["surveys"]
        self._tickets = db["tickets"]

    async def ensure_indexes(self) -> None:
        await self._surveys.create_index([("requester_id", ASCENDING)])

    async def export(self, requester_id: str) -> dict[str, list[Document]]:
        surveys = self._surveys.find({"requester_id": requester_id}).limit(MAX_RECORDS)
        return {"surveys": await surveys.to_list()}

    async def erase(self, request: RequesterErasureRequested) -> Mapping[str, int]:
        mine: Document = (
            {"ticket_id": {"$in": request.ticket_ids}}
            if request.tickets_only
            else {"requester_id": request.requester_id}
        )
        await self._surveys.update_many(
            {**mine, "rating": {"$type": "object"}}, {"$set": {"rating.comment": None}}
        )
        surveys = await self._surveys.update_many(
            mine, {"$set": {"requester_id": request.pseudonym, "subject": None}}
        )
        tickets = await self._tickets.update_many(
            {"_id": {"$in": request.ticket_ids}, "subject": {"$ne": None}},
            {"$set": {"subject": None}},
        )
        return {"surveys": surveys.modified_count, "ticket_facts": tickets.modified_count}
