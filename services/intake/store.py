"""Tickets in MongoDB: one document per ticket, its pending events in the same document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from services.intake.domain import Message, Ticket
from shared.commands import Attachment
from shared.events import Author, Category, Channel, CryptoContext, Priority, Requester, Status
from shared.outbox import OUTBOX, OUTBOX_SINCE, new_document_outbox, outbox_update

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.mongo import Document


def to_document(ticket: Ticket) -> Document:
    return {
        "_id": ticket.id,
        "requester": ticket.requester.model_dump(),
        "channel": ticket.channel.value,
        "subject": ticket.subject,
        "description": ticket.description,
        "category": ticket.category.value,
        "priority": ticket.priority.value,
        "status": ticket.status.value,
        "group": ticket.group,
        "assignee": ticket.assignee,
        "escalation_level": ticket.escalation_level,
        "crypto": ticket.crypto.model_dump(mode="json") if ticket.crypto else None,
        "attachments": [a.model_dump() for a in ticket.attachments],
        "secret_redacted": ticket.secret_redacted,
        "messages": [_message_doc(m) for m in ticket.messages],
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
    }


def _message_doc(message: Message) -> Document:
    return {
        "id": message.id,
        "author": message.author.value,
        "author_id": message.author_id,
        "body": message.body,
        "public": message.public,
        "created_at": message.created_at,
        "secret_redacted": message.secret_redacted,
    }


def from_document(doc: Document) -> Ticket:
    return Ticket(
        id=doc["_id"],
        requester=Requester.model_validate(doc["requester"]),
        channel=Channel(doc["channel"]),
        subject=doc["subject"],
        description=doc["description"],
        category=Category(doc["category"]),
        priority=Priority(doc["priority"]),
        group=doc["group"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        status=Status(doc["status"]),
        assignee=doc.get("assignee"),
        escalation_level=doc.get("escalation_level", 0),
        crypto=CryptoContext.model_validate(doc["crypto"]) if doc.get("crypto") else None,
        attachments=[Attachment.model_validate(a) for a in doc.get("attachments", [])],
        secret_redacted=doc.get("secret_redacted", False),
        messages=[
            Message(
                id=m["id"],
                author=Author(m["author"]),
                author_id=m.get("author_id"),
                body=m["body"],
                public=m["public"],
                created_at=m["created_at"],
                secret_redacted=m.get("secret_redacted", False),
            )
            for m in doc.get("messages", [])
        ],
    )


class TicketStore:
    """The tickets collection. Every write that changes a ticket carries its events."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets: AsyncCollection[Document] = db["tickets"]

    async def ensure_indexes(self) -> None:
        await self.tickets.create_index(
            [("requester.id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        await self.tickets.create_index([("status", ASCENDING), ("created_at", DESCENDING)])

    async def insert(self, ticket: Ticket, outbox: Sequence[Document], now: datetime) -> bool:
        """False when a ticket with this id exists already (an idempotent retry)."""
        try:
            await self.tickets.insert_one(
                {**to_document(ticket), **new_document_outbox(outbox, now)}
            )
        except DuplicateKeyError:
            return False
        return True

    async def get(self, ticket_id: str) -> Ticket | None:
        doc = await self.tickets.find_one({"_id": ticket_id}, {OUTBOX: 0, OUTBOX_SINCE: 0})
        return from_document(doc) if doc is not None else None

    async def replace(
        self,
        ticket: Ticket,
        expected_updated_at: datetime,
        outbox: Sequence[Document],
        now: datetime,
    ) -> bool:
        """Optimistic write: False if someone changed the ticket since it was read."""
        doc = to_document(ticket)
        doc.pop("_id")
        update: dict[str, Any] = (
            {"$set": doc, **outbox_update(outbox, now)} if outbox else {"$set": doc}
        )
        result = await self.tickets.update_one(
            {"_id": ticket.id, "updated_at": expected_updated_at}, update
        )
        return result.matched_count == 1
