"""Transactional outbox inside the state document, and the relay that drains it.

A state change and the events it causes are written in one document update (the
`_outbox` array), so no crash can separate them. The relay publishes pending events
with acks=all and only then pulls them out. A crash between the two republishes the
same event ids, which consumers dedupe: nothing is lost, no effect is doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from pymongo import ASCENDING, UpdateMany, UpdateOne

from shared.ids import new_id
from shared.kafka import EVENT_HEADERS
from shared.tasks import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka import AIOKafkaProducer
    from pymongo.asynchronous.collection import AsyncCollection

    from shared.clock import Clock
    from shared.events import CloudEvent
    from shared.metrics import OutboxMetrics
    from shared.mongo import Document

log = structlog.get_logger(__name__)

OUTBOX = "_outbox"
OUTBOX_SINCE = "_outbox_since"
OUTBOX_CLAIM = "_outbox_claim"
OUTBOX_LEASE = "_outbox_lease"


def outbox_entry(topic: str, event: CloudEvent[Any]) -> Document:
    return {
        "id": event.id,
        "topic": topic,
        "key": event.subject,
        "value": event.to_bytes(),
        "time": event.time,
        "type": event.type,
        "correlationid": event.correlationid,
    }


def outbox_update(entries: Sequence[Document], now: datetime) -> Document:
    """Update operators that append events to a document's outbox."""
    return {"$push": {OUTBOX: {"$each": list(entries)}}, "$min": {OUTBOX_SINCE: now}}


def new_document_outbox(entries: Sequence[Document], now: datetime) -> Document:
    """Outbox fields for a document being inserted with its first events."""
    return {OUTBOX: list(entries), OUTBOX_SINCE: now} if entries else {}


async def ensure_outbox_index(collection: AsyncCollection[Document]) -> None:
    await collection.create_index([(OUTBOX_SINCE, ASCENDING)], sparse=True)
    await collection.create_index([(OUTBOX_CLAIM, ASCENDING)], sparse=True)


class OutboxRelay(BackgroundTask):
    """Drains the outboxes of some collections to Kafka, oldest first."""

    def __init__(
        self,
        collections: Sequence[AsyncCollection[Document]],
        producer: AIOKafkaProducer,
        metrics: OutboxMetrics,
        clock: Clock,
        *,
        batch_size: int = 500,
        idle_interval_s: float = 0.25,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        super().__init__()
        self._lease = lease
        self._collections = list(collections)
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        self._idle = idle_interval_s
        self._wake = asyncio.Event()
        self._failures = 0

    def wake(self) -> None:
        """Called after a write with events, so they go out without waiting for the poll."""
        self._wake.set()

    name = "outbox-relay"

    async def run(self) -> None:
        while True:
            try:
                relayed = await self.relay_once()
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures += 1
                self._metrics.failures.inc()
                delay = min(5.0, 0.1 * 2 ** min(self._failures, 6))
                log.warning(
                    "outbox_relay_failed", error=f"{type(exc).__name__}: {exc}"[:300], delay_s=delay
                )
                await asyncio.sleep(delay)
                continue
            if relayed < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle)

    async def relay_once(self) -> int:
        """Publish one batch of pending events; returns how many were acknowledged."""
        total = 0
        backlog = 0
        for collection in self._collections:
            docs = await self._claim(collection)
            if not docs:
                continue
            total += await self._publish(collection, docs)
            backlog += await collection.count_documents({OUTBOX_SINCE: {"$exists": True}})
        self._metrics.backlog.set(backlog)
        return total

    async def _claim(self, collection: AsyncCollection[Document]) -> list[Document]:
        """Lease a batch of documents to this relay, so instances never publish the same
        events twice; a relay that dies leaves leases that expire and are taken over."""
        now = datetime.now(UTC)  # leases are wall-clock, whatever clock the service runs on
        # "no lease, or an expired one" as one condition, not an $or: that keeps the query
        # on the `_outbox_since` index (an $or made SecantusDB scan the whole collection)
        free = {OUTBOX_LEASE: {"$not": {"$gte": now}}}
        candidates = (
            await collection.find({OUTBOX_SINCE: {"$exists": True}, **free}, {"_id": 1})
            .sort(OUTBOX_SINCE, ASCENDING)
            .limit(self._batch_size)
            .to_list()
        )
        if not candidates:
            return []
        claim = new_id()
        await collection.update_many(
            {"_id": {"$in": [d["_id"] for d in candidates]}, **free},
            {"$set": {OUTBOX_CLAIM: claim, OUTBOX_LEASE: now + self._lease}},
        )
        return (
            await collection.find({OUTBOX_CLAIM: claim}, {OUTBOX: 1})
            .sort(OUTBOX_SINCE, ASCENDING)
            .to_list()
        )

    async def _publish(self, collection: AsyncCollection[Document], docs: list[Document]) -> int:
        started = time.perf_counter()
        futures = []
        sent: list[tuple[Any, list[str]]] = []
        for doc in docs:
            ids = []
            for entry in doc.get(OUTBOX) or []:
                futures.append(
                    await self._producer.send(
                        entry["topic"],
                        bytes(entry["value"]),
                        key=str(entry["key"]).encode(),
                        headers=EVENT_HEADERS,
                    )
                )
                ids.append(entry["id"])
            sent.append((doc["_id"], ids))
        await asyncio.gather(*futures)
        now = self._clock.now()
        ops: list[UpdateOne | UpdateMany] = [
            UpdateOne(
                {"_id": doc_id},
                {
                    "$pull": {OUTBOX: {"id": {"$in": ids}}},
                    "$unset": {OUTBOX_CLAIM: "", OUTBOX_LEASE: ""},
                },
            )
            for doc_id, ids in sent
        ]
        ops.append(
            UpdateMany(
                {"_id": {"$in": [doc_id for doc_id, _ in sent]}, OUTBOX: {"$size": 0}},
                {"$unset": {OUTBOX: "", OUTBOX_SINCE: ""}},
            )
        )
        await collection.bulk_write(ops, ordered=True)
        count = 0
        for doc in docs:
            for entry in doc.get(OUTBOX) or []:
                self._metrics.relayed.labels(entry["topic"]).inc()
                log.info(  # the audit line of every state change: ids and type, never bodies
                    "event_published",
                    event_type=entry.get("type"),
                    event_id=entry["id"],
                    ticket_id=entry["key"],
                    correlation_id=entry.get("correlationid"),
                )
                event_time = entry.get("time")
                if isinstance(event_time, datetime):
                    self._metrics.relay_lag_seconds.observe(
                        max(0.0, (now - event_time).total_seconds())
                    )
                count += 1
        log.debug("outbox_relayed", events=count, seconds=time.perf_counter() - started)
        return count
