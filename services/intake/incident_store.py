"""Incidents in MongoDB (one document each, its events in the same document) and the
queries over tickets that incidents need: the open tickets a scope may link, and the
tickets linked to an incident, page by page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING, UpdateOne

from services.intake.incidents import LINKABLE, Incident, IncidentStatus, IncidentUpdate
from services.intake.store import HIDDEN
from services.intake.store import from_document as ticket_from_document
from shared.events import IncidentScope, IncidentText
from shared.unit_of_work import Change, VersionedDocuments, append_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.intake.domain import Ticket
    from shared.events import Outgoing
    from shared.mongo import Document

PAGE = 500  # tickets read per round trip when linking, updating, resolving
# Tickets written per round trip. Each write must finish within the driver's timeout
# (`mongo_timeout_ms`, 5 s) even on a loaded database: 500 versioned ticket writes did not
# on SecantusDB during a 2,000-ticket storm, and a timed-out round starts over.
WRITE_CHUNK = 100
# The last incident update a ticket was handed (kept beside the ticket's own fields), so
# a fan-out that is retried resumes with the tickets not yet told.
TOLD = "incident_update_told"


def _text(text: IncidentText) -> Document:
    return text.model_dump(by_alias=True)


def _text_or_none(raw: Document | None) -> IncidentText | None:
    return IncidentText.model_validate(raw) if raw else None


def to_document(incident: Incident) -> Document:
    return {
        "_id": incident.id,
        "title": _text(incident.title),
        "scope": incident.scope.model_dump(mode="python"),
        "status_text": _text(incident.status_text),
        "declared_at": incident.declared_at,
        "declared_by": incident.declared_by,
        "status": incident.status.value,
        "updates": [
            {"id": u.id, "text": _text(u.text), "posted_at": u.posted_at} for u in incident.updates
        ],
        "resolution": _text(incident.resolution) if incident.resolution else None,
        "ticket_outcome": incident.ticket_outcome,
        "resolved_at": incident.resolved_at,
        "version": incident.version,
    }


def from_document(doc: Document) -> Incident:
    return Incident(
        id=doc["_id"],
        title=IncidentText.model_validate(doc["title"]),
        scope=IncidentScope.model_validate(doc["scope"]),
        status_text=IncidentText.model_validate(doc["status_text"]),
        declared_at=doc["declared_at"],
        declared_by=doc["declared_by"],
        status=IncidentStatus(doc["status"]),
        updates=[
            IncidentUpdate(u["id"], IncidentText.model_validate(u["text"]), u["posted_at"])
            for u in doc.get("updates", [])
        ],
        resolution=_text_or_none(doc.get("resolution")),
        ticket_outcome=doc.get("ticket_outcome", "solved"),
        resolved_at=doc.get("resolved_at"),
        version=doc.get("version", 0),
    )


class IncidentStore:
    """The incidents collection, plus the ticket queries incidents make."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.incidents: AsyncCollection[Document] = db["incidents"]
        self.documents = VersionedDocuments(self.incidents)
        self.tickets: AsyncCollection[Document] = db["tickets"]

    async def ensure_indexes(self) -> None:
        await self.incidents.create_index([("status", ASCENDING)])

    async def insert(self, incident: Incident, events: Sequence[Outgoing], now: datetime) -> bool:
        """False when an incident with this id exists (a redelivered declaration)."""
        return not await self.documents.commit([self._change(incident, events, new=True)], now)

    async def get(self, incident_id: str) -> Incident | None:
        doc = await self.incidents.find_one({"_id": incident_id}, HIDDEN)
        return from_document(doc) if doc is not None else None

    async def save(self, incident: Incident, events: Sequence[Outgoing], now: datetime) -> bool:
        """False when someone changed the incident since it was read."""
        if await self.documents.commit([self._change(incident, events)], now):
            return False
        incident.version += 1
        return True

    @staticmethod
    def _change(incident: Incident, events: Sequence[Outgoing], *, new: bool = False) -> Change:
        doc = {**to_document(incident), "swept": False} if new else to_document(incident)
        return Change.of(doc, None if new else incident.version, events)

    async def open_incidents(self) -> list[tuple[Incident, bool]]:
        """Every open incident, and whether its late sweep has run."""
        docs = await self.incidents.find({"status": IncidentStatus.open.value}, HIDDEN).to_list()
        return [(from_document(d), bool(d.get("swept"))) for d in docs]

    async def mark_swept(self, incident_id: str) -> None:
        await self.incidents.update_one({"_id": incident_id}, {"$set": {"swept": True}})

    async def recent(self, limit: int) -> list[Incident]:
        docs = await self.incidents.find({}, HIDDEN).sort("declared_at", -1).limit(limit).to_list()
        return [from_document(d) for d in docs]

    # --- tickets ----------------------------------------------------------------------

    async def linkable_tickets(self, incident: Incident) -> AsyncIterator[list[Ticket]]:
        """Pages of unlinked open tickets the scope's stored facts may match (the domain
        decides; the query only narrows what is read)."""
        query: Document = {
            "status": {"$in": sorted(s.value for s in LINKABLE)},
            "incident_id": None,
        }
        scope = incident.scope
        if scope.category is not None:
            query["category"] = scope.category.value
        window: Document = {}
        if scope.opened_from is not None:
            window["$gte"] = scope.opened_from
        if scope.opened_until is not None:
            window["$lt"] = scope.opened_until
        if window:
            query["created_at"] = window
        async for page in self._pages(query):
            yield page

    async def linked_tickets(
        self, incident_id: str, untold: str | None = None
    ) -> AsyncIterator[list[Ticket]]:
        """Every linked ticket, or (`untold`: an update id) those not yet handed it."""
        query: Document = {"incident_id": incident_id}
        if untold is not None:
            query[TOLD] = {"$ne": untold}
        async for page in self._pages(query):
            yield page

    async def linked_count(self, incident_id: str) -> int:
        return await self.tickets.count_documents({"incident_id": incident_id})

    async def _pages(self, query: Document) -> AsyncIterator[list[Ticket]]:
        """`_id` order, a page at a time: what was changed on one page never moves the next."""
        after: str | None = None
        while True:
            where = {**query, "_id": {"$gt": after}} if after is not None else query
            docs = (
                await self.tickets.find(where, HIDDEN).sort("_id", ASCENDING).limit(PAGE).to_list()
            )
            if not docs:
                return
            after = docs[-1]["_id"]
            yield [ticket_from_document(d) for d in docs]
            if len(docs) < PAGE:
                return

    async def tell(self, update_id: str, events: Sequence[Outgoing], now: datetime) -> None:
        """An incident update's event for each ticket (its subject) whose state does not
        change: appended to its outbox without touching its version (so no ticket change
        is lost to it), with the mark that it was handed this update; a ticket marked
        already is skipped. Written in chunks, each durable on its own, so a retry redoes
        only what is left."""
        ops = [
            UpdateOne(
                {"_id": event.subject, TOLD: {"$ne": update_id}},
                {**append_events([(topic, event)], now), "$set": {TOLD: update_id}},
            )
            for topic, event in events
        ]
        for start in range(0, len(ops), WRITE_CHUNK):
            await self.tickets.bulk_write(ops[start : start + WRITE_CHUNK], ordered=False)
