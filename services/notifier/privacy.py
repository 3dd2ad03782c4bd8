"""Requester data in notifier: export (inbox items, preferences) and erasure. Erasure
deletes the requester's contact and ticket facts, inbox items, preferences, pending digests
and bounce records; delivery records stay (they guard against sending twice) without their
error texts, which may quote an address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING

from shared.privacy_export import MAX_RECORDS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pymongo.asynchronous.database import AsyncDatabase

    from shared.events import RequesterErasureRequested
    from shared.mongo import Document


class NotifierEraser:
    """Works on `NotifierStore`'s documents themselves, not through the repository port:
    an export hands them out as they are stored."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets = db["tickets"]
        self.preferences = db["preferences"]
        self.inbox = db["inbox"]
        self.digests = db["digests"]
        self.bouncing = db["bouncing"]
        self.deliveries = db["deliveries"]

    async def ensure_indexes(self) -> None:
        await self.inbox.create_index([("ticket_id", ASCENDING)])  # retention

    async def export(self, requester_id: str) -> dict[str, list[Document]]:
        s = self
        inbox = s.inbox.find({"requester_id": requester_id}).limit(MAX_RECORDS)
        preferences = s.preferences.find({"_id": requester_id})
        return {"inbox": await inbox.to_list(), "preferences": await preferences.to_list()}

    async def erase(self, request: RequesterErasureRequested) -> Mapping[str, int]:
        s = self
        tickets = {"_id": {"$in": request.ticket_ids}}
        emails = (
            set()
            if request.tickets_only
            else {  # a bounce is the address's, not a ticket's
                str(doc["requester"]["email"]).lower()
                async for doc in s.tickets.find(tickets, {"requester.email": 1})
                if isinstance(doc.get("requester"), dict) and doc["requester"].get("email")
            }
        )
        facts = await s.tickets.delete_many(tickets)
        if request.tickets_only:  # retention: these tickets' items, not the person's settings
            inbox = await s.inbox.delete_many({"ticket_id": {"$in": request.ticket_ids}})
            preferences = 0
        else:
            inbox = await s.inbox.delete_many({"requester_id": request.requester_id})
            preferences = (
                await s.preferences.delete_many({"_id": request.requester_id})
            ).deleted_count
        digests = await s.digests.delete_many({"ticket_id": {"$in": request.ticket_ids}})
        bouncing = await s.bouncing.delete_many({"_id": {"$in": sorted(emails)}})
        deliveries = await s.deliveries.update_many(
            {"ticket_id": {"$in": request.ticket_ids}, "error": {"$ne": None}},
            {"$set": {"error": None}},
        )
        return {
            "ticket_facts": facts.deleted_count,
            "inbox_items": inbox.deleted_count,
            "preferences": preferences,
            "digests": digests.deleted_count,
            "bounce_records": bouncing.deleted_count,
            "delivery_errors": deliveries.modified_count,
        }
