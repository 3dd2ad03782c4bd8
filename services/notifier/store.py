"""notifier's MongoDB: deliveries (the exactly-once guard, with the outbox), ticket facts,
preferences, the in-app inbox and pending digests. Every filtered field is indexed.

Collections:
- `deliveries`: `_id` = delivery key (unique by construction); state sent | failed,
  written once with the outcome after the channel took the message (email, webhook) or
  with the inbox item; a digested one goes pending → queued (waiting in its digest) →
  sent | failed. Outcome events in its `_outbox`.
- `tickets`: per ticket, the requester's contact, subject, group, category and the
  promised first reply time, from earlier events.
- `preferences`: per requester, channel → muted categories.
- `inbox`: one item per inbox delivery (`_id` = delivery key), read or unread.
- `digests`: per (ticket, channel, recipient), updates waiting for the window to close;
  also (`kind: sla_wait`) acknowledgements held until the promised first reply time is
  known, released early when it arrives (`release_sla_waits`). A due digest is sent by
  the instance holding its lease (`lease_owner`, `lease_token`, `lease_until`).
- `bouncing`: per email address (lower case), a bounce reported by the mail gateway and
  until when the address is not mailed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from services.notifier.domain import Category, Preferences, Recipient, Requester, TicketFacts
from services.notifier.ports import (
    DELIVERY_STATES,
    DeliveryRecord,
    DigestItem,
    InboxItem,
    LeasedDigest,
)
from shared.ids import new_id
from shared.mongo import DUPLICATE_KEY, find_in, insert_new
from shared.unit_of_work import append_events, with_events

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence
    from datetime import datetime, timedelta

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.notifier.domain import Delivery, FactUpdate, FirstFacts
    from services.notifier.ports import (
        Bounce,
        DeliveryState,
        DigestKind,
        Outcome,
        QueuedItem,
    )
    from shared.mongo import Document

# who is sending a due digest, and until when (see `claim_due_digests`)
LEASE_FIELDS = {"lease_owner": "", "lease_token": "", "lease_until": ""}


class NotifierStore:
    """`NotifierRepository` on MongoDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deliveries: AsyncCollection[Document] = db["deliveries"]
        self.tickets: AsyncCollection[Document] = db["tickets"]
        self.preferences: AsyncCollection[Document] = db["preferences"]
        self.inbox: AsyncCollection[Document] = db["inbox"]
        self.digests: AsyncCollection[Document] = db["digests"]
        self.bouncing: AsyncCollection[Document] = db["bouncing"]

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index([("ticket_id", ASCENDING)])
        await self.deliveries.create_index([("state", ASCENDING)])
        await self.inbox.create_index([("requester_id", ASCENDING), ("created_at", DESCENDING)])
        await self.digests.create_index([("due_at", ASCENDING)])
        await self.digests.create_index([("ticket_id", ASCENDING)])
        await self.bouncing.create_index([("until", ASCENDING)])

    # --- ticket facts ----------------------------------------------------------------------

    async def record_facts(
        self, updates: Sequence[FactUpdate], now: datetime, first: Sequence[FirstFacts] = ()
    ) -> None:
        """`$set` what each event taught us about its ticket; replays set the same values.

        `first` holds facts set only while the ticket has none yet (its owner); in one
        ordered write, so the earliest of a batch wins too."""
        ops = [
            UpdateOne(
                {"_id": update.ticket_id},
                {"$set": {**_fact_fields(update), "updated_at": now}},
                upsert=True,
            )
            for update in updates
            if update
        ]
        upserted = {update.ticket_id for update in updates if update}
        for facts in first:
            if facts.ticket_id not in upserted:  # the conditional write needs the document
                ops.append(
                    UpdateOne({"_id": facts.ticket_id}, {"$set": {"updated_at": now}}, upsert=True)
                )
                upserted.add(facts.ticket_id)
            ops.append(
                UpdateOne(
                    {"_id": facts.ticket_id, "created_by": {"$exists": False}},
                    {"$set": _first_fields(facts)},
                )
            )
        if ops:
            await self.tickets.bulk_write(ops, ordered=True)

    async def ticket_facts(self, ticket_ids: Iterable[str]) -> dict[str, TicketFacts]:
        docs = await find_in(self.tickets, "_id", ticket_ids)
        return {doc["_id"]: _facts(doc) for doc in docs}

    # --- preferences -----------------------------------------------------------------------

    async def preferences_of(self, requester_ids: Iterable[str]) -> dict[str, Preferences]:
        docs = await find_in(self.preferences, "_id", requester_ids)
        return {doc["_id"]: _preferences(doc) for doc in docs}

    async def get_preferences(self, requester_id: str) -> Preferences:
        doc = await self.preferences.find_one({"_id": requester_id})
        return _preferences(doc) if doc else Preferences()

    async def put_preferences(
        self, requester_id: str, preferences: Preferences, now: datetime
    ) -> None:
        stored = {ch: sorted(c.value for c in cats) for ch, cats in preferences.opt_out.items()}
        await self.preferences.update_one(
            {"_id": requester_id},
            {"$set": {"opt_out": stored, "updated_at": now}},
            upsert=True,
        )

    # --- deliveries ------------------------------------------------------------------------

    async def claim(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        settled: Mapping[str, Outcome] | None = None,
        write: Collection[str] | None = None,
    ) -> tuple[dict[str, DeliveryState], set[str]]:
        """Return every delivery's state ("pending": not yet done) and the keys written now.

        Only the deliveries in `write` (all when None) are written here, unless they exist:
        those `settled` already (an inbox item, stored before this) with their outcome and
        outcome event, the others as pending (those about to wait in a digest). The rest
        are first written by `finish`, with their outcome, once their channel took them; a
        redelivered event finds those that were and sends only the others. A fresh batch
        costs one insert, plus one read when some deliveries are not written here.
        """
        if not deliveries:
            return {}, set()
        settled = settled or {}
        docs = [
            _delivery_document(d, now, settled.get(d.key))
            for d in deliveries
            if write is None or d.key in write
        ]
        written = {str(docs[i]["_id"]) for i in await insert_new(self.deliveries, docs)}
        states = {str(doc["_id"]): _state(doc["state"]) for doc in docs if doc["_id"] in written}
        if len(written) == len(deliveries):
            return states, written
        found = await self.states([d.key for d in deliveries if d.key not in written])
        for d in deliveries:
            states.setdefault(d.key, found.get(d.key, "pending"))
        return states, written

    async def states(self, keys: Sequence[str]) -> dict[str, DeliveryState]:
        docs = await find_in(self.deliveries, "_id", keys, projection={"state": 1})
        return {doc["_id"]: _state(doc["state"]) for doc in docs}

    async def finish(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Final state of each attempted delivery and its outcome event, in one write. An
        outcome that names its delivery writes the whole record if there is none yet."""
        if not outcomes:
            return
        ops = [_finish(o, now, upsert=o.delivery is not None) for o in outcomes]
        try:
            await self.deliveries.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if exc.details.get("writeConcernErrors") or any(
                e.get("code") != DUPLICATE_KEY for e in errors
            ):
                raise
            # Two upserts of one new record at once: the other made it; update it now.
            again = [_finish(outcomes[e["index"]], now, upsert=False) for e in errors]
            await self.deliveries.bulk_write(again, ordered=False)

    async def failed_count(self) -> int:
        return await self.deliveries.count_documents({"state": "failed"})

    async def for_ticket(self, ticket_id: str) -> list[DeliveryRecord]:
        docs = await self.deliveries.find({"ticket_id": ticket_id}).sort("_id").to_list()
        return [_delivery_record(doc) for doc in docs]

    # --- digests ---------------------------------------------------------------------------

    async def queue(self, items: Sequence[QueuedItem], now: datetime) -> None:
        """Add each item to its digest once (the digest made on its first item)."""
        if not items:
            return
        await self.digests.bulk_write(
            [
                UpdateOne(
                    {"_id": q.digest_id},
                    {"$setOnInsert": _digest_head(q), "$addToSet": {"items": _item_doc(q.item)}},
                    upsert=True,
                )
                for q in items
            ],
            ordered=True,
        )
        await self.deliveries.bulk_write(
            [
                UpdateOne(
                    {"_id": q.item.key, "state": "pending"},
                    {"$set": {"state": "queued", "digest_id": q.digest_id, "queued_at": now}},
                )
                for q in items
            ],
            ordered=False,
        )

    async def claim_due_digests(
        self, now: datetime, owner: str, lease: timedelta, limit: int
    ) -> tuple[str, list[LeasedDigest]]:
        """Lease up to `limit` due digests that no live lease holds to `owner` until
        `now + lease`; returns the lease's token and the digests it holds.

        Three round trips whatever the count: read the candidates, lease them with one
        `update_many` that repeats the "due and free" test (two instances reading the same
        candidates: each digest goes to the one whose write reaches it first), read back
        those this token holds."""
        free = {
            "due_at": {"$lte": now},
            "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
        }
        found = (
            await self.digests.find(free, {"_id": 1})
            .sort("due_at", ASCENDING)
            .limit(limit)
            .to_list()
        )
        ids = [doc["_id"] for doc in found]
        token = new_id()
        if not ids:
            return token, []
        await self.digests.update_many(
            {"_id": {"$in": ids}, **free},
            {"$set": {"lease_owner": owner, "lease_token": token, "lease_until": now + lease}},
        )
        held = await self.digests.find({"_id": {"$in": ids}, "lease_token": token}).to_list()
        return token, [_leased(doc) for doc in sorted(held, key=lambda doc: doc["due_at"])]

    async def drop_digest_items(self, digest_id: str, token: str, keys: Sequence[str]) -> None:
        """Take out what was handled and end the lease (if it is still this one: a holder
        whose lease ran out leaves the digest to its new holder, which finds those items
        final and drops them); the digest goes once it is empty."""
        await self.digests.update_one(
            {"_id": digest_id, "lease_token": token},
            {"$pull": {"items": {"key": {"$in": list(keys)}}}, "$unset": LEASE_FIELDS},
        )
        await self.digests.delete_one({"_id": digest_id, "items": {"$size": 0}})

    async def digest_attempt_failed(self, digest_id: str, token: str, retry_at: datetime) -> None:
        """Counts a failed attempt and ends the lease: any instance retries from `retry_at`."""
        await self.digests.update_one(
            {"_id": digest_id, "lease_token": token},
            {"$inc": {"attempts": 1}, "$set": {"due_at": retry_at}, "$unset": LEASE_FIELDS},
        )

    async def release_sla_waits(self, ticket_ids: Iterable[str], now: datetime) -> int:
        """Held acknowledgements of these tickets are due now; returns how many."""
        ids = sorted(set(ticket_ids))
        if not ids:
            return 0
        result = await self.digests.update_many(
            {"ticket_id": {"$in": ids}, "kind": "sla_wait", "due_at": {"$gt": now}},
            {"$set": {"due_at": now}},
        )
        return result.modified_count

    # --- bouncing addresses ----------------------------------------------------------------

    async def mark_bouncing(
        self, bounces: Sequence[Bounce], now: datetime, until: datetime
    ) -> None:
        """Not mailed before `until`; a replayed or later bounce only moves `until` on."""
        if not bounces:
            return
        await self.bouncing.bulk_write(
            [
                UpdateOne(
                    {"_id": b.address.lower()},
                    {
                        "$set": {
                            "reason": b.reason,
                            "diagnostic": b.diagnostic,
                            "ticket_id": b.ticket_id,
                            "event_id": b.event_id,
                            "last_at": now,
                            "until": until,
                        },
                        "$setOnInsert": {"first_at": now},
                    },
                    upsert=True,
                )
                for b in bounces
            ],
            ordered=True,
        )

    async def bouncing_among(self, addresses: Iterable[str], now: datetime) -> dict[str, datetime]:
        """address (lower case) → until when it is not mailed, for those still bouncing."""
        wanted = {a.lower() for a in addresses}
        if not wanted:
            return {}
        docs = await find_in(self.bouncing, "_id", wanted, projection={"until": 1})
        return {d["_id"]: d["until"] for d in docs if d["until"] > now}

    async def bouncing_count(self, now: datetime) -> int:
        return await self.bouncing.count_documents({"until": {"$gt": now}})

    # --- inbox -----------------------------------------------------------------------------

    async def add_inbox(self, items: Sequence[InboxItem]) -> None:
        """Insert each item once: an item stored before (a redelivered event) is kept as is."""
        await insert_new(self.inbox, [_inbox_doc(item) for item in items])

    async def inbox_page(
        self, requester_id: str, *, unread_only: bool, limit: int
    ) -> list[InboxItem]:
        query: Document = {"requester_id": requester_id}
        if unread_only:
            query["read_at"] = None
        docs = (
            await self.inbox.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
            .to_list()
        )
        return [_inbox_item(doc) for doc in docs]

    async def inbox_since(self, requester_id: str, since: datetime) -> list[InboxItem]:
        docs = (
            await self.inbox.find({"requester_id": requester_id, "created_at": {"$gte": since}})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(100)
            .to_list()
        )
        return [_inbox_item(doc) for doc in docs]

    async def inbox_item(self, requester_id: str, item_id: str) -> InboxItem | None:
        """Only the owner's item: another requester's id finds nothing."""
        doc = await self.inbox.find_one({"_id": item_id, "requester_id": requester_id})
        return _inbox_item(doc) if doc is not None else None

    async def mark_read(self, requester_id: str, item_id: str, now: datetime) -> InboxItem | None:
        """Only the owner's item; the first read time is kept."""
        found = await self.inbox_item(requester_id, item_id)
        if found is None:
            return None
        if found.read_at is None:
            await self.inbox.update_one(
                {"_id": item_id, "read_at": None}, {"$set": {"read_at": now}}
            )
            found = replace(found, read_at=now)
        return found


# --- documents ↔ port types ----------------------------------------------------------------


def _state(value: object) -> DeliveryState:
    for state in DELIVERY_STATES:
        if value == state:
            return state
    raise ValueError(f"unknown delivery state {value!r}")


def _finish(o: Outcome, now: datetime, *, upsert: bool) -> UpdateOne:
    update: Document = {"$set": {"state": o.state, "error": o.error, "done_at": now, **_extra(o)}}
    update.update(append_events(o.events, now))
    if upsert and o.delivery is not None:
        update["$setOnInsert"] = _record_fields(o.delivery, now)
    return UpdateOne({"_id": o.key}, update, upsert=upsert)


def _extra(o: Outcome) -> Document:
    return {"message_key": o.message_key} if o.message_key is not None else {}


def _record_fields(d: Delivery, now: datetime) -> Document:
    return {
        "ticket_id": d.ticket_id,
        "cause_event_id": d.event_id,
        "event_type": d.event_type,
        "channel": d.recipient.channel,
        "recipient_kind": d.recipient.kind,
        "template": d.template,
        "created_at": now,
    }


def _delivery_document(d: Delivery, now: datetime, outcome: Outcome | None) -> Document:
    doc: Document = {"_id": d.key, **_record_fields(d, now), "state": "pending"}
    if outcome is not None:
        doc.update(state=outcome.state, error=outcome.error, done_at=now, **_extra(outcome))
        return with_events(doc, outcome.events, now)
    return doc


def _delivery_record(doc: Document) -> DeliveryRecord:
    return DeliveryRecord(
        key=doc["_id"],
        ticket_id=doc["ticket_id"],
        cause_event_id=doc["cause_event_id"],
        event_type=doc["event_type"],
        channel=doc["channel"],
        recipient_kind=doc["recipient_kind"],
        template=doc["template"],
        state=_state(doc["state"]),
        error=doc.get("error"),
        message_key=doc.get("message_key"),
        digest_id=doc.get("digest_id"),
    )


def _fact_fields(update: FactUpdate) -> Document:
    fields = {
        "group": update.group,
        "category": update.category,
        "number": update.number,
        "first_reply_due": update.first_reply_due,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _first_fields(facts: FirstFacts) -> Document:
    r = facts.requester
    return {
        "requester": {"id": r.id, "email": r.email, "locale": r.locale, "timezone": r.timezone},
        "subject": facts.subject,
        "created_by": facts.created_by,
    }


def _facts(doc: Document) -> TicketFacts:
    r = doc.get("requester")
    requester = (
        Requester(r["id"], r.get("email"), r.get("locale", "en"), r.get("timezone", "UTC"))
        if isinstance(r, dict)
        else None
    )
    return TicketFacts(
        ticket_id=doc["_id"],
        requester=requester,
        subject=doc.get("subject"),
        created_by=doc.get("created_by"),
        group=doc.get("group"),
        category=doc.get("category"),
        first_reply_due=doc.get("first_reply_due"),
        number=doc.get("number"),
    )


def _preferences(doc: Document) -> Preferences:
    raw = doc.get("opt_out") or {}
    return Preferences(
        {
            ch: frozenset(Category(c) for c in cats if c in Category.__members__)
            for ch, cats in raw.items()
        }
    )


def _recipient_doc(r: Recipient) -> Document:
    return {
        "kind": r.kind,
        "channel": r.channel,
        "address": r.address,
        "user_id": r.user_id,
        "language": r.language,
        "timezone": r.timezone,
    }


def _digest_head(q: QueuedItem) -> Document:
    return {
        "ticket_id": q.ticket_id,
        "channel": q.recipient.channel,
        "recipient": _recipient_doc(q.recipient),
        "first_at": q.first_at,
        "due_at": q.due_at,
        "attempts": 0,
        "kind": q.kind,
    }


def _item_doc(i: DigestItem) -> Document:
    """Field for field as it always was: `$addToSet` compares whole items."""
    return {
        "key": i.key,
        "template": i.template,
        "event_id": i.event_id,
        "event_type": i.event_type,
        "time": i.time,
        "correlation_id": i.correlation_id,
        "ticket_id": i.ticket_id,
        "channel": i.channel,
        "recipient_kind": i.recipient_kind,
        "values": dict(i.values),
        "wait_for_sla": i.wait_for_sla,
    }


def _digest_item(doc: Document) -> DigestItem:
    return DigestItem(
        key=doc["key"],
        template=doc["template"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        time=doc["time"],
        correlation_id=str(doc.get("correlation_id") or ""),
        ticket_id=doc["ticket_id"],
        channel=doc["channel"],
        recipient_kind=doc["recipient_kind"],
        values=doc.get("values") or {},
        wait_for_sla=bool(doc.get("wait_for_sla", False)),
    )


def _kind(value: Any) -> DigestKind:
    return "sla_wait" if value == "sla_wait" else "digest"


def _leased(doc: Document) -> LeasedDigest:
    return LeasedDigest(
        id=doc["_id"],
        kind=_kind(doc.get("kind")),
        ticket_id=doc["ticket_id"],
        recipient=Recipient(**doc["recipient"]),
        items=tuple(_digest_item(i) for i in doc.get("items") or []),
        attempts=int(doc.get("attempts", 0)),
        first_at=doc["first_at"],
        due_at=doc["due_at"],
        lease_owner=doc["lease_owner"],
        lease_token=doc["lease_token"],
        lease_until=doc["lease_until"],
    )


def _inbox_doc(item: InboxItem) -> Document:
    return {
        "_id": item.id,
        "requester_id": item.requester_id,
        "ticket_id": item.ticket_id,
        "template": item.template,
        "title": item.title,
        "body": item.body,
        "created_at": item.created_at,
        "read_at": item.read_at,
    }


def _inbox_item(doc: Document) -> InboxItem:
    return InboxItem(
        id=doc["_id"],
        requester_id=doc["requester_id"],
        ticket_id=doc["ticket_id"],
        template=doc["template"],
        title=doc["title"],
        body=doc["body"],
        created_at=doc["created_at"],
        read_at=doc.get("read_at"),
    )
