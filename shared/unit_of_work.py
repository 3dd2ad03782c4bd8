"""One MongoDB unit of work for every service that keeps versioned state with an outbox.

A change to a document, the events it causes and the ids of the messages it applied are
one write, conditional on the version the change was read at. So two writers never
interleave, the events always leave with the state that caused them (the relay in
`shared.outbox` publishes them), and a redelivered message finds its id among those
applied. Services describe a change in their own terms and hand it here as a `Change`;
the MongoDB operators for it exist only in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from shared.mongo import DUPLICATE_KEY, find_in
from shared.outbox import OUTBOX, OUTBOX_SINCE, outbox_entry, outbox_since, outbox_update

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection

    from shared.events import Outgoing
    from shared.mongo import Document

VERSION = "version"
PENDING = {OUTBOX: 0, OUTBOX_SINCE: 0}  # a projection leaving the outbox out of a read

Operation = InsertOne[Any] | UpdateOne


@dataclass(frozen=True)
class Change:
    """A document's new state, what it publishes and what it applied.

    `read_version` is the version the state was read at; None for a document that did not
    exist (it is inserted, and loses to another writer who inserted it first). `state` is
    every stored field but `_id` and `version`.
    """

    id: str
    state: Document
    read_version: int | None
    events: Sequence[Outgoing] = ()
    applied: Sequence[str] = ()
    urgent: bool = False  # its events go before any backlog (`shared.outbox.URGENT_SINCE`)

    @classmethod
    def of(
        cls,
        document: Document,
        read_version: int | None,
        events: Sequence[Outgoing] = (),
        applied: Sequence[str] = (),
        *,
        urgent: bool = False,
    ) -> Change:
        """A change from the whole document as a service stores it (`_id` and `version`
        included; they are the unit of work's to write)."""
        state = {k: v for k, v in document.items() if k not in ("_id", VERSION)}
        return cls(document["_id"], state, read_version, events, applied, urgent)


def outbox_entries(events: Iterable[Outgoing]) -> list[Document]:
    return [outbox_entry(topic, event) for topic, event in events]


def append_events(events: Sequence[Outgoing], now: datetime, *, urgent: bool = False) -> Document:
    """Update operators that append `events` to a document's outbox (none without events).

    For writes that publish without changing a versioned state: a survey's cancellation,
    a delivery's outcome, an incident update told to a ticket."""
    return outbox_update(outbox_entries(events), now, urgent=urgent) if events else {}


def with_events(
    doc: Document, events: Sequence[Outgoing], now: datetime, *, urgent: bool = False
) -> Document:
    """A new document carrying its first events."""
    if not events:
        return doc
    return {**doc, OUTBOX: outbox_entries(events), OUTBOX_SINCE: outbox_since(now, urgent=urgent)}


class VersionedDocuments:
    """A collection of versioned documents with outboxes, and the ids each applied (the
    last `applied_keep` of them, under `applied_field`)."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        applied_field: str = "applied",
        applied_keep: int = 500,
    ) -> None:
        self.collection = collection
        self.applied_field = applied_field
        self.applied_keep = applied_keep

    def new_document(self, change: Change, now: datetime) -> Document:
        doc = {"_id": change.id, **change.state, VERSION: 0}
        if change.applied:
            doc[self.applied_field] = list(change.applied)[-self.applied_keep :]
        return with_events(doc, change.events, now, urgent=change.urgent)

    def operation(self, change: Change, now: datetime) -> Operation:
        """The write of one change: an insert, or an update only if nobody changed the
        document since `read_version`."""
        if change.read_version is None:
            return InsertOne(self.new_document(change, now))
        update: dict[str, Any] = {"$set": {**change.state, VERSION: change.read_version + 1}}
        update.update(append_events(change.events, now, urgent=change.urgent))
        if change.applied:
            update["$push"] = {
                **update.get("$push", {}),
                self.applied_field: {"$each": list(change.applied), "$slice": -self.applied_keep},
            }
        return UpdateOne({"_id": change.id, VERSION: change.read_version}, update)

    async def commit(self, changes: Sequence[Change], now: datetime) -> int:
        """Writes every change that still can, unordered, in one round trip; returns how
        many lost a race (to read again and retry). Any other error raises."""
        if not changes:
            return 0
        ops = [self.operation(c, now) for c in changes]
        updates = sum(isinstance(op, UpdateOne) for op in ops)
        try:
            result = await self.collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if exc.details.get("writeConcernErrors") or any(
                e.get("code") != DUPLICATE_KEY for e in errors
            ):
                raise
            return len(errors) + updates - int(exc.details.get("nMatched", 0))
        return updates - result.matched_count

    async def read(self, ids: Sequence[str]) -> dict[str, tuple[Document, set[str]]]:
        """Each existing document (its outbox left out) with the ids it applied."""
        docs = await find_in(self.collection, "_id", ids, projection=PENDING)
        return {d["_id"]: (d, set(d.pop(self.applied_field, ()))) for d in docs}

    async def holding(self, markers: Mapping[str, str]) -> set[str]:
        """Of these documents, those that applied their marker (an id a change pushed):
        which changes of a batch that lost some races were written."""
        if not markers:
            return set()
        docs = await find_in(
            self.collection, "_id", list(markers), projection={self.applied_field: 1}
        )
        return {d["_id"] for d in docs if markers[d["_id"]] in d.get(self.applied_field, ())}
