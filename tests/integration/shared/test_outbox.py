"""Events written with a state change reach Kafka once, and the outbox empties."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from shared.clock import SystemClock
from shared.events import CloudEvent, Contract, parse_event
from shared.infra.modes import Infra
from shared.kafka import make_producer
from shared.metrics import outbox_metrics
from shared.outbox import OUTBOX, OUTBOX_SINCE, OutboxRelay, ensure_outbox_index, outbox_entry
from shared.settings import ServiceSettings
from tests.integration.shared.test_batch_consumer import created_event
from tests.support import Tap


async def test_relay_publishes_every_pending_event_once_and_clears_the_outbox(
    infra: Infra, make_settings: Any, uid: str
) -> None:
    settings = make_settings(ServiceSettings)
    topic = f"{settings.topic_prefix}tickets"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    tickets = client[f"t{uid}"]["tickets"]
    await ensure_outbox_index(tickets)
    now = datetime.now(UTC)
    events: list[CloudEvent[Contract]] = [parse_event(created_event(f"T-{i}")) for i in range(30)]
    await tickets.insert_many(
        [{"_id": e.subject, OUTBOX: [outbox_entry(topic, e)], OUTBOX_SINCE: now} for e in events]
    )
    producer = make_producer(settings, "test")
    await producer.start()
    registry = CollectorRegistry()
    relay = OutboxRelay(
        [tickets], producer, outbox_metrics(registry, "test"), SystemClock(), batch_size=7
    )
    try:
        async with Tap(infra.kafka_bootstrap, topic) as tap:
            while await relay.relay_once():
                pass
            received = await tap.collect(30)
            await tap.settle(1.0)
        left = await tickets.count_documents({OUTBOX_SINCE: {"$exists": True}})
    finally:
        await producer.stop()
        await client.drop_database(f"t{uid}")
        await client.close()

    ids = [parse_event(r.value).id for r in received]
    assert sorted(ids) == sorted(e.id for e in events)
    assert {r.key for r in received} == {e.subject.encode() for e in events}
    assert left == 0
    assert registry.get_sample_value("helpstream_test_outbox_pending_documents") == 0


async def test_two_relays_on_one_collection_publish_each_event_once(
    infra: Infra, make_settings: Any, uid: str
) -> None:
    import asyncio

    settings = make_settings(ServiceSettings)
    topic = f"{settings.topic_prefix}tickets"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    tickets = client[f"t{uid}"]["tickets"]
    await ensure_outbox_index(tickets)
    now = datetime.now(UTC)
    events = [parse_event(created_event(f"T-{i}")) for i in range(60)]
    await tickets.insert_many(
        [{"_id": e.subject, OUTBOX: [outbox_entry(topic, e)], OUTBOX_SINCE: now} for e in events]
    )
    producer = make_producer(settings, "test")
    await producer.start()
    relays = [
        OutboxRelay(
            [tickets],
            producer,
            outbox_metrics(CollectorRegistry(), "test"),
            SystemClock(),
            batch_size=5,
        )
        for _ in range(2)
    ]
    try:
        async with Tap(infra.kafka_bootstrap, topic) as tap:
            for _ in range(20):
                await asyncio.gather(*(relay.relay_once() for relay in relays))
            await tap.collect(60)
            received = await tap.settle(1.0)
    finally:
        await producer.stop()
        await client.drop_database(f"t{uid}")
        await client.close()
    ids = [parse_event(r.value).id for r in received]
    assert sorted(ids) == sorted(e.id for e in events)
