"""notifier metric names, each with what it counts. Labels are bounded (no ids, no addresses)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


@dataclass(frozen=True)
class NotifierMetrics:
    # messages the channel accepted (SMTP 250, webhook 2xx, inbox stored), by channel, template
    sent: Counter
    # messages given up on (permanent refusal or retries exhausted), by channel and template
    failed: Counter
    # webhook/SMTP attempts repeated after a transient failure, by channel
    retries: Counter
    # event time (CloudEvent `time`) to the channel's acceptance, by channel
    latency: Histogram
    # emails the fallback relay took because the primary refused or timed out
    smtp_fallbacks: Counter
    # messages skipped by a requester's preferences, by channel and category
    muted: Counter
    # updates folded into a digest instead of being sent alone, by channel
    digested: Counter
    # events this service sent to `<topic>.dlq`, by topic and reason
    dead_lettered: Counter
    # deliveries in state failed: what the dead-letter topics hold for a replay
    dlq_size: Gauge
    # deliveries that raised something neither an outage nor `Invalid` (a bug on hostile
    # input): failed for good instead of stalling the batch, by channel and exception class
    send_errors: Counter
    # acknowledgements sent without the promised first reply time (no sla.applied within
    # ack_sla_wait_s, or the ticket has no first reply target), by channel
    ack_without_sla: Counter
    # acknowledgements held for the promised time, by how they left: `sla` (sla.applied
    # arrived first) or `deadline` (the wait ran out)
    ack_held: Counter
    # emails not sent because the address bounced (recorded failed `address_bouncing`)
    suppressed: Counter
    # addresses not mailed right now because they bounced (refreshed by the flusher)
    bouncing: Gauge
    # bounce reports taken from the mail gateway, by reason (hard, soft, complaint, unknown)
    bounces: Counter
    # incident updates a requester was told (one per update, requester and channel), by channel
    incident_updates_sent: Counter
    # an incident update's posting to a requester's channel accepting it (the slowest of an
    # update's observations is the last requester told), by channel
    incident_update_seconds: Histogram


def notifier_metrics(registry: CollectorRegistry) -> NotifierMetrics:
    p = "helpstream_notifier"
    by_template = ("channel", "template")
    return NotifierMetrics(
        sent=Counter(f"{p}_messages_sent", "Messages accepted.", by_template, registry=registry),
        failed=Counter(
            f"{p}_messages_failed", "Messages given up on.", by_template, registry=registry
        ),
        retries=Counter(
            f"{p}_delivery_retries", "Retried send attempts.", ("channel",), registry=registry
        ),
        latency=Histogram(
            f"{p}_delivery_latency_seconds",
            "Event time to acceptance by the channel.",
            ("channel",),
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        ),
        smtp_fallbacks=Counter(
            f"{p}_smtp_fallbacks", "Emails sent by the fallback relay.", registry=registry
        ),
        muted=Counter(
            f"{p}_messages_muted",
            "Messages not sent because of preferences.",
            ("channel", "category"),
            registry=registry,
        ),
        digested=Counter(
            f"{p}_messages_digested",
            "Updates queued into a digest.",
            ("channel",),
            registry=registry,
        ),
        dead_lettered=Counter(
            f"{p}_dead_lettered",
            "Events sent to a dead-letter topic.",
            ("topic", "reason"),
            registry=registry,
        ),
        dlq_size=Gauge(f"{p}_failed_deliveries", "Deliveries in state failed.", registry=registry),
        send_errors=Counter(
            f"{p}_send_errors",
            "Deliveries failed by an unexpected error (not an outage).",
            ("channel", "error"),
            registry=registry,
        ),
        ack_without_sla=Counter(
            f"{p}_ack_without_sla",
            "Acknowledgements sent without the promised first reply time.",
            ("channel",),
            registry=registry,
        ),
        ack_held=Counter(
            f"{p}_ack_held",
            "Acknowledgements held for the promised time, by how they left.",
            ("released_by",),
            registry=registry,
        ),
        suppressed=Counter(
            f"{p}_sends_suppressed",
            "Emails not sent to an address that bounced.",
            registry=registry,
        ),
        bouncing=Gauge(
            f"{p}_bounced_addresses",
            "Addresses not mailed because they bounced.",
            registry=registry,
        ),
        bounces=Counter(
            f"{p}_bounces", "Bounce reports received, by reason.", ("reason",), registry=registry
        ),
        incident_updates_sent=Counter(
            f"{p}_incident_updates_sent",
            "Incident updates told to a requester, once per update, requester and channel.",
            ("channel",),
            registry=registry,
        ),
        incident_update_seconds=Histogram(
            f"{p}_incident_update_seconds",
            "From an incident update's posting to a requester's channel accepting it.",
            ("channel",),
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        ),
    )
