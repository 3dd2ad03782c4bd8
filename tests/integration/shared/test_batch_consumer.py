"""The batch consumer: poison goes to the DLQ with its reason, failures retry, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from shared.consumer import BatchConsumer
from shared.errors import Retryable
from shared.events import (
    Category,
    Channel,
    Priority,
    Requester,
    Status,
    TicketCreated,
    TicketSummary,
    make_event,
)
from shared.infra.modes import Infra
from shared.infra.processes import free_port
from shared.kafka import DeadLetters, Rejected, decode_events, make_producer
from shared.metrics import consumer_metrics
from shared.settings import ServiceSettings
from tests.support import Tap, eventually, produce


def created_event(ticket_id: str) -> bytes:
    now = datetime.now(UTC)
    summary = TicketSummary(
        status=Status.new,
        priority=Priority.normal,
        category=Category.other,
        channel=Channel.web,
        group="general",
        requester_id="u-1",
        created_at=now,
    )
    data = TicketCreated(
        ticket_id=ticket_id, ticket=summary, requester=Requester(id="u-1"), subject="hi"
    )
    return make_event(data, source="/helpstream/test", time=now, correlationid="c").to_bytes()


async def run_consumer(
    settings: ServiceSettings, topic: str, handle: Any, registry: CollectorRegistry
) -> tuple[BatchConsumer, Any]:
    producer = make_producer(settings, "test")
    await producer.start()
    consumer = BatchConsumer(
        name="probe",
        service="test",
        topics=[topic],
        group_id=f"{settings.topic_prefix}probe",
        settings=settings,
        handle=handle,
        dead_letters=DeadLetters(producer, "test.probe"),
        metrics=consumer_metrics(registry, "test"),
    )
    await consumer.start()
    return consumer, producer


async def test_poison_messages_go_to_the_dlq_with_a_reason_and_good_ones_are_applied(
    infra: Infra, make_settings: Any
) -> None:
    settings = make_settings(ServiceSettings)
    topic = f"{settings.topic_prefix}input"
    applied: list[str] = []

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        accepted, rejected = decode_events(records)
        applied.extend(item.value.subject for item in accepted)
        return rejected

    await produce(
        infra.kafka_bootstrap,
        topic,
        [
            (b"a", b"\x00\xffnot json"),
            (b"b", b'{"specversion": "1.0"}'),
            (b"c", created_event("T-1")),
            (b"d", created_event("T-2").replace(b"ticket.created", b"ticket.exploded")),
        ],
    )
    registry = CollectorRegistry()
    async with Tap(infra.kafka_bootstrap, f"{topic}.dlq") as dlq:
        consumer, producer = await run_consumer(settings, topic, handle, registry)
        try:
            records = await dlq.collect(3)
            await eventually(lambda: _true(applied == ["T-1"]))

            async def counted() -> bool:  # counted after the commit, a moment after the DLQ
                return registry.get_sample_value(
                    "helpstream_test_consumer_messages_processed_total",
                    {"consumer": "probe", "topic": topic},
                ) == 1 and bool(
                    registry.get_sample_value(
                        "helpstream_test_consumer_messages_rejected_total",
                        {"consumer": "probe", "topic": topic, "reason": "invalid_json"},
                    )
                )

            await eventually(counted)
        finally:
            await consumer.stop()
            await producer.stop()

    reasons = sorted(dict(r.headers)["error-type"].decode() for r in records)
    assert reasons == ["invalid_envelope", "invalid_json", "unknown_type"]
    assert {r.value for r in records} >= {b"\x00\xffnot json"}
    assert all(dict(r.headers)["consumer"] == b"test.probe" for r in records)
    assert (
        registry.get_sample_value(
            "helpstream_test_consumer_messages_rejected_total",
            {"consumer": "probe", "topic": topic, "reason": "invalid_json"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "helpstream_test_consumer_messages_processed_total",
            {"consumer": "probe", "topic": topic},
        )
        == 1
    )


async def test_a_batch_that_fails_transiently_is_retried_until_it_succeeds(
    infra: Infra, make_settings: Any
) -> None:
    settings = make_settings(ServiceSettings)
    topic = f"{settings.topic_prefix}input"
    attempts: list[int] = []
    applied: list[str] = []

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        attempts.append(len(records))
        if len(attempts) < 3:
            raise Retryable("database briefly away")
        accepted, rejected = decode_events(records)
        applied.extend(item.value.subject for item in accepted)
        return rejected

    await produce(infra.kafka_bootstrap, topic, [(b"k", created_event(f"T-{i}")) for i in range(5)])
    registry = CollectorRegistry()
    consumer, producer = await run_consumer(settings, topic, handle, registry)
    try:
        await eventually(lambda: _true(len(applied) == 5))
    finally:
        await consumer.stop()
        await producer.stop()
    assert applied == [f"T-{i}" for i in range(5)]
    assert (
        registry.get_sample_value(
            "helpstream_test_consumer_batch_retries_total", {"consumer": "probe"}
        )
        == 2
    )


async def _true(value: bool) -> bool:
    return value


async def test_a_record_with_undecodable_headers_goes_to_the_dlq_and_its_batch_is_applied(
    infra: Infra, make_settings: Any
) -> None:
    """FastStream's own batch parser raises on such a header before any handler runs,
    and the batch is then neither acknowledged nor rewound (see `shared.consumer`)."""
    settings = make_settings(ServiceSettings)
    topic = f"{settings.topic_prefix}input"
    applied: list[str] = []

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        accepted, rejected = decode_events(records)
        applied.extend(item.value.subject for item in accepted)
        return rejected

    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, created_event("T-1"), key=b"k")
        await producer.send_and_wait(
            topic, b"\xff\xfe poison", key=b"k", headers=[("trace", b"\xff\xfe\x00")]
        )
        await producer.send_and_wait(topic, created_event("T-2"), key=b"k")
    finally:
        await producer.stop()
    registry = CollectorRegistry()
    async with Tap(infra.kafka_bootstrap, f"{topic}.dlq") as dlq:
        consumer, dlq_producer = await run_consumer(settings, topic, handle, registry)
        try:
            (dead,) = await dlq.collect(1, timeout=30)
            await eventually(lambda: _true(applied == ["T-1", "T-2"]))
        finally:
            await consumer.stop()
            await dlq_producer.stop()
    headers = dict(dead.headers)
    assert headers["error-type"] == b"invalid_json"
    assert headers["trace"] == b"\xff\xfe\x00"  # the original header, as it was


async def test_a_consumer_started_while_the_broker_is_away_says_so_and_stops_cleanly(
    make_settings: Any,
) -> None:
    """Starting does not wait for the group (a service serves HTTP meanwhile); the join
    retries in the background and readiness reports why it is not in yet."""
    settings = make_settings(ServiceSettings, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    registry = CollectorRegistry()
    consumer = BatchConsumer(
        name="probe",
        service="test",
        topics=[f"{settings.topic_prefix}input"],
        group_id=f"{settings.topic_prefix}probe",
        settings=settings,
        handle=None,  # type: ignore[arg-type]  # never reached
        dead_letters=None,  # type: ignore[arg-type]
        metrics=consumer_metrics(registry, "test"),
    )
    await consumer.start()
    try:
        await eventually(lambda: _true(consumer.last_error is not None), timeout=30)
        assert consumer.assigned == set()
    finally:
        await asyncio.wait_for(consumer.stop(), 10)


async def test_a_caught_up_partition_is_applied_up_to_its_last_fetch_but_not_past_a_pending_event(
    infra: Infra, make_settings: Any
) -> None:
    settings = make_settings(ServiceSettings)
    topic = f"{settings.topic_prefix}input"
    release = asyncio.Event()
    handed: dict[int, tuple[TopicPartition, datetime]] = {}  # offset → partition, when

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        for record in records:
            handed[record.offset] = (TopicPartition(record.topic, record.partition), now())
        if 1 in handed:  # the second event (same key, same partition) is slow to apply
            await release.wait()
        return []

    await produce(infra.kafka_bootstrap, topic, [(b"T-1", created_event("T-1"))])
    consumer, producer = await run_consumer(settings, topic, handle, CollectorRegistry())
    try:
        await eventually(lambda: _true(0 in handed))
        tp, _ = handed[0]
        first = await eventually(lambda: _got(consumer.watermarks.get(tp)))

        # quiet and caught up: applied up to a recent fetch, well past its only event
        past_first = first + timedelta(milliseconds=500)
        await eventually(lambda: _true((consumer.watermark(tp) or first) > past_first))

        await produce(infra.kafka_bootstrap, topic, [(b"T-1", created_event("T-1"))])
        await eventually(lambda: _true(1 in handed))
        _, handed_at = handed[1]
        await asyncio.sleep(0.6)  # several fetches go by while it is being applied
        pending = consumer.watermark(tp)
        assert pending is not None
        assert pending < handed_at  # not past the fetch that brought the pending event

        release.set()
        await eventually(lambda: _true((consumer.watermark(tp) or first) > handed_at))
    finally:
        release.set()
        await consumer.stop()
        await producer.stop()


def now() -> datetime:
    return datetime.now(UTC)


async def _got(value: datetime | None) -> datetime | None:
    return value
