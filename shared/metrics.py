"""Metric names shared by every service, each with what it counts.

Every service owns an explicit `CollectorRegistry` (never the global default), so
tests can read exactly what one service instance did. Labels are bounded: never
ticket ids, emails or free text.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class ConsumerMetrics:
    """RED metrics of a batch consumer, labelled by consumer name and topic."""

    # messages taken from Kafka and applied (after the effect was durable)
    processed: Counter
    # messages sent to the DLQ, by reason code
    rejected: Counter
    # batches that failed transiently and were retried from the same offsets
    retries: Counter
    # batches split to find the messages a handler keeps failing on (each split counts)
    isolations: Counter
    # wall time of one batch: decode, durable write, DLQ, commit
    batch_seconds: Histogram
    # messages in one batch
    batch_size: Histogram
    # highwater minus committed position, per partition
    lag: Gauge


def consumer_metrics(registry: CollectorRegistry, service: str) -> ConsumerMetrics:
    prefix = f"helpstream_{service}_consumer"
    labels = ("consumer", "topic")
    return ConsumerMetrics(
        processed=Counter(
            f"{prefix}_messages_processed", "Messages applied.", labels, registry=registry
        ),
        rejected=Counter(
            f"{prefix}_messages_rejected",
            "Messages sent to the dead-letter topic.",
            (*labels, "reason"),
            registry=registry,
        ),
        retries=Counter(
            f"{prefix}_batch_retries",
            "Batches retried after a transient error.",
            ("consumer",),
            registry=registry,
        ),
        isolations=Counter(
            f"{prefix}_poison_isolations",
            "Batch splits made to find the messages a handler keeps failing on.",
            ("consumer",),
            registry=registry,
        ),
        batch_seconds=Histogram(
            f"{prefix}_batch_duration_seconds",
            "Time to process one batch.",
            ("consumer",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        batch_size=Histogram(
            f"{prefix}_batch_size_messages",
            "Messages per batch.",
            ("consumer",),
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=registry,
        ),
        lag=Gauge(
            "helpstream_kafka_consumer_lag_messages",
            "Messages not yet consumed (highwater minus position).",
            ("group", "topic", "partition"),
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class OutboxMetrics:
    # events acknowledged by Kafka (acks=all)
    relayed: Counter
    # relay attempts that failed and will be retried
    failures: Counter
    # documents holding events not yet acknowledged by Kafka
    backlog: Gauge
    # time from the state change to the broker's acknowledgement
    relay_lag_seconds: Histogram
    # 1 while this instance holds the relay lease (one instance per service publishes)
    lease_held: Gauge
    # of `relayed`, those the urgent lane published (SLA timer fires, ahead of any backlog)
    urgent_relayed: Counter


def outbox_metrics(registry: CollectorRegistry, service: str) -> OutboxMetrics:
    prefix = f"helpstream_{service}_outbox"
    return OutboxMetrics(
        relayed=Counter(
            f"{prefix}_events_relayed", "Events relayed.", ("topic",), registry=registry
        ),
        failures=Counter(f"{prefix}_relay_failures", "Failed relay rounds.", registry=registry),
        backlog=Gauge(
            f"{prefix}_pending_documents",
            "Documents with events not yet acknowledged by Kafka.",
            registry=registry,
        ),
        relay_lag_seconds=Histogram(
            f"{prefix}_relay_lag_seconds",
            "State change to broker acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        lease_held=Gauge(
            f"{prefix}_relay_lease_held",
            "1 while this instance holds the outbox relay lease (one instance publishes).",
            registry=registry,
        ),
        urgent_relayed=Counter(
            f"{prefix}_urgent_events_relayed",
            "Events relayed in urgent rounds, ahead of any backlog.",
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class HttpMetrics:
    # requests served, by route template (never the raw path), method and status
    requests: Counter
    # request latency by route template and method
    duration: Histogram


def http_metrics(registry: CollectorRegistry, service: str) -> HttpMetrics:
    prefix = f"helpstream_{service}_http"
    return HttpMetrics(
        requests=Counter(
            f"{prefix}_requests",
            "HTTP requests.",
            ("route", "method", "status"),
            registry=registry,
        ),
        duration=Histogram(
            f"{prefix}_request_duration_seconds",
            "HTTP request latency.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class LimitMetrics:
    # requests refused with 429 by a rate limit, by route template and what was counted
    # (ip, token, key)
    rate_limited: Counter
    # streams refused with 429 because too many were open, by route template and cap
    # (per_key, total)
    streams_refused: Counter
    # requests refused with 503 because too many requests were in flight
    overloaded: Counter
    # connections closed before their request headers were complete, by reason
    # (timeout: not complete in time; evicted: the oldest over the pending cap)
    connections_dropped: Counter


def limit_metrics(registry: CollectorRegistry, service: str) -> LimitMetrics:
    prefix = f"helpstream_{service}_http"
    return LimitMetrics(
        rate_limited=Counter(
            f"{prefix}_rate_limited",
            "Requests refused by a rate limit (429).",
            ("route", "counted"),
            registry=registry,
        ),
        streams_refused=Counter(
            f"{prefix}_streams_refused",
            "Streams refused because too many were open (429).",
            ("route", "cap"),
            registry=registry,
        ),
        overloaded=Counter(
            f"{prefix}_overloaded",
            "Requests refused because too many were in flight (503).",
            registry=registry,
        ),
        connections_dropped=Counter(
            f"{prefix}_connections_dropped",
            "Connections closed before their request headers were complete.",
            ("reason",),
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class PrivacyMetrics:
    """What a service did with requester erasure requests (and intake with confirmations)."""

    # erasure requests applied (outcome: erased) or refused as poison (outcome: rejected)
    erasures: Counter
    # records erased or anonymized, by kind (inbox_items, surveys, tickets, ...)
    erased_records: Counter
    # wall time of erasing one batch of requests, confirmations written included
    erasure_seconds: Histogram
    # requester data exports served (intake), by outcome (exported, failed)
    exports: Counter


def privacy_metrics(registry: CollectorRegistry, service: str) -> PrivacyMetrics:
    prefix = f"helpstream_{service}_privacy"
    return PrivacyMetrics(
        erasures=Counter(
            f"{prefix}_erasures", "Erasure requests handled.", ("outcome",), registry=registry
        ),
        erased_records=Counter(
            f"{prefix}_erased_records",
            "Records erased or anonymized.",
            ("kind",),
            registry=registry,
        ),
        erasure_seconds=Histogram(
            f"{prefix}_erasure_seconds",
            "Time to erase one batch of requests.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        exports=Counter(
            f"{prefix}_exports", "Requester data exports.", ("outcome",), registry=registry
        ),
    )


@dataclass(frozen=True)
class SealingMetrics:
    sealed_fields: Counter
    opened_fields: Counter
    keyring_seconds: Histogram
    keys_destroyed: Counter


def sealing_metrics(registry: CollectorRegistry, service: str) -> SealingMetrics:
    prefix = f"helpstream_{service}"
    return SealingMetrics(
        # outcome: sealed (left under the requester's key) or erased (the event was made
        # before its requester's erasure and left without the fields)
        sealed_fields=Counter(
            f"{prefix}_sealed_fields",
            "Personal fields of published events sealed with a requester key.",
            ("outcome",),
            registry=registry,
        ),
        # outcome: opened, or erased (the key is destroyed: the field's erased value)
        opened_fields=Counter(
            f"{prefix}_opened_fields",
            "Sealed fields of consumed events opened.",
            ("outcome",),
            registry=registry,
        ),
        keyring_seconds=Histogram(
            f"{prefix}_keyring_seconds",
            "Time to fetch (and create) the keys of one batch.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        keys_destroyed=Counter(
            f"{prefix}_keys_destroyed", "Requester keys destroyed by erasure.", registry=registry
        ),
    )
