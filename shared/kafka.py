"""Kafka mechanics: the producer every service uses and the batch consumer loop.

The consumer is the heart of the data-safety rules: it takes what one poll returns,
hands the whole batch to the service (one durable write), sends poison messages to
`<topic>.dlq` with the reason, and only then commits. A transient failure rewinds
to the batch's first offsets and retries with backoff; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from shared.clock import Clock, SystemClock
from shared.errors import Invalid
from shared.events import CONTENT_TYPE, CloudEvent, Contract, parse_event
from shared.mongo import TRANSIENT_ERRORS
from shared.tasks import LoopWorker
from shared.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from aiokafka.structs import ConsumerRecord

    from shared.metrics import ConsumerMetrics
    from shared.settings import ServiceSettings

    BatchHandler = Callable[
        [Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[Sequence["Rejected"]]
    ]

log = structlog.get_logger(__name__)
T = TypeVar("T")

EVENT_HEADERS = [("content-type", CONTENT_TYPE.encode())]


def make_producer(settings: ServiceSettings, client_id: str) -> AIOKafkaProducer:
    """acks=all always; idempotence where the broker supports it (consumers dedupe anyway)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        linger_ms=5,
        request_timeout_ms=15_000,
        max_request_size=4 * 1024 * 1024,
    )


async def publish_event(producer: AIOKafkaProducer, topic: str, event: CloudEvent[Any]) -> None:
    await producer.send_and_wait(
        topic, event.to_bytes(), key=event.subject.encode(), headers=EVENT_HEADERS
    )


@dataclass(frozen=True)
class Accepted(Generic[T]):
    record: ConsumerRecord[bytes, bytes]
    value: T


@dataclass(frozen=True)
class Rejected:
    record: ConsumerRecord[bytes, bytes]
    error: Invalid


def decode_events(
    records: Iterable[ConsumerRecord[bytes, bytes]], accept: frozenset[str] | None = None
) -> tuple[list[Accepted[CloudEvent[Contract]]], list[Rejected]]:
    """Split a batch into valid events and poison messages (with the reason)."""
    accepted: list[Accepted[CloudEvent[Contract]]] = []
    rejected: list[Rejected] = []
    for record in records:
        if record.value is None:
            rejected.append(Rejected(record, Invalid("empty", "message has no value")))
            continue
        try:
            accepted.append(Accepted(record, parse_event(record.value, accept)))
        except Invalid as exc:
            rejected.append(Rejected(record, exc))
    return accepted, rejected


class DeadLetters:
    """Publishes poison messages unchanged to `<topic>.dlq`, the reason in headers."""

    def __init__(self, producer: AIOKafkaProducer, consumer: str) -> None:
        self._producer = producer
        self._consumer = consumer

    async def send(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        failed_at = datetime.now(UTC).isoformat()
        futures = []
        for item in rejected:
            record = item.record
            headers = [
                *(record.headers or ()),
                ("error-type", item.error.reason.encode()),
                ("error-message", item.error.detail.encode()[:2000]),
                ("failed-at", failed_at.encode()),
                ("consumer", self._consumer.encode()),
                ("original-topic", record.topic.encode()),
                ("original-partition", str(record.partition).encode()),
                ("original-offset", str(record.offset).encode()),
            ]
            futures.append(
                await self._producer.send(
                    Topics.dlq(record.topic), record.value, key=record.key, headers=headers
                )
            )
        await asyncio.gather(*futures)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (*TRANSIENT_ERRORS, KafkaError, OSError, asyncio.TimeoutError))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._owner.on_revoked is not None:
            await self._owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._owner.on_assigned is not None:
            await self._owner.on_assigned(set(assigned))


class BatchConsumer:
    """One consumer-group member: poll a batch, apply it durably, DLQ poison, commit.

    `handle` receives every record of the batch and returns the ones it found invalid;
    it must be idempotent (the same batch may come again after a crash or a retry).
    """

    def __init__(
        self,
        *,
        name: str,
        service: str,
        topics: Sequence[str],
        group_id: str,
        settings: ServiceSettings,
        handle: BatchHandler,
        dead_letters: DeadLetters,
        metrics: ConsumerMetrics,
        on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
        on_revoked: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock = clock or SystemClock()
        # Per partition: the time up to which every event has been applied (event-time
        # consumers such as SLA timers must not act ahead of it).
        self.watermarks: dict[TopicPartition, datetime] = {}
        self._service = service
        self._topics = list(topics)
        self._group_id = group_id
        self._settings = settings
        self._handle = handle
        self._dlq = dead_letters
        self._metrics = metrics
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self._consumer: AIOKafkaConsumer | None = None
        self._loop = LoopWorker(f"consumer:{name}", self._run)
        self._failures = 0
        self.last_error: str | None = None

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self._group_id,
            client_id=f"{self._service}-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self._settings.kafka_heartbeat_interval_ms,
            max_poll_records=self._settings.kafka_max_records,
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=_Listener(self))
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                batches = await consumer.getmany(
                    timeout_ms=500, max_records=self._settings.kafka_max_records
                )
            except KafkaError as exc:
                await self._back_off(exc)
                continue
            records = [r for part in batches.values() for r in part]
            if records:
                await self._process(consumer, batches, records)
            await self._record_lag(consumer)

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        started = time.perf_counter()
        try:
            rejected = await self._handle(records)
            await self._dlq.send(rejected)
            await consumer.commit({tp: part[-1].offset + 1 for tp, part in batches.items()})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Nothing of this batch is committed: rewind and take it again.
            for tp, part in batches.items():
                consumer.seek(tp, part[0].offset)
            self._metrics.retries.labels(self.name).inc()
            await self._back_off(exc)
            return
        self._failures = 0
        self.last_error = None
        for tp, part in batches.items():
            taken = datetime.fromtimestamp(part[-1].timestamp / 1000, UTC)
            self.watermarks[tp] = max(self.watermarks.get(tp, taken), taken)
        self._metrics.batch_seconds.labels(self.name).observe(time.perf_counter() - started)
        self._metrics.batch_size.labels(self.name).observe(len(records))
        rejected_offsets = {(r.record.topic, r.record.partition, r.record.offset) for r in rejected}
        for item in rejected:
            self._metrics.rejected.labels(self.name, item.record.topic, item.error.reason).inc()
            log.warning(
                "message_rejected",
                consumer=self.name,
                topic=item.record.topic,
                partition=item.record.partition,
                offset=item.record.offset,
                reason=item.error.reason,
            )
        per_topic: dict[str, int] = {}
        for r in records:
            if (r.topic, r.partition, r.offset) not in rejected_offsets:
                per_topic[r.topic] = per_topic.get(r.topic, 0) + 1
        for topic, count in per_topic.items():
            self._metrics.processed.labels(self.name, topic).inc(count)

    async def _back_off(self, exc: BaseException) -> None:
        self._failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        delay = min(self._settings.retry_backoff_max_s, 0.1 * 2 ** min(self._failures, 10))
        log.warning(
            "batch_retry",
            consumer=self.name,
            transient=is_transient(exc),
            error=self.last_error,
            attempt=self._failures,
            delay_s=delay,
        )
        await asyncio.sleep(delay)

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag from highwater minus position (the embedded broker cannot list group offsets).

        A partition with no lag is applied up to now; otherwise up to the last record taken.
        """
        assigned = consumer.assignment()
        for tp in list(self.watermarks):
            if tp not in assigned:
                del self.watermarks[tp]
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await consumer.position(tp)
            except KafkaError:
                continue
            lag = max(0, high - position)
            self._metrics.lag.labels(self._group_id, tp.topic, tp.partition).set(lag)
            if lag == 0:
                self.watermarks[tp] = self._clock.now()
