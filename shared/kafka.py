"""Kafka mechanics: connections, the producer every service uses, decoding a batch into
events and poison, and the dead-letter publisher. The consumer built on them is
`shared.consumer`. What reaches a DLQ is redacted like any requester text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from shared import tracing
from shared.dlq_payload import Scrubbed, redact_text, scrub
from shared.errors import Invalid, Retryable
from shared.events import CONTENT_TYPE, CloudEvent, Contract, parse_event
from shared.mongo import TRANSIENT_ERRORS, is_unavailable
from shared.topics import Topics, owner_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from ssl import SSLContext

    from aiokafka.structs import ConsumerRecord
    from opentelemetry.trace import Span

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
        options["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # checked by the settings
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def ssl_context(settings: ServiceSettings) -> SSLContext:
    context: SSLContext = create_ssl_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
        keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
    )
    return context


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
