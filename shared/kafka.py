"""Kafka mechanics: the producer every service uses and the batch consumer loop.

The consumer is the heart of the data-safety rules: it takes what one poll returns,
hands the whole batch to the service (one durable write), sends poison messages to
`<topic>.dlq` with the reason, and only then commits. An outage (`is_transient`) rewinds
to the batch's first offsets and retries with backoff for as long as it lasts; nothing is
skipped. Any other exception is some message's fault: after `poison_max_attempts` tries
the batch is split until that message stands alone, and it goes to the DLQ instead of
stalling the partition. What reaches a DLQ is redacted like any requester text.
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
from aiokafka.helpers import create_ssl_context

from shared import tracing
from shared.clock import Clock, SystemClock
from shared.dlq_payload import Scrubbed, redact_text, scrub
from shared.errors import Invalid, Retryable
from shared.events import CONTENT_TYPE, CloudEvent, Contract, parse_event
from shared.mongo import TRANSIENT_ERRORS, is_unavailable
from shared.tasks import LoopWorker
from shared.topics import Topics, owner_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from aiokafka.structs import ConsumerRecord
    from opentelemetry.trace import Span

    from shared.keyring import EventOpener
    from shared.metrics import ConsumerMetrics
    from shared.settings import ServiceSettings

    BatchHandler = Callable[
        [Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[Sequence["Rejected"]]
    ]

log = structlog.get_logger(__name__)
T = TypeVar("T")

EVENT_HEADERS = [("content-type", CONTENT_TYPE.encode())]
LOG_APPEND_TIME = 1  # a record's timestamp_type when the broker set its timestamp
SCRUB_OFF_LOOP_BYTES = 32 * 1024  # dead-lettered payloads above this are redacted off the loop


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    """How every client of this service reaches the brokers: plain, TLS, SASL or both.

    On a real cluster each service logs in as its own user, whose ACLs let it write only
    the topics it owns (README, Security)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # checked by the settings
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def make_producer(settings: ServiceSettings, client_id: str) -> AIOKafkaProducer:
    """acks=all always; idempotence where the broker supports it (consumers dedupe anyway)."""
    return AIOKafkaProducer(
        **connection_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        linger_ms=5,
        request_timeout_ms=15_000,
        max_request_size=4 * 1024 * 1024,
    )


async def publish_event(
    producer: AIOKafkaProducer, topic: str, event: CloudEvent[Any], value: bytes | None = None
) -> None:
    """`value`: the event's bytes when they differ from `to_bytes()` (sealed fields)."""
    span = tracing.start_publish(topic, event.traceparent, event.subject)
    try:
        await producer.send_and_wait(
            topic,
            event.to_bytes() if value is None else value,
            key=event.subject.encode(),
            headers=event_headers(span),
        )
    except BaseException as exc:
        tracing.end_spans([span], exc)
        raise
    tracing.end_spans([span])


def event_headers(span: Span | None) -> list[tuple[str, bytes]]:
    """The headers of an event record: its content type, and its publish span's trace
    context when tracing is on."""
    if span is None:
        return EVENT_HEADERS
    return [*EVENT_HEADERS, *tracing.headers_for(span.get_span_context())]


def appended_at(record: ConsumerRecord[bytes, bytes]) -> datetime | None:
    """When the broker appended `record`, if the topic stamps that (LogAppendTime); a
    producer's own CreateTime proves nothing and gives None."""
    if getattr(record, "timestamp_type", 0) != LOG_APPEND_TIME or record.timestamp is None:
        return None
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


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
    """Split a batch into valid events and poison messages (with the reason).

    An event whose `source` is not its topic's owner is poison too: only intake speaks
    on helpstream.tickets, whoever else managed to write there."""
    accepted: list[Accepted[CloudEvent[Contract]]] = []
    rejected: list[Rejected] = []
    for record in records:
        if record.value is None:
            rejected.append(Rejected(record, Invalid("empty", "message has no value")))
            continue
        try:
            event = parse_event(record.value, accept)
        except Invalid as exc:
            rejected.append(Rejected(record, exc))
            continue
        owner = owner_of(record.topic)
        if owner is not None and event.source != owner:
            detail = f"source {event.source[:100]!r} may not write {record.topic} (owner {owner})"
            rejected.append(Rejected(record, Invalid("not_topic_owner", detail)))
            continue
        accepted.append(Accepted(record, event))
    return accepted, rejected


class DeadLetters:
    """Publishes poison messages to `<topic>.dlq`: the original headers, the reason in
    headers, the payload with requester secrets redacted (`shared.dlq_payload`)."""

    def __init__(self, producer: AIOKafkaProducer, consumer: str) -> None:
        self._producer = producer
        self._consumer = consumer

    async def send(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        failed_at = datetime.now(UTC).isoformat()
        futures = []
        spans = []
        for item in rejected:
            record = item.record
            # the record's own trace headers stay; the span continues its trace
            parent = tracing.context_from_headers(record.headers) if tracing.enabled() else None
            spans.append(
                tracing.start_publish(
                    Topics.dlq(record.topic),
                    tracing.format_traceparent(parent) if parent is not None else None,
                    str(record.key),
                )
            )
            scrubbed = await _scrubbed(record.value)
            headers = [
                *(record.headers or ()),
                ("error-type", item.error.reason.encode()),
                ("error-message", redact_text(item.error.detail[:2000]).encode()[:2000]),
                ("failed-at", failed_at.encode()),
                ("consumer", self._consumer.encode()),
                ("original-topic", record.topic.encode()),
                ("original-partition", str(record.partition).encode()),
                ("original-offset", str(record.offset).encode()),
                *scrubbed.headers,
            ]
            futures.append(
                await self._producer.send(
                    Topics.dlq(record.topic), scrubbed.value, key=record.key, headers=headers
                )
            )
        try:
            await asyncio.gather(*futures)
        except BaseException as exc:
            tracing.end_spans(spans, exc)
            raise
        tracing.end_spans(spans)


async def _scrubbed(value: bytes | None) -> Scrubbed:
    """Large payloads are redacted in a worker thread, so the event loop (heartbeats, HTTP)
    keeps running."""
    if value is not None and len(value) > SCRUB_OFF_LOOP_BYTES:
        return await asyncio.to_thread(scrub, value)
    return scrub(value)


def is_transient(exc: BaseException) -> bool:
    """An outage (broker, database, network, a `Retryable` of the service): retry the batch
    for as long as it lasts. Anything else is some message's fault (see `BatchConsumer`)."""
    return isinstance(
        exc, (*TRANSIENT_ERRORS, Retryable, KafkaError, OSError, asyncio.TimeoutError)
    ) or is_unavailable(exc)


def handler_error(exc: BaseException) -> Invalid:
    """What a DLQ record says about a handler that raised on it: the exception's class
    (error-type) and message (error-message)."""
    return Invalid(type(exc).__name__, str(exc)[:2000])


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
    ) -> None:
        self.name = name
        self._opener = opener
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
        # Batches in a row the handler failed on with a non-outage error.
        self._poison_attempts = 0
        self.last_error: str | None = None

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self._settings),
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
            rejected = await self._apply_opened(records)
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
        self._poison_attempts = 0
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
