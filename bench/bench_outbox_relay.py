"""The outbox relay draining a backlog: events/s, and documents it writes per event.

N documents (HELPSTREAM_BENCH_RELAY_DOCS, default 5,000), each an SLA-sized state with
one pending event, are written to a fresh collection on an embedded database; one relay
(`shared.outbox.OutboxRelay`, the services' settings) then runs rounds until the outbox
is empty. Timed from the first round to the last acknowledgement and clear. The
collection is wrapped to count the documents each relay write modified.

Baselines in the same run, on the same broker and database: (a) a bare aiokafka
producer sending the same N event values (acks=all, pipelined): what publishing costs
at least; (b) a bare bulk_write of one `$unset` per document over an identical
collection: what one write per document costs at least. The relay can reach neither
alone, since it does both.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient, UpdateOne

from bench._common import create_topics, infrastructure, prefix, produce_all
from shared.clock import SystemClock
from shared.events import Priority, SlaMetric, SlaWarning, make_event
from shared.kafka import make_producer
from shared.metrics import outbox_metrics
from shared.outbox import OUTBOX, OUTBOX_SINCE, OutboxRelay, ensure_outbox_index, outbox_entry
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from shared.infra.modes import Infra
    from shared.mongo import Document

DOCS = int(os.environ.get("HELPSTREAM_BENCH_RELAY_DOCS", "5000"))


class CountingCollection:
    """Passes every call through; adds up the documents the relay's writes modified."""

    def __init__(self, real: AsyncCollection[Document]) -> None:
        self._real = real
        self.modified = 0
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def update_many(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._real.update_many(*args, **kwargs)
        self.writes += 1
        self.modified += result.modified_count
        return result

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._real.bulk_write(*args, **kwargs)
        self.writes += 1
        self.modified += result.modified_count
        return result


def state(n: int) -> Document:
    """About the size of a ticket's SLA document: three timers and their history."""
    timer = {
        "target_s": 3600.0,
        "calendar": "always",
        "cycle": 1,
        "state": "running",
        "elapsed_before_s": 0.0,
        "warned": [],
    }
    return {
        "_id": f"T-{n:06d}",
        "partition": n % 4,
        "policy_name": "standard",
        "policy_version": "v1-0123abcd",
        "clocks": {m: dict(timer, metric=m) for m in ("first_reply", "resolution", "next_reply")},
        "seen": [f"e-{n}-{i}" for i in range(8)],
        "version": 3,
    }


def event_entry(topic: str, n: int) -> Document:
    data = SlaWarning(
        ticket_id=f"T-{n:06d}",
        metric=SlaMetric.first_reply,
        target_s=3600.0,
        elapsed_s=2700.0,
        remaining_s=900.0,
        deadline=datetime(2026, 11, 30, 12, tzinfo=UTC),
        priority=Priority.normal,
        policy="standard",
        policy_version="v1-0123abcd",
        threshold=0.75,
    )
    event = make_event(
        data, source="/helpstream/sla_monitor", time=datetime.now(UTC), correlationid=f"c-{n}"
    )
    return outbox_entry(topic, event)


async def seed(collection: AsyncCollection[Document], topic: str, *, pending: bool) -> None:
    await ensure_outbox_index(collection)
    now = datetime.now(UTC)
    docs = []
    for n in range(DOCS):
        doc = state(n)
        if pending:  # written one after another, a millisecond apart (BSON's resolution)
            since = now + timedelta(milliseconds=n)
            doc.update({OUTBOX: [event_entry(topic, n)], OUTBOX_SINCE: since})
        docs.append(doc)
    for i in range(0, len(docs), 500):
        await collection.insert_many(docs[i : i + 500], ordered=False)


async def main(infra: Infra) -> dict[str, float]:
    tag = prefix()
    topic = f"{tag}.helpstream.sla"
    await create_topics(infra.kafka_bootstrap, [topic, f"{tag}.raw"])
    settings = ServiceSettings(
        kafka_bootstrap=infra.kafka_bootstrap, mongo_url=infra.mongo_url, log_json=False
    )
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongo_url, tz_aware=True, w="majority", journal=True
    )
    try:
        db = client[f"{tag}_relay"]
        # (b) one $unset per document, bare
        bare = db["bare"]
        await seed(bare, topic, pending=True)
        ops = [
            UpdateOne({"_id": f"T-{n:06d}"}, {"$unset": {OUTBOX: "", OUTBOX_SINCE: ""}})
            for n in range(DOCS)
        ]
        started = time.perf_counter()
        for i in range(0, len(ops), 1000):
            await bare.bulk_write(ops[i : i + 1000], ordered=False)
        raw_clear_rate = DOCS / (time.perf_counter() - started)
        # (a) the same event values, produced bare
        values = [
            (f"T-{n:06d}".encode(), bytes(event_entry(topic, n)["value"])) for n in range(DOCS)
        ]
        started = time.perf_counter()
        await produce_all(infra.kafka_bootstrap, f"{tag}.raw", values)
        raw_produce_rate = DOCS / (time.perf_counter() - started)
        # the relay
        tickets = db["ticket_sla"]
        await seed(tickets, topic, pending=True)
        counting = CountingCollection(tickets)
        producer = make_producer(settings, "bench-relay")
        await producer.start()
        relay = OutboxRelay(
            [counting],  # type: ignore[list-item]
            producer,
            outbox_metrics(CollectorRegistry(), "bench"),
            SystemClock(),
        )
        try:
            rounds = 0
            started = time.perf_counter()
            while await relay.relay_once():
                rounds += 1
            elapsed = time.perf_counter() - started
        finally:
            await relay.stop()
            await producer.stop()
        left = await tickets.count_documents({OUTBOX_SINCE: {"$exists": True}})
        relayed = DOCS - left
        await client.drop_database(db.name)
    finally:
        await client.close()
    rate = relayed / elapsed
    out = {
        "outbox_relay_events_per_s": round(rate, 1),
        "outbox_relay_docs_written_per_event": round(counting.modified / max(relayed, 1), 2),
        "outbox_relay_write_calls": counting.writes,
        "outbox_relay_rounds": rounds,
        "outbox_relay_left": left,
        "outbox_relay_raw_produce_per_s": round(raw_produce_rate, 1),
        "outbox_relay_raw_clear_per_s": round(raw_clear_rate, 1),
        "outbox_relay_ratio_vs_raw_produce": round(rate / raw_produce_rate, 2),
        "outbox_relay_ratio_vs_raw_clear": round(rate / raw_clear_rate, 2),
    }
    for key, value in out.items():
        print(f"{key:42} {value}", flush=True)
    return out


def run() -> dict[str, float]:
    with infrastructure() as infra:
        return asyncio.run(main(infra))
