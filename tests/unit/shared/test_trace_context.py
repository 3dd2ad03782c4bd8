"""W3C trace context on events and Kafka headers: carried intact, malformed ignored."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.events import (
    CloudEvent,
    Contract,
    Priority,
    SlaBreached,
    SlaMetric,
    make_event,
    parse_event,
)
from shared.tracing import (
    context_from_headers,
    format_traceparent,
    headers_for,
    parse_traceparent,
    traceparent_for,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def a_ticket_event() -> CloudEvent[Contract]:
    breached = SlaBreached(
        ticket_id="T-1",
        metric=SlaMetric.first_reply,
        target_s=3600,
        elapsed_s=3700,
        remaining_s=-100,
        deadline=NOW,
        priority=Priority.high,
        policy="default",
        policy_version="1",
        breached_at=NOW,
    )
    return make_event(breached, source="/helpstream/sla_monitor", time=NOW, correlationid="req-1")


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

MALFORMED = [
    "",
    "garbage",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + "x" * 200,
]


def test_a_traceparent_survives_parsing_and_formatting() -> None:
    context = parse_traceparent(TRACEPARENT)
    assert context is not None
    assert format_traceparent(context) == TRACEPARENT


@pytest.mark.parametrize("value", MALFORMED)
def test_a_malformed_traceparent_names_no_context(value: str) -> None:
    assert parse_traceparent(value) is None
    assert parse_traceparent(value.encode()) is None
    assert context_from_headers([("traceparent", value.encode())]) is None


def test_kafka_headers_carry_the_context_and_its_trace_state() -> None:
    context = parse_traceparent(TRACEPARENT)
    assert context is not None
    headers = headers_for(context)
    assert ("traceparent", TRACEPARENT.encode()) in headers
    read = context_from_headers([("content-type", b"application/json"), *headers])
    assert read is not None
    assert format_traceparent(read) == TRACEPARENT
    with_state = [*headers, ("tracestate", b"vendor=abc")]
    read = context_from_headers(with_state)
    assert read is not None
    assert read.trace_state.get("vendor") == "abc"


def test_records_without_trace_headers_have_no_context() -> None:
    assert context_from_headers(None) is None
    assert context_from_headers([("content-type", b"application/cloudevents+json")]) is None
    assert context_from_headers([("traceparent", b"\xff\xfe")]) is None


def test_an_event_carries_its_traceparent_through_kafka_bytes() -> None:
    event = a_ticket_event().model_copy(update={"traceparent": TRACEPARENT})
    assert parse_event(event.to_bytes()).traceparent == TRACEPARENT


@pytest.mark.parametrize("value", [*MALFORMED, 42])
def test_an_event_with_a_malformed_traceparent_is_accepted_without_it(value: object) -> None:
    raw = json.loads(a_ticket_event().to_bytes()) | {"traceparent": value}
    event = parse_event(json.dumps(raw).encode())
    assert event.traceparent is None
    assert event.correlationid == "req-1"


def test_with_tracing_off_events_carry_no_traceparent() -> None:
    assert traceparent_for("req-1") is None
    event = a_ticket_event()
    assert event.traceparent is None
    assert b"traceparent" not in event.to_bytes()
