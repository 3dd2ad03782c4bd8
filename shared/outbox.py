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
from pymongo import ASCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from shared import tracing
from shared.ids import new_id
from shared.kafka import event_headers
from shared.tasks import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka import AIOKafkaProducer
    from pymongo.asynchronous.collection import AsyncCollection

    from shared.clock import Clock
    from shared.events import CloudEvent
    from shared.keyring import EventSealer
    from shared.metrics import OutboxMetrics
    from shared.mongo import Document

log = structlog.get_logger(__name__)

OUTBOX = "_outbox"
OUTBOX_SINCE = "_outbox_since"
# Per-document leases of earlier versions; cleared with the outbox wherever still set.
OUTBOX_CLAIM = "_outbox_claim"
OUTBOX_LEASE = "_outbox_lease"
RETIRE = {OUTBOX: "", OUTBOX_SINCE: "", OUTBOX_CLAIM: "", OUTBOX_LEASE: ""}
# One relay per database publishes, the holder of this lease document.
RELAY_LEASES = "outbox_relay_lease"
RELAY_LEASE = "relay"


def outbox_entry(topic: str, event: CloudEvent[Any]) -> Document:
    return {
        "id": event.id,
        "topic": topic,
        "key": event.subject,
        "value": event.to_bytes(),
        "time": event.time,
        "type": event.type,
        "correlationid": event.correlationid,
        # the context the event was made in: the relay's publish span continues it
        **({"traceparent": event.traceparent} if event.traceparent else {}),
    }


# The relay claims the oldest `_outbox_since` first; an outbox holding an urgent event (an
# SLA warning or breach) is dated here, so it goes before any backlog of ordinary ones.
URGENT_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def outbox_since(now: datetime, *, urgent: bool = False) -> datetime:
    return URGENT_SINCE if urgent else now


def outbox_update(entries: Sequence[Document], now: datetime, *, urgent: bool = False) -> Document:
    """Update operators that append events to a document's outbox."""
    return {
        "$push": {OUTBOX: {"$each": list(entries)}},
        "$min": {OUTBOX_SINCE: outbox_since(now, urgent=urgent)},
    }


RETIRED_INDEXES = (f"{OUTBOX_CLAIM}_1",)


async def ensure_outbox_index(collection: AsyncCollection[Document]) -> None:
    """One sparse index serves the relay: every query it makes is a `_outbox_since` range.
    (An index on `_outbox_claim` as well made every write to the collection dearer:
    SecantusDB reads each index's definition for every document it writes; a database
    that still has it loses it here.)"""
    await collection.create_index([(OUTBOX_SINCE, ASCENDING)], sparse=True)
    existing = {index["name"] async for index in await collection.list_indexes()}
    for name in RETIRED_INDEXES:
        if name in existing:
            with contextlib.suppress(OperationFailure):  # another instance dropped it first
                await collection.drop_index(name)
            log.info("outbox_index_retired", collection=collection.name, index=name)


MIN_CLAIM = 50  # the smallest round the relay shrinks to while the database is slow


class OutboxRelay(BackgroundTask):
    """Drains the outboxes of some collections to Kafka: urgent ones (timer fires) first,
    then the oldest.

    One relay per database publishes: the holder of a lease document it renews every
    half lease (so events of one document leave in order, and nobody writes a claim on
    each document). A round reads the pending documents with their outboxes, publishes
    with acks=all, and removes what it published with one write per document; that
    clear is the only write the relay adds to a state change. SecantusDB runs in
    one Python process beside the consumers, so every write the relay saves is one the
    consumers get. A holder that dies leaves its lease to run out; a relay that stops
    hands it back.

    Urgent documents also have a lane of their own (`wake_urgent`): small rounds that run
    beside an ordinary round rather than after it, since on a loaded database the clear
    of a 300-document round took seconds. Neither lane reads a document the other is
    relaying, so a document's events still leave in order.
    """

    def __init__(
        self,
        collections: Sequence[AsyncCollection[Document]],
        producer: AIOKafkaProducer,
        metrics: OutboxMetrics,
        clock: Clock,
        *,
        batch_size: int = 1000,
        idle_interval_s: float = 0.25,
        lease: timedelta = timedelta(seconds=30),
        backlog_interval_s: float = 1.0,
        quiet_s: float = 0.5,
        max_defer_s: float = 2.0,
        bulk_events: int = 50,
        sealer: EventSealer | None = None,
    ) -> None:
        super().__init__()
        self._sealer = sealer
        self._lease = lease
        self._holder = new_id()
        self._held_until: dict[str, datetime] = {}  # database name → lease held until
        self._tried_at: dict[str, datetime] = {}
        self._collections = list(collections)
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        # What a round claims now: halved after a round the database timed out on (a
        # 1,000-document lease outlasted the driver's timeout on a loaded SecantusDB, and
        # the same round failed again and again), doubled back after each success.
        self._limit = batch_size
        self._idle = idle_interval_s
        self._backlog_interval = backlog_interval_s
        self._backlog_at = -float("inf")
        self._quiet = quiet_s
        self._max_defer = max_defer_s
        self._bulk_events = bulk_events
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        # documents a round has read and not yet cleared: the other lane leaves them be,
        # so a document's events never leave in two rounds at once
        self._inflight: set[tuple[str, Any]] = set()
        self._last_wake = self._last_bulk = self._previous_bulk = -float("inf")
        self._last_small = -float("inf")
        self._failures = 0

    def wake(self, events: int = 1) -> None:
        """Called after a write with events, so they go out without waiting for the poll;
        `events`: how many that write carried (a consumer batch carries many). A small
        write (an HTTP request, a timer's breach) ends any deferral at once."""
        self._last_wake = time.monotonic()
        if events >= self._bulk_events:
            self._previous_bulk, self._last_bulk = self._last_bulk, self._last_wake
        else:
            self._last_small = self._last_wake
        self._wake.set()

    def wake_urgent(self) -> None:
        """Called after a write with urgent events (SLA timer fires): they leave in a
        round of their own at once, without waiting for a round of ordinary ones to end
        (under load one of those took seconds, most of it clearing). The ordinary rounds
        are not woken: they would only read the documents this lane is relaying."""
        self._urgent.set()

    name = "outbox-relay"

    async def stop(self) -> None:
        """Stops, and hands the lease back so another instance (or this one restarted)
        relays at once rather than after it runs out."""
        await super().stop()
        for collection in self._collections[:1]:
            with contextlib.suppress(PyMongoError):
                await collection.database[RELAY_LEASES].update_one(
                    {"_id": RELAY_LEASE, "holder": self._holder},
                    {"$set": {"until": datetime.now(UTC)}},
                )
        self._held_until.clear()
        self._metrics.lease_held.set(0)

    async def run(self) -> None:
        urgent = asyncio.create_task(self._run_urgent(), name=f"{self.name}-urgent")
        try:
            await self._run_rounds()
        finally:
            urgent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await urgent

    async def _run_urgent(self) -> None:
        """The urgent lane: after each urgent wake, rounds of urgent documents only."""
        while True:
            await self._urgent.wait()
            self._urgent.clear()
            try:
                while await self.relay_once(urgent=True) >= MIN_CLAIM:
                    pass  # a full round: more may wait (each takes one event or more)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the ordinary rounds take urgent documents first anyway
                self._metrics.failures.inc()
                log.warning(
                    "outbox_relay_failed", lane="urgent", error=f"{type(exc).__name__}: {exc}"[:300]
                )
                await asyncio.sleep(0.5)

    async def _run_rounds(self) -> None:
        while True:
            started = time.monotonic()
            try:
                relayed = await self.relay_once()
                self._failures = 0
                self._limit = min(self._batch_size, self._limit * 2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures += 1
                if isinstance(exc, PyMongoError) and exc.timeout:
                    self._limit = max(MIN_CLAIM, self._limit // 2)
                self._metrics.failures.inc()
                delay = min(5.0, 0.1 * 2 ** min(self._failures, 6))
                log.warning(
                    "outbox_relay_failed", error=f"{type(exc).__name__}: {exc}"[:300], delay_s=delay
                )
                await asyncio.sleep(delay)
                continue
            if relayed >= self._limit:
                continue  # a backlog: drain it
            if self._last_wake < started:  # nothing written since this round began
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle)
            await self._yield_to_writers()

    async def _yield_to_writers(self) -> None:
        """After bulk writes (a consumer working through a backlog), leave the database
        to the consumer until its writes pause, for at most `max_defer_s`.

        The database is the bottleneck and the relay's work per event is the same either
        way, so this only reorders work: the backlog is applied (and committed) sooner and
        the last event leaves no later. A pause is no bulk write for one and a half of
        their usual gap (at least `quiet_s`). Small writes (HTTP requests, breaches)
        never wait: one arriving ends the deferral."""
        now = entered = time.monotonic()
        if now - self._last_bulk >= self._max_defer:
            return
        gap = self._last_bulk - self._previous_bulk
        quiet = max(self._quiet, 1.5 * gap) if gap < self._max_defer else self._quiet
        deadline = now + self._max_defer
        while (until := min(self._last_bulk + quiet, deadline)) > now:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), until - now)
            if self._last_small >= entered:
                return
            now = time.monotonic()

    async def relay_once(self, *, urgent: bool = False) -> int:
        """Publish one batch of pending events (`urgent`: of urgent documents only, at
        most `MIN_CLAIM`); returns how many were acknowledged."""
        total = 0
        for collection in self._collections:
            docs = await self._claim(collection, urgent=urgent)
            if not docs:
                continue
            keys = {(collection.name, doc["_id"]) for doc in docs}
            self._inflight |= keys
            try:
                total += await self._publish(collection, docs, urgent=urgent)
            finally:
                self._inflight -= keys
        if not urgent:
            await self._refresh_backlog(idle=total == 0)
        return total

    async def _refresh_backlog(self, *, idle: bool) -> None:
        """The pending-documents gauge: counted when idle, else at most once a
        `backlog_interval_s` (a count walks the whole backlog's index entries)."""
        started = time.monotonic()
        if not idle and started - self._backlog_at < self._backlog_interval:
            return
        backlog = 0
        for collection in self._collections:
            backlog += await collection.count_documents({OUTBOX_SINCE: {"$exists": True}})
        self._metrics.backlog.set(backlog)
        self._backlog_at = started

    async def _claim(
        self, collection: AsyncCollection[Document], *, urgent: bool
    ) -> list[Document]:
        """The oldest documents with pending events (urgent ones only, for the urgent
        lane), read once with their outboxes, while this relay holds the lease; none when
        another relay holds it. Documents the other lane is relaying are left out."""
        if not await self._lease_held(collection):
            return []
        pending: Document = {"$eq": URGENT_SINCE} if urgent else {"$exists": True}
        docs = (
            await collection.find({OUTBOX_SINCE: pending}, {OUTBOX: 1, OUTBOX_SINCE: 1})
            .sort(OUTBOX_SINCE, ASCENDING)
            .limit(MIN_CLAIM if urgent else self._limit)
            .to_list()
        )
        return [doc for doc in docs if (collection.name, doc["_id"]) not in self._inflight]

    async def _lease_held(self, collection: AsyncCollection[Document]) -> bool:
        """Whether this relay holds the database's relay lease, taking or renewing it as
        needed: one conditional write every half lease, none in between. A relay that
        does not hold it tries again after a quarter lease."""
        now = datetime.now(UTC)  # leases are wall-clock, whatever clock the service runs on
        held_until = self._held_until.get(collection.database.name)
        if held_until is not None and now + self._lease / 2 < held_until:
            return True
        tried = self._tried_at.get(collection.database.name)
        if held_until is None and tried is not None and now < tried + self._lease / 4:
            return False
        self._tried_at[collection.database.name] = now
        until = now + self._lease
        try:
            await collection.database[RELAY_LEASES].update_one(
                {"_id": RELAY_LEASE, "$or": [{"holder": self._holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": self._holder, "until": until}},
                upsert=True,
            )
        except DuplicateKeyError:  # another relay holds it
            if held_until is not None:
                log.warning("outbox_relay_lease_lost", database=collection.database.name)
            self._held_until.pop(collection.database.name, None)
            self._metrics.lease_held.set(0)
            return False
        if held_until is None:
            log.info("outbox_relay_lease_taken", database=collection.database.name)
        self._held_until[collection.database.name] = until
        self._metrics.lease_held.set(1)
        return True

    async def _publish(
        self, collection: AsyncCollection[Document], docs: list[Document], *, urgent: bool
    ) -> int:
        started = time.perf_counter()
        futures = []
        entries: list[Document] = [entry for doc in docs for entry in doc.get(OUTBOX) or []]
        # personal fields leave sealed under their requester's key (shared.keyring)
        values = (
            await self._sealer.seal(entries)
            if self._sealer is not None
            else [bytes(entry["value"]) for entry in entries]
        )
        spans = []
        for entry, value in zip(entries, values, strict=True):
            span = tracing.start_publish(
                entry["topic"], entry.get("traceparent"), str(entry["key"])
            )
            spans.append(span)
            futures.append(
                await self._producer.send(
                    entry["topic"],
                    value,
                    key=str(entry["key"]).encode(),
                    headers=event_headers(span),
                )
            )
        try:
            await asyncio.gather(*futures)
        except BaseException as exc:
            tracing.end_spans(spans, exc)
            raise
        tracing.end_spans(spans)
        await self._clear(collection, docs)
        now = self._clock.now()
        per_topic: dict[str, int] = {}
        for entry in entries:
            per_topic[entry["topic"]] = per_topic.get(entry["topic"], 0) + 1
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
        for topic, count in per_topic.items():
            self._metrics.relayed.labels(topic).inc(count)
        if urgent:
            self._metrics.urgent_relayed.inc(len(entries))
        log.debug("outbox_relayed", events=len(entries), seconds=time.perf_counter() - started)
        return len(entries)

    @staticmethod
    async def _clear(collection: AsyncCollection[Document], docs: list[Document]) -> None:
        """Take the published events out of their documents: one write per document.

        Writers only ever append to an outbox, only a relay removes from it, and no event
        id comes back once removed; so an outbox whose size and last event are those just
        published holds exactly them (anything appended since would stand after that last
        event, anything removed would shrink it), and is removed whole. One that gained
        events meanwhile has just the published ids pulled. Matching on the events
        themselves, not on who read them, keeps a relay that lost its lease while
        publishing (paused past it) from clearing events it never saw: it can only remove
        what it published.
        """
        ops: list[UpdateOne] = []
        for doc in docs:
            entries = doc.get(OUTBOX) or []
            match: Document = {"_id": doc["_id"], OUTBOX: {"$size": len(entries)}}
            if entries:
                match[f"{OUTBOX}.{len(entries) - 1}.id"] = entries[-1]["id"]
            ops.append(UpdateOne(match, {"$unset": RETIRE}))
        result = await collection.bulk_write(ops, ordered=False)
        if result.matched_count == len(docs):
            return
        ops = []
        for doc in docs:  # documents already cleared match nothing here
            ids = [entry["id"] for entry in doc.get(OUTBOX) or []]
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$pull": {OUTBOX: {"id": {"$in": ids}}}}))
            ops.append(UpdateOne({"_id": doc["_id"], OUTBOX: {"$size": 0}}, {"$unset": RETIRE}))
        await collection.bulk_write(ops, ordered=True)
