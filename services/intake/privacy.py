"""Requester erasure as intake runs it: legal holds, the erasure record, intake's own
copy, and completion once every other service confirmed.

An erasure is one document per requester in `erasures` (`_id` = requester id, kept so
`GET` can answer and a repeated `POST` does not start over), with the request event in
its outbox: intake anonymizes its tickets and records the request in one go, the relay
publishes `requester.erasure_requested`, and each service answers on its own topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError

from shared.events import (
    MAX_ERASURE_ATTACHMENTS,
    MAX_ERASURE_TICKETS,
    RequesterErasedData,
    RequesterErasureRequested,
)
from shared.events import make_event as _make_event
from shared.ids import new_id
from shared.privacy import ERASED
from shared.privacy_export import MAX_RECORDS
from shared.sealing import mail_owner
from shared.unit_of_work import with_events

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from pymongo.asynchronous.database import AsyncDatabase

    from shared.clock import Clock
    from shared.events import CloudEvent, Contract
    from shared.keyring import Keyring
    from shared.metrics import PrivacyMetrics
    from shared.mongo import Document
    from shared.topics import Topics

SOURCE = "/helpstream/intake"
SERVICE = "intake"
# Every service that holds a copy and must confirm (intake erases its own at once).
CONFIRMING: tuple[str, ...] = ("sla_monitor", "feedback", "notifier", "mail_gateway")
# Where a ticket names its files' contents (the mail gateway's GridFS, by sha256).
DIGEST_FIELDS = ("attachments.sha256", "messages.attachments.sha256")
DIGEST_BATCH = 1000  # digests per query for other requesters' tickets


class LegalHold(Exception):
    """The requester's data must be kept (e.g. an AML investigation): no erasure."""

    def __init__(self, requester_id: str, reason: str) -> None:
        super().__init__(f"requester {requester_id} is under a legal hold: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Hold:
    requester_id: str
    reason: str
    placed_by: str
    placed_at: datetime


@dataclass(frozen=True)
class Erasure:
    requester_id: str
    erasure_id: str
    requested_at: datetime
    requested_by: str
    tickets: int
    confirmations: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed_at: datetime | None = None


def anonymized_ticket(doc: Document, pseudonym: str, now: datetime) -> Document:
    """The `$set` that leaves a ticket its shape, status and clocks but none of the
    requester's data: contact, texts, file names, transfer details."""
    requester = dict(doc.get("requester") or {})
    requester.update(id=pseudonym, email=None)
    messages = [
        {**m, "body": ERASED, "claimed_from": None, "attachments": []}
        for m in doc.get("messages") or []
    ]
    return {
        "requester": requester,
        "subject": ERASED,
        "description": ERASED,
        "crypto": None,
        "attachments": [],
        "messages": messages,
        "erased_at": now,
    }


def digests_of(doc: Document) -> set[str]:
    """The sha256 of every file a ticket names, on itself or on its messages."""
    files = [*(doc.get("attachments") or [])]
    for message in doc.get("messages") or []:
        files.extend(message.get("attachments") or [])
    return {f["sha256"] for f in files if isinstance(f, dict) and f.get("sha256")}


def erasure_of(doc: Document) -> Erasure:
    return Erasure(
        requester_id=doc["_id"],
        erasure_id=doc["erasure_id"],
        requested_at=doc["requested_at"],
        requested_by=doc["requested_by"],
        tickets=doc.get("tickets", 0),
        confirmations=dict(doc.get("confirmations") or {}),
        completed_at=doc.get("completed_at"),
    )


class PrivacyService:
    """Holds and erasures over intake's database."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        clock: Clock,
        topics: Topics,
        metrics: PrivacyMetrics,
        keyring: Keyring | None = None,
        on_events: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._keyring = keyring
        self.erasures = db["erasures"]
        self.holds = db["legal_holds"]
        self._tickets = db["tickets"]
        self._clock = clock
        self._topics = topics
        self._metrics = self.metrics = metrics
        self._on_events = on_events

    async def ensure_indexes(self) -> None:
        await self.erasures.create_index([("erasure_id", ASCENDING)], unique=True)
        for path in DIGEST_FIELDS:  # who else names a file, at erasure
            await self._tickets.create_index([(path, ASCENDING)], sparse=True)

    # --- legal holds --------------------------------------------------------------------

    async def place_hold(self, requester_id: str, reason: str, by: str) -> Hold:
        now = self._clock.now()
        await self.holds.update_one(
            {"_id": requester_id},
            {"$set": {"reason": reason, "placed_by": by, "placed_at": now}},
            upsert=True,
        )
        return Hold(requester_id, reason, by, now)

    async def lift_hold(self, requester_id: str) -> bool:
        return (await self.holds.delete_one({"_id": requester_id})).deleted_count > 0

    async def hold(self, requester_id: str) -> Hold | None:
        doc = await self.holds.find_one({"_id": requester_id})
        if doc is None:
            return None
        return Hold(requester_id, doc["reason"], doc["placed_by"], doc["placed_at"])

    # --- export ---------------------------------------------------------------------------

    async def export(self, requester_id: str) -> dict[str, list[Document]]:
        """What intake holds about the requester: tickets, the erasure and hold records."""
        tickets = self._tickets.find({"requester.id": requester_id}).limit(MAX_RECORDS)
        return {
            "tickets": await tickets.to_list(),
            "erasures": await self.erasures.find({"_id": requester_id}).to_list(),
            "legal_holds": await self.holds.find({"_id": requester_id}).to_list(),
        }

    # --- erasure --------------------------------------------------------------------------

    async def get(self, requester_id: str) -> Erasure | None:
        doc = await self.erasures.find_one({"_id": requester_id}, {"_outbox": 0})
        return erasure_of(doc) if doc is not None else None

    async def request(self, requester_id: str, by: str, correlation_id: str) -> Erasure:
        """Starts an erasure, or answers the one under way (a retry starts nothing new).
        A finished one is started again: tickets opened since are erased too."""
        started = time.perf_counter()
        hold = await self.hold(requester_id)
        if hold is not None:
            self._metrics.erasures.labels("held").inc()
            raise LegalHold(requester_id, hold.reason)
        current = await self.get(requester_id)
        if current is not None and current.completed_at is None:
            return current
        now = self._clock.now()
        erasure_id = new_id()
        pseudonym = f"erased-{erasure_id.replace('-', '')[-16:]}"
        # The requester's key goes before and after the tickets: whatever is sealed with
        # it in any topic stops opening, and an event made in between (under a fresh key)
        # is caught by the second destruction.
        owners = await self._key_owners(requester_id)
        await self._destroy_keys(owners)
        ticket_ids, digests = await self._erase_tickets(requester_id, pseudonym, now)
        await self._destroy_keys(owners)
        event = _make_event(
            RequesterErasureRequested(
                erasure_id=erasure_id,
                requester_id=requester_id,
                pseudonym=pseudonym,
                ticket_ids=ticket_ids[:MAX_ERASURE_TICKETS],
                attachment_digests=digests[:MAX_ERASURE_ATTACHMENTS],
            ),
            source=SOURCE,
            time=now,
            correlationid=correlation_id,
            subject=requester_id,
        )
        doc: Document = with_events(
            {
                "erasure_id": erasure_id,
                "requested_at": now,
                "requested_by": by,
                "tickets": len(ticket_ids),
                "confirmations": {SERVICE: {"counts": {"tickets": len(ticket_ids)}, "at": now}},
                "completed_at": None,
            },
            [(self._topics.tickets, event)],
            now,
        )
        filter_: Document = {"_id": requester_id}
        if current is not None:  # replace the finished one, unless another request did
            filter_["erasure_id"] = current.erasure_id
        try:
            await self.erasures.update_one(filter_, {"$set": doc}, upsert=True)
        except DuplicateKeyError:  # a concurrent request created it first: answer that one
            found = await self.get(requester_id)
            assert found is not None
            return found
        self._metrics.erasures.labels("requested").inc()
        self._metrics.erased_records.labels("tickets").inc(len(ticket_ids))
        self._metrics.erasure_seconds.observe(time.perf_counter() - started)
        self._on_events(1)
        return erasure_of({"_id": requester_id, **doc})

    async def _key_owners(self, requester_id: str) -> set[str]:
        """The requester's key, and the keys the mail gateway sealed their mail under (one
        per address they wrote from)."""
        emails = await self._tickets.distinct("requester.email", {"requester.id": requester_id})
        return {requester_id, *(mail_owner(e) for e in emails if isinstance(e, str) and e)}

    async def _destroy_keys(self, owners: set[str]) -> None:
        if self._keyring is not None:
            await self._keyring.destroy(owners, self._clock.now())

    async def _erase_tickets(
        self, requester_id: str, pseudonym: str, now: datetime
    ) -> tuple[list[str], list[str]]:
        """Anonymizes the requester's tickets; their ids, and the digests of their files
        that no other requester's ticket names (read before the files leave the tickets)."""
        docs = await self._tickets.find(
            {"requester.id": requester_id},
            {"requester": 1, "messages": 1, "attachments.sha256": 1},
        ).to_list()
        digests = set().union(*map(digests_of, docs)) if docs else set()
        digests -= await self._named_by_others(requester_id, digests)
        ops = [
            UpdateOne(
                {"_id": doc["_id"]},
                {"$set": anonymized_ticket(doc, pseudonym, now), "$inc": {"version": 1}},
            )
            for doc in docs
        ]
        if ops:
            await self._tickets.bulk_write(ops, ordered=False)
        return [str(doc["_id"]) for doc in docs], sorted(digests)

    async def _named_by_others(self, requester_id: str, digests: set[str]) -> set[str]:
        """Those of `digests` a ticket of another requester names (an erased ticket names
        none): the same file mailed by two people is kept for the one who stays."""
        named: set[str] = set()
        wanted = sorted(digests)
        for start in range(0, len(wanted), DIGEST_BATCH):
            batch = wanted[start : start + DIGEST_BATCH]
            others = self._tickets.find(
                {
                    "requester.id": {"$ne": requester_id},
                    "$or": [{path: {"$in": batch}} for path in DIGEST_FIELDS],
                },
                {"attachments.sha256": 1, "messages.attachments.sha256": 1},
            )
            async for doc in others:
                named |= digests_of(doc) & digests
        return named

    # --- confirmations (helpstream.sla, .feedback, .notifications) ------------------------

    async def on_confirmations(self, events: Sequence[CloudEvent[Contract]]) -> None:
        now = self._clock.now()
        ops: list[UpdateOne] = []
        requesters: set[str] = set()
        for event in events:
            data = event.data
            if not isinstance(data, RequesterErasedData) or data.service not in CONFIRMING:
                continue
            if event.source != f"/helpstream/{data.service}":
                continue  # a service confirms only for itself
            ops.append(
                UpdateOne(
                    {"_id": data.requester_id, "erasure_id": data.erasure_id},
                    {"$set": {f"confirmations.{data.service}": {"counts": data.counts, "at": now}}},
                )
            )
            requesters.add(data.requester_id)
            self._metrics.erasures.labels(f"confirmed_{data.service}").inc()
        if not ops:
            return
        await self.erasures.bulk_write(ops, ordered=False)
        done = await self.erasures.update_many(
            {
                "_id": {"$in": sorted(requesters)},
                "completed_at": None,
                **{f"confirmations.{s}": {"$exists": True} for s in CONFIRMING},
            },
            {"$set": {"completed_at": now}},
        )
        self._metrics.erasures.labels("completed").inc(done.modified_count)
