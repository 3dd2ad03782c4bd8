"""Tickets in MongoDB: one document per ticket, its pending events in the same document.

Every change is one conditional write on `version` (optimistic concurrency), so two
writers never interleave and the events always leave with the state that caused them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from services.intake.domain import Message, Ticket, ticket_number
from shared.commands import Attachment
from shared.errors import Retryable
from shared.events import (
    Author,
    Category,
    Channel,
    CryptoContext,
    Priority,
    Requester,
    Status,
    TicketRef,
)
from shared.group_commit import DEFAULT_MAX_ITEMS, GroupCommit
from shared.mongo import DUPLICATE_KEY, find_in, insert_new
from shared.unit_of_work import PENDING, Change, VersionedDocuments, with_events

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.intake.ports import NewTicket, TicketChange
    from shared.events import Outgoing
    from shared.group_commit import FlushObserver
    from shared.mongo import Document

APPLIED = "applied"  # command ids and Idempotency-Keys a ticket applied, for dedupe
APPLIED_KEEP = 500
HIDDEN = {**PENDING, APPLIED: 0}
NUMBER_COUNTER = "ticket_number"
FIRST_NUMBER = 100_001  # six digits from the first ticket: short to say, never "#1"


def to_document(ticket: Ticket) -> Document:
    doc: Document = {
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
        "escalation_causes": ticket.escalation_causes,
        "crypto": ticket.crypto.model_dump(mode="json") if ticket.crypto else None,
        "attachments": [a.model_dump() for a in ticket.attachments],
        "secret_redacted": ticket.secret_redacted,
        "messages": [_message_doc(m) for m in ticket.messages],
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "version": ticket.version,
    }
    # Absent rather than null: the unique indexes are sparse, and tickets from before
    # numbers and follow-ups existed hold neither.
    if ticket.number is not None:
        doc["number"] = ticket.number
    if ticket.follow_up_of is not None:
        doc["follow_up_of"] = ticket.follow_up_of.model_dump()
    doc["incident_id"] = ticket.incident_id  # null once unlinked: a `$set` must clear it
    return doc


def _message_doc(message: Message) -> Document:
    doc: Document = {
        "id": message.id,
        "author": message.author.value,
        "author_id": message.author_id,
        "body": message.body,
        "public": message.public,
        "created_at": message.created_at,
        "secret_redacted": message.secret_redacted,
    }
    if message.unverified:
        doc["unverified"] = True
        doc["claimed_from"] = message.claimed_from
    if message.attachments:
        doc["attachments"] = [a.model_dump(exclude_none=True) for a in message.attachments]
    return doc


def from_document(doc: Document) -> Ticket:
    return Ticket(
        id=doc["_id"],
        # Checked when it came in; today's stricter address rules must not lock a stored
        # ticket (an address they refuse is dead-lettered by notifier, per message).
        requester=Requester.model_construct(**doc["requester"]),
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
        escalation_causes=list(doc.get("escalation_causes", [])),
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
                unverified=m.get("unverified", False),
                claimed_from=m.get("claimed_from"),
                attachments=tuple(Attachment.model_validate(a) for a in m.get("attachments", ())),
            )
            for m in doc.get("messages", [])
        ],
        number=doc.get("number"),
        follow_up_of=(
            TicketRef.model_validate(doc["follow_up_of"]) if doc.get("follow_up_of") else None
        ),
        incident_id=doc.get("incident_id"),
        version=doc.get("version", 0),
    )


def _change(change: TicketChange) -> Change:
    ticket = change.ticket
    return Change.of(to_document(ticket), ticket.version, change.events, change.applied)


class TicketStore:
    """`TicketRepository` on MongoDB: the tickets collection, every write through the
    shared unit of work (versioned, with its outbox and the ids it applied)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets: AsyncCollection[Document] = db["tickets"]
        self.documents = VersionedDocuments(
            self.tickets, applied_field=APPLIED, applied_keep=APPLIED_KEEP
        )
        self.counters: AsyncCollection[Document] = db["counters"]

    async def ensure_indexes(self) -> None:
        await self.tickets.create_index([("open_key", ASCENDING)], unique=True, sparse=True)
        await self.tickets.create_index([("number", ASCENDING)], unique=True, sparse=True)
        await self.tickets.create_index([("follow_up_of.id", ASCENDING)], sparse=True)
        await self._ensure_counter()
        await self.tickets.create_index([("requester.id", ASCENDING), ("_id", DESCENDING)])
        await self.tickets.create_index([("status", ASCENDING), ("_id", DESCENDING)])
        await self.tickets.create_index([("incident_id", ASCENDING), ("_id", ASCENDING)])

    async def insert(
        self,
        ticket: Ticket,
        events: Sequence[Outgoing],
        now: datetime,
        *,
        open_key: str | None = None,
        request_hash: str | None = None,
    ) -> bool:
        """False when `open_key` was used before (an idempotent retry): nothing is written."""
        try:
            await self.tickets.insert_one(
                self._new_document(ticket, events, now, open_key, request_hash)
            )
        except DuplicateKeyError:
            return False
        return True

    async def insert_group(self, news: Sequence[NewTicket]) -> list[bool | BaseException]:
        """One unordered insert for tickets opened by different requests; for each, True
        when written, False when its `open_key` was used before (as `insert`), or the error
        of its document alone. An error of the whole write (the database away, a write
        concern not met) raises."""
        if not news:
            return []
        docs = [
            self._new_document(n.ticket, n.events, n.now, n.open_key, n.request_hash) for n in news
        ]
        outcomes: list[bool | BaseException] = [True] * len(docs)
        try:
            await self.tickets.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise
            for error in exc.details.get("writeErrors") or []:
                code = error.get("code")
                outcomes[error["index"]] = (
                    False
                    if code == DUPLICATE_KEY
                    else WriteError(str(error.get("errmsg", "write failed")), code, error)
                )
        return outcomes

    async def insert_many(
        self, tickets: Sequence[tuple[Ticket, Sequence[Outgoing], str]], now: datetime
    ) -> list[int]:
        """Batch insert of (ticket, events, open_key); duplicates of earlier opens are skipped.
        Returns the positions of the tickets inserted."""
        docs = [self._new_document(t, events, now, key, None) for t, events, key in tickets]
        return await insert_new(self.tickets, docs)

    @staticmethod
    def _new_document(
        ticket: Ticket,
        events: Sequence[Outgoing],
        now: datetime,
        open_key: str | None,
        request_hash: str | None,
    ) -> Document:
        doc = with_events(to_document(ticket), events, now)
        if open_key is not None:
            doc["open_key"] = open_key
            doc["request_hash"] = request_hash
        return doc

    async def next_numbers(self, count: int) -> range:
        """`count` ticket numbers no one has had: one atomic `$inc` reserves the whole range
        (a batch of opens costs one round trip). A number reserved by a request that then
        writes nothing (an idempotent retry) is skipped, never handed out again."""
        for _ in range(3):
            doc = await self.counters.find_one_and_update(
                {"_id": NUMBER_COUNTER},
                {"$inc": {"issued": count}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                end = FIRST_NUMBER + int(doc["issued"])
                return range(end - count, end)
            await self._ensure_counter()  # its collection was dropped since the start
        raise Retryable("the ticket number counter could not be created")

    async def _ensure_counter(self) -> None:
        """Created once, before any open: concurrent upserting `$inc`s on a missing counter
        can fail or (SecantusDB) answer no document."""
        try:
            await self.counters.update_one(
                {"_id": NUMBER_COUNTER}, {"$setOnInsert": {"issued": 0}}, upsert=True
            )
        except DuplicateKeyError:
            pass  # another instance created it meanwhile

    async def resolve(self, reference: str) -> str | None:
        """The ticket id a caller means: a number (`482913`, `#482913`) is looked up, an id
        is taken as it is; None for a number no ticket has."""
        number = ticket_number(reference)
        if number is None:
            return reference
        doc = await self.tickets.find_one({"number": number}, {"_id": 1})
        return str(doc["_id"]) if doc is not None else None

    async def resolve_many(self, references: Sequence[str]) -> dict[str, str]:
        """`resolve` for a batch: one lookup for all the numbers; unknown numbers left out."""
        numbers = {ref: n for ref in references if (n := ticket_number(ref)) is not None}
        found: dict[int, str] = {}
        if numbers:
            docs = await find_in(
                self.tickets, "number", set(numbers.values()), projection={"_id": 1, "number": 1}
            )
            found = {d["number"]: d["_id"] for d in docs}
        resolved = {ref: ref for ref in references if ref not in numbers}
        resolved.update({ref: found[n] for ref, n in numbers.items() if n in found})
        return resolved

    async def owners(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketRef, str]]:
        """Each existing ticket's reference and requester id (one read, no messages)."""
        docs = await find_in(
            self.tickets, "_id", ticket_ids, projection={"_id": 1, "number": 1, "requester.id": 1}
        )
        return {
            d["_id"]: (TicketRef(id=d["_id"], number=d.get("number")), d["requester"]["id"])
            for d in docs
        }

    async def follow_ups(self, ticket_ids: Sequence[str]) -> dict[str, list[TicketRef]]:
        """The follow-up tickets of each ticket, oldest first (one read for all of them)."""
        if not ticket_ids:
            return {}
        docs = await find_in(
            self.tickets,
            "follow_up_of.id",
            ticket_ids,
            projection={"_id": 1, "number": 1, "follow_up_of": 1},
        )
        found: dict[str, list[TicketRef]] = {}
        for doc in sorted(docs, key=lambda d: str(d["_id"])):
            found.setdefault(doc["follow_up_of"]["id"], []).append(
                TicketRef(id=doc["_id"], number=doc.get("number"))
            )
        return found

    async def by_open_key(self, open_key: str) -> tuple[Ticket, str | None] | None:
        doc = await self.tickets.find_one({"open_key": open_key}, HIDDEN)
        return (from_document(doc), doc.get("request_hash")) if doc is not None else None

    async def get(self, ticket_id: str) -> Ticket | None:
        doc = await self.tickets.find_one({"_id": ticket_id}, HIDDEN)
        return from_document(doc) if doc is not None else None

    async def get_applied(self, ticket_id: str) -> tuple[Ticket, list[str]] | None:
        """The ticket with what was applied to it (command ids, Idempotency-Key records)."""
        doc = await self.tickets.find_one({"_id": ticket_id}, PENDING)
        if doc is None:
            return None
        return from_document(doc), list(doc.get(APPLIED, []))

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, tuple[Ticket, set[str]]]:
        """Tickets by id, each with the command ids already applied to it."""
        found = await self.documents.read(ticket_ids)
        return {t: (from_document(doc), applied) for t, (doc, applied) in found.items()}

    async def save_many(self, changes: Sequence[TicketChange], now: datetime) -> int:
        """Returns how many were written; fewer than `len(changes)` means a concurrent change."""
        return len(changes) - await self.documents.commit([_change(c) for c in changes], now)

    async def list(
        self,
        *,
        requester_id: str | None,
        status: Status | None,
        before: str | None,
        limit: int,
    ) -> list[Ticket]:
        """Newest first (ids are time-ordered UUIDv7); `before` is the last id of the page."""
        query: Document = {}
        if requester_id is not None:
            query["requester.id"] = requester_id
        if status is not None:
            query["status"] = status.value
        if before is not None:
            query["_id"] = {"$lt": before}
        docs = await self.tickets.find(query, HIDDEN).sort("_id", DESCENDING).limit(limit).to_list()
        return [from_document(d) for d in docs]


class GroupedOpens:
    """The writes of HTTP opens that arrive within `window_s` of each other, shared: their
    numbers are reserved with one `$inc` by the group's size (increasing in the order they
    asked), their tickets written with one unordered insert. A duplicate `open_key` (the
    same Idempotency-Key sent twice at once) fails only its own insert, as `insert` does.
    `observe(write)` reports each flush of `numbers` and `tickets`."""

    def __init__(
        self,
        store: TicketStore,
        *,
        window_s: float,
        max_items: int = DEFAULT_MAX_ITEMS,
        observe: Callable[[str], FlushObserver] | None = None,
    ) -> None:
        self._store = store
        self._numbers: GroupCommit[None, int] = GroupCommit(
            self._reserve,
            window_s=window_s,
            max_items=max_items,
            on_flush=observe("numbers") if observe else None,
        )
        self._inserts: GroupCommit[NewTicket, bool] = GroupCommit(
            store.insert_group,
            window_s=window_s,
            max_items=max_items,
            on_flush=observe("tickets") if observe else None,
        )

    async def next_number(self) -> int:
        return await self._numbers.submit(None)

    async def insert(self, new: NewTicket) -> bool:
        """False when `open_key` was used before (by an earlier request, or by another of
        the same group): nothing of this one is written."""
        return await self._inserts.submit(new)

    async def drain(self) -> None:
        await self._numbers.drain()
        await self._inserts.drain()

    async def _reserve(self, asks: Sequence[None]) -> list[int | BaseException]:
        return list(await self._store.next_numbers(len(asks)))
