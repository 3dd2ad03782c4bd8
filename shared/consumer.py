"""The batch consumer: a FastStream batch subscriber with the data-safety rules on top.

FastStream polls, subscribes, rebalances and acknowledges; this module decides what a
batch is worth. The handler gets the whole batch (one durable write), poison goes to
`<topic>.dlq` with its reason, and only then is the batch acknowledged (`AckPolicy.MANUAL`:
the commit follows the durable write). An outage (`is_transient`) nacks the batch, which
rewinds every partition to its first record, and retries with backoff for as long as it
lasts; nothing is skipped. Any other exception is some message's fault: after
`poison_max_attempts` tries the batch is split until that message stands alone, and it
goes to the DLQ instead of stalling the partition.

Two things FastStream does not do, kept here and tested on the real broker
(`tests/integration/shared/test_batch_consumer.py`):
- **A parser that cannot fail.** FastStream's own decodes every header as strict UTF-8;
  one undecodable header makes it raise before the handler runs, and a batch whose
  parsing raised is neither acknowledged nor rewound: the consumer reads on past it, and
  the whole batch is lost until a restart. `_parse` decodes leniently and never raises,
  so the poison reaches the handler and from there the DLQ.
- **Watermarks for idle partitions.** FastStream calls a handler only when a poll returned
  records. Event-time consumers (the SLA timers) must learn that a partition with nothing
  new is applied up to now, so a small loop reads the partitions' high-water marks beside
  the subscriber. It compares them with what this consumer has durably applied (never
  with the fetch position, which runs ahead of a batch still being handled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaAckableMessage
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared import tracing
from shared.clock import Clock, ClockReadings, SystemClock
from shared.kafka import Rejected, connection_options, handler_error, is_transient
from shared.tasks import LoopWorker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import datetime
    from ssl import SSLContext

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

    from shared.kafka import BatchHandler, DeadLetters
    from shared.keyring import EventOpener
    from shared.metrics import ConsumerMetrics
    from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS = 100  # FastStream sleeps as long again after an empty poll
LAG_INTERVAL_S = 0.5


def security(settings: ServiceSettings) -> BaseSecurity | None:
    """The service's Kafka login in FastStream's terms, read from the same table every
    other client of the service uses (`shared.kafka.connection_options`)."""
    options = connection_options(settings)
    context: SSLContext | None = options.get("ssl_context")
    mechanism: str | None = options.get("sasl_mechanism")
    if mechanism is None:
        return BaseSecurity(ssl_context=context) if context is not None else None
    kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256}.get(
        mechanism, SASLPlaintext
    )
    return kind(
        options["sasl_plain_username"] or "",
        options["sasl_plain_password"],
        ssl_context=context,
        use_ssl=context is not None,
    )


class _ProvisionedTopics(logging.Filter):
    """FastStream warns once per subscriber that it creates no topics. Here that is the
    design (`helpstream topics` provisions them, with their ACLs), not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Make sure the topics exist" not in record.getMessage()


def faststream_logger(service: str) -> logging.Logger:
    logger = logging.getLogger(f"helpstream.{service}.faststream")
    if not any(isinstance(f, _ProvisionedTopics) for f in logger.filters):
        logger.addFilter(_ProvisionedTopics())
    return logger


def make_broker(settings: ServiceSettings, service: str) -> KafkaBroker:
    """One FastStream broker per service process, for its subscribers only: events are
    published by the outbox relay's own producer, so the broker opens none. Topics are
    provisioned by `helpstream topics`, never created by a subscriber."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=service,
        security=security(settings),
        consumer_only=True,
        allow_auto_create_topics=False,
        graceful_timeout=settings.shutdown_step_timeout_s / 2,
        logger=faststream_logger(service),
        log_level=logging.DEBUG,  # one line per batch is the consumer metrics' job
    )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._owner.forget(revoked)
        if self._owner.on_revoked is not None:
            await self._owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._owner.on_assigned is not None:
            await self._owner.on_assigned(set(assigned))


class BatchConsumer:
    """One consumer-group member: take a batch, apply it durably, DLQ poison, acknowledge.

    `handle` receives every record of the batch and returns the ones it found invalid;
    it must be idempotent (the same batch may come again after a crash, a retry, or in
    parts while a message it raises on is being isolated).
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
        opener: EventOpener | None = None,
        broker: KafkaBroker | None = None,
    ) -> None:
        self.name = name
        self._opener = opener
        self._clock = clock or SystemClock()
        # Per partition: the time up to which every event is known applied, as of the last
        # batch or the last `watermark` call (which brings it up to date).
        self.watermarks: dict[TopicPartition, datetime] = {}
        self.advanced = asyncio.Event()  # set whenever a batch moves a watermark
        self._readings = ClockReadings(self._clock)
        # Per partition: the offset after the last record this member applied durably.
        self._applied: dict[TopicPartition, int] = {}
        self._revocations = 0  # a committed offset read across a revocation is stale
        self._group_id = group_id
        self._settings = settings
        self._handle = handle
        self._dlq = dead_letters
        self._metrics = metrics
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self._failures = 0
        # Batches in a row the handler failed on with a non-outage error.
        self._poison_attempts = 0
        self.last_error: str | None = None
        self._own_broker = broker is None
        self._broker = broker if broker is not None else make_broker(settings, service)
        self._subscriber = self._broker.subscriber(
            *topics,
            batch=True,
            group_id=group_id,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_records=settings.kafka_max_records,
            max_records=settings.kafka_max_records,
            fetch_max_wait_ms=100,
            batch_timeout_ms=POLL_TIMEOUT_MS,
            listener=_Listener(self),
            title=f"{service}.{name}",
        )
        self._subscriber(self._on_batch, parser=self._parse, decoder=_raw_records)
        self._join = LoopWorker(f"consumer-join:{name}", self._join_group)
        self._lag = LoopWorker(f"consumer-lag:{name}", self._watch_lag)

    @property
    def _consumer(self) -> AIOKafkaConsumer | None:
        return self._subscriber.consumer

    @property
    def assigned(self) -> set[TopicPartition]:
        consumer = self._consumer
        return set(consumer.assignment()) if consumer is not None else set()

    async def start(self) -> None:
        """Returns at once: the subscriber joins its group in the background (a start
        waits for the group's assignment, which a service's HTTP API must not), and
        retries for as long as the broker cannot be reached. /readyz says when it is in."""
        await self._broker.connect()
        self._join.start()
        self._lag.start()

    async def stop(self) -> None:
        await self._lag.stop()
        await self._join.stop()
        await self._subscriber.stop()
        if self._own_broker:
            await self._broker.stop()

    async def _join_group(self) -> None:
        while True:
            try:
                await self._subscriber.start()
            except Exception as exc:  # the broker is away: leave nothing half open, retry
                with contextlib.suppress(Exception):
                    await self._subscriber.stop()
                await self._back_off(exc)
                continue
            self._failures = 0
            self.last_error = None
            return

    def watermark(self, tp: TopicPartition) -> datetime | None:
        """The time up to which every event of the partition has been applied (event-time
        consumers such as SLA timers must not act ahead of it); None before anything is
        known.

        That is the last applied event's time, or later once the partition is caught up:
        a fetch that found nothing left to apply means that everything appended before it
        arrived is applied. Broker instants are wall time; they are read on the service's
        clock (`ClockReadings`), so a test clock that jumps never carries the watermark
        past an event not yet applied."""
        now = self._readings.take()
        mark = self.watermarks.get(tp)
        consumer = self._consumer
        applied = self._applied.get(tp)
        if consumer is None or applied is None or tp not in consumer.assignment():
            return mark
        high, polled_ms = consumer.highwater(tp), consumer.last_poll_timestamp(tp)
        if high is None or polled_ms is None or applied < high:
            return mark
        caught_up = min(now, self._readings.at(polled_ms / 1000) or now)
        if mark is None or caught_up > mark:  # kept: a watermark never moves back
            self.watermarks[tp] = mark = caught_up
        return mark

    def forget(self, partitions: set[TopicPartition]) -> None:
        """A revoked partition's progress is its next owner's to report."""
        self._revocations += 1
        for tp in partitions:
            self._applied.pop(tp, None)
            self.watermarks.pop(tp, None)

    async def _parse(self, records: tuple[ConsumerRecord[bytes, bytes], ...]) -> Any:
        """The batch as FastStream's ackable message, built without decoding anything
        strictly: this must not raise (see the module's docstring)."""
        headers = [{k: v.decode(errors="replace") for k, v in (r.headers or ())} for r in records]
        first, last = records[0], records[-1]
        return KafkaAckableMessage(
            body=[r.value or b"" for r in records],
            headers=headers[0],
            batch_headers=headers,
            content_type=headers[0].get("content-type"),
            message_id=f"{first.topic}-{first.partition}-{first.offset}-{last.offset}",
            raw_message=records,
            consumer=self._consumer,
        )

    async def _on_batch(self, message: Annotated[KafkaAckableMessage, Context("message")]) -> None:
        records: list[ConsumerRecord[bytes, bytes]] = list(message.raw_message)
        started = time.perf_counter()
        try:
            rejected = await self._apply_opened(records)
            await self._dlq.send(rejected)
            await message.ack()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Nothing of this batch is committed: rewind every partition and take it again.
            with contextlib.suppress(Exception):  # a partition revoked meanwhile
                await message.nack()
            self._metrics.retries.labels(self.name).inc()
            await self._back_off(exc)
            return
        self._failures = 0
        self._poison_attempts = 0
        self.last_error = None
        self._record_applied(records)
        self._metrics.batch_seconds.labels(self.name).observe(time.perf_counter() - started)
        self._metrics.batch_size.labels(self.name).observe(len(records))
        self._count(records, rejected)

    def _record_applied(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Once per partition, from its last record: a batch holds each partition's
        records in offset order."""
        last: dict[TopicPartition, ConsumerRecord[bytes, bytes]] = {}
        for record in records:
            last[TopicPartition(record.topic, record.partition)] = record
        now = self._readings.take()
        for tp, record in last.items():
            self._applied[tp] = max(self._applied.get(tp, 0), record.offset + 1)
            taken = self._readings.at(record.timestamp / 1000) or now
            self.watermarks[tp] = max(self.watermarks.get(tp, taken), taken)
        self.advanced.set()

    def _count(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], rejected: Sequence[Rejected]
    ) -> None:
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

    async def _apply_opened(self, records: list[ConsumerRecord[bytes, bytes]]) -> list[Rejected]:
        """The batch with its sealed fields opened (`shared.keyring`); what is rejected
        goes to the DLQ as it was read, still sealed."""
        if self._opener is None:
            return await self._apply(records)
        opened = await self._opener.open(records)
        if all(a is b for a, b in zip(opened, records, strict=True)):
            return await self._apply(records)
        original = {id(o): r for o, r in zip(opened, records, strict=True)}
        return [
            Rejected(original.get(id(item.record), item.record), item.error)
            for item in await self._apply(opened)
        ]

    async def _apply(self, records: list[ConsumerRecord[bytes, bytes]]) -> list[Rejected]:
        """The batch through the handler; what it found invalid comes back.

        An outage error propagates (the caller rewinds and retries, for as long as it
        lasts). Any other exception is the fault of some message in the batch: it
        propagates too, until the batch has failed `poison_max_attempts` times in a row;
        then the batch is split until the records the handler still fails on stand alone,
        and those are dead-lettered while the rest is applied."""
        try:
            with tracing.consuming(self.name, records):
                return list(await self._handle(records))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            self._poison_attempts += 1
            if self._poison_attempts < self._settings.poison_max_attempts:
                raise
            log.warning(
                "batch_isolating_poison",
                consumer=self.name,
                records=len(records),
                attempts=self._poison_attempts,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return await self._isolate(records, exc)

    async def _isolate(
        self, records: list[ConsumerRecord[bytes, bytes]], error: Exception
    ) -> list[Rejected]:
        """Bisects a batch the handler fails on (non-outage), in offset order: the halves
        that go through are applied (handlers are idempotent, so a record applied before
        the failure is simply applied again), a single record that still fails becomes a
        `Rejected` named after its exception. An outage error on the way propagates."""
        if len(records) == 1:
            return [Rejected(records[0], handler_error(error))]
        self._metrics.isolations.labels(self.name).inc()
        middle = len(records) // 2
        rejected: list[Rejected] = []
        for part in (records[:middle], records[middle:]):
            try:
                rejected += await self._handle(part)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    raise
                rejected += await self._isolate(part, exc)
        return rejected

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

    async def _watch_lag(self) -> None:
        while True:
            consumer = self._consumer
            if consumer is not None:
                # KafkaError, TimeoutError: the broker did not answer; AssertionError:
                # aiokafka's way of saying a partition was revoked while this looked.
                with contextlib.suppress(KafkaError, TimeoutError, AssertionError):
                    await self._record_lag(consumer)
            await asyncio.sleep(LAG_INTERVAL_S)

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag is the high-water mark minus what this member applied durably (the
        embedded broker cannot list group offsets)."""
        for tp in consumer.assignment():
            if tp not in consumer.assignment():  # revoked while awaiting an earlier one
                return
            high = consumer.highwater(tp)
            if high is None:
                continue
            if tp not in self._applied:  # assigned, nothing applied here yet
                revocations = self._revocations
                committed = await asyncio.wait_for(consumer.committed(tp), 2.0)
                if revocations != self._revocations:
                    return
                self._applied.setdefault(tp, committed or 0)
            lag = max(0, high - self._applied[tp])
            self._metrics.lag.labels(self._group_id, tp.topic, tp.partition).set(lag)


async def _raw_records(message: Any) -> Any:
    """The handler reads the records themselves (`message.raw_message`): nothing to
    decode, and nothing here that could fail."""
    return None
