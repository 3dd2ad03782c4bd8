"""OpenTelemetry tracing: one provider per service process, W3C trace context on events.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set: then nothing is instrumented and every
helper here returns at its first line, so a consumer pays for no more than a flag test.
On, spans go over OTLP/HTTP in batches (the standard `OTEL_*` variables tune the exporter
and the batch processor).

How a trace crosses Kafka: an event made while a span is current carries that span's
`traceparent` (the CloudEvents distributed-tracing extension); the outbox relay publishes it
under a `publish` span whose parent is that context and puts the publish span's context in
the record's `traceparent`/`tracestate` headers; a consumer opens a `process` span per record
as that header's child. Handlers work on whole batches, so while one runs, the event a
handler makes (or the message it sends) is matched to the record it answers by correlation
id: requests get fresh ids, so the match is exact in practice.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.status import Status, StatusCode

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from fastapi import FastAPI
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import Attributes

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS = ("traceparent", "tracestate")
RECENT_KEEP = 4096  # correlation ids whose last record context is remembered (late sends)
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_PROPAGATOR = TraceContextTextMapPropagator()
_CORRELATION = re.compile(rb'"correlationid"\s*:\s*"([^"\\]{1,128})"')

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
# While a consumer's handler runs: correlation id -> the context of its record's span.
_batch: contextvars.ContextVar[dict[str, SpanContext] | None] = contextvars.ContextVar(
    "helpstream_trace_batch", default=None
)
# Work done after the batch (a held acknowledgement sent by the digest flusher) still
# finds its record's context here, within this process.
_recent: OrderedDict[str, SpanContext] = OrderedDict()


class _NoRootClientSpans(Sampler):
    """Samples every trace except one a database call would start on its own: background
    loops (outbox relay, timers, flushers) poll MongoDB all day, and those calls are worth
    tracing only inside a request, a batch or a timer's firing."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "NoRootClientSpans"


def configure(service: str) -> bool:
    """Sets up tracing for this process once (the first service to ask names it); True if on.

    MongoDB is instrumented here, before any client exists (its listeners are global)."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not os.environ.get(ENDPOINT_ENV):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    _provider = TracerProvider(
        resource=Resource.create({"service.name": f"helpstream-{service}"}),
        sampler=ParentBased(root=_NoRootClientSpans()),
    )
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = _provider.get_tracer("helpstream")
    PymongoInstrumentor().instrument(tracer_provider=_provider)
    return True


def instrument_app(app: FastAPI) -> None:
    """HTTP server spans for a service's routes (probes and scrapes left out)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, excluded_urls="healthz,readyz,metrics"
    )


def flush(timeout_ms: int = 5000) -> None:
    """Exports what is buffered (a service stopping must not lose its last spans)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def enabled() -> bool:
    return _tracer is not None


# --- W3C trace context ------------------------------------------------------------------


def parse_traceparent(value: str | bytes | None) -> SpanContext | None:
    """The remote span context a `traceparent` names; None for anything malformed (version
    ff, all-zero ids, wrong lengths or case), never an error."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not value or len(value) > 128:
        return None
    match = _TRACEPARENT.match(value)
    if match is None or match[1] == "ff":
        return None
    context = SpanContext(
        trace_id=int(match[2], 16),
        span_id=int(match[3], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match[4], 16)),
    )
    return context if context.is_valid else None


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def headers_for(context: SpanContext) -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`, if any) Kafka headers naming `context`."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    return [(name, carrier[name].encode()) for name in HEADERS if name in carrier]


def context_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> SpanContext | None:
    """The span context a record's headers carry; None when absent or malformed."""
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        if name in HEADERS and value is not None:
            try:
                carrier[name] = value.decode("ascii")
            except UnicodeDecodeError:
                return None
    if parse_traceparent(carrier.get("traceparent")) is None:
        return None
    span = trace.get_current_span(_PROPAGATOR.extract(carrier))
    context = span.get_span_context()
    return context if context.is_valid else None


# --- spans ------------------------------------------------------------------------------


def _parent(correlationid: str | None) -> SpanContext | None:
    """The context new work answering `correlationid` continues: its record's span inside
    a consumer batch, else the current span (a request, a timer's firing), else the last
    record this process saw with that id."""
    batch = _batch.get()
    if batch is not None and correlationid is not None:
        found = batch.get(correlationid)
        if found is not None:
            return found
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        return current
    return _recent.get(correlationid) if correlationid is not None else None


def traceparent_for(correlationid: str | None) -> str | None:
    """What an event made now should carry in `traceparent` (None when tracing is off)."""
    if _tracer is None:
        return None
    parent = _parent(correlationid)
    return format_traceparent(parent) if parent is not None else None


def _context_of(parent: SpanContext | None) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(parent)) if parent else Context()


@contextlib.contextmanager
def span(
    name: str,
    *,
    correlationid: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
) -> Iterator[Span | None]:
    """A current span continuing the work that answers `correlationid` (see `_parent`)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, context=_context_of(_parent(correlationid)), kind=kind, attributes=attributes
    ) as current:
        yield current


@contextlib.contextmanager
def new_trace(name: str, linked: str | None, attributes: Attributes = None) -> Iterator[None]:
    """A current span starting a trace of its own, linked to the `traceparent` it follows
    from (an SLA timer firing long after the request that set it)."""
    if _tracer is None:
        yield
        return
    origin = parse_traceparent(linked)
    with _tracer.start_as_current_span(
        name,
        context=Context(),
        links=[Link(origin)] if origin is not None else None,
        attributes=attributes,
    ):
        yield


SEND_SPANS = {"email": "smtp send", "webhook": "webhook send"}


@contextlib.contextmanager
def send_span(channel: str, correlationid: str | None) -> Iterator[None]:
    """A span around a message leaving by `channel` (none for channels without a network
    call), child of the work answering `correlationid`."""
    name = SEND_SPANS.get(channel)
    if _tracer is None or name is None:
        yield
        return
    with span(name, correlationid=correlationid, attributes={"helpstream.channel": channel}):
        yield


def start_publish(topic: str, traceparent: str | None, key: str) -> Span | None:
    """A producer span for one record, child of the context its event was made in; its own
    context goes in the record's headers (`headers_for`). The caller ends it once acked."""
    if _tracer is None:
        return None
    parent = parse_traceparent(traceparent) if traceparent else _parent(None)
    return _tracer.start_span(
        f"publish {topic}",
        context=_context_of(parent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
        },
    )


def end_spans(spans: Iterable[Span | None], error: BaseException | None = None) -> None:
    for item in spans:
        if item is None:
            continue
        if error is not None:
            item.record_exception(error)
            item.set_status(Status(StatusCode.ERROR, type(error).__name__))
        item.end()


@contextlib.contextmanager
def consuming(consumer: str, records: Sequence[Any]) -> Iterator[None]:
    """Spans for one consumer batch: `consume <consumer>` linked to every record's context,
    and a `process <topic>` span per record, child of its `traceparent` header, lasting as
    long as the batch. Events made and messages sent meanwhile continue the record they
    answer (`traceparent_for`, `span`)."""
    if _tracer is None:
        yield
        return
    tracer = _tracer
    remote = [context_from_headers(r.headers) for r in records]
    links = [Link(c) for c in remote if c is not None]
    attributes: Attributes = {
        "messaging.system": "kafka",
        "messaging.batch.message_count": len(records),
    }
    with tracer.start_as_current_span(
        f"consume {consumer}", kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ):
        spans: list[Span] = []
        by_correlation: dict[str, SpanContext] = {}
        for record, parent in zip(records, remote, strict=True):
            correlationid = _correlation_of(record.value)
            processing = tracer.start_span(
                f"process {record.topic}",
                context=_context_of(parent) if parent is not None else None,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                    "messaging.consumer.group.name": consumer,
                },
            )
            spans.append(processing)
            if correlationid is not None:
                by_correlation[correlationid] = processing.get_span_context()
        for correlationid, context in by_correlation.items():
            _recent[correlationid] = context
            _recent.move_to_end(correlationid)
        while len(_recent) > RECENT_KEEP:
            _recent.popitem(last=False)
        token = _batch.set(by_correlation)
        try:
            yield
        except BaseException as exc:
            end_spans(spans, exc)
            raise
        else:
            end_spans(spans)
        finally:
            _batch.reset(token)


def _correlation_of(value: bytes | None) -> str | None:
    """A record's CloudEvent `correlationid`, found without decoding the JSON (the handler
    decodes it anyway; this runs only while tracing is on)."""
    found = _CORRELATION.search(value[:65536]) if value else None
    return found[1].decode("ascii", "replace") if found else None
