"""sla_monitor's metric names, each with what it counts."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS


@dataclass(frozen=True)
class SlaMetrics:
    # clocks not yet stopped (running or paused), by metric, across the whole deployment:
    # kept from each saved change, reconciled by a recount now and then
    open_clocks: Gauge
    # changes to the open-clocks counts: counted (a batch's), recounted (a reconciliation),
    # failed (either; the gauge drifts until the next reconciliation)
    open_clocks_updates: Counter
    # open clocks past a warning threshold and not yet breached (the at-risk backlog)
    at_risk_clocks: Gauge
    # sla.warning events published, by metric, priority and policy
    warnings: Counter
    # sla.breached events published, by metric, priority and policy
    breaches: Counter
    # sla.fulfilled events published, by metric, priority and policy
    fulfilled: Counter
    # from a warning or breach instant to its outbox write (the relay publishes it next)
    fire_lag: Histogram
    # timer ticks, by outcome: fired (something), held (a due timer waits for the tickets
    # consumer's watermark), idle (nothing due), failed (the database did not answer)
    timer_ticks: Counter
    # one timer tick: the due queries, the fires' save (and, when nothing fired, the look
    # for held timers)
    timer_tick_seconds: Histogram
    # ticket created to first public agent reply, in target time (business or calendar)
    first_reply: Histogram
    # ticket events that could not be applied (unknown ticket state), by reason
    skipped: Counter
    # policy versions a ticket was pinned to that this instance did not hold: loaded from
    # the store, or missing (found nowhere: the ticket keeps its clocks' recorded targets)
    policy_versions: Counter


def sla_metrics(registry: CollectorRegistry) -> SlaMetrics:
    labels = ("metric", "priority", "policy")
    return SlaMetrics(
        open_clocks=Gauge(
            "helpstream_sla_monitor_open_clocks", "Open SLA clocks.", ("metric",), registry=registry
        ),
        open_clocks_updates=Counter(
            "helpstream_sla_monitor_open_clocks_updates",
            "Open-clocks count changes and recounts.",
            ("how",),
            registry=registry,
        ),
        at_risk_clocks=Gauge(
            "helpstream_sla_monitor_at_risk_clocks",
            "Open clocks past a warning, not yet breached.",
            ("metric",),
            registry=registry,
        ),
        warnings=Counter(
            "helpstream_sla_monitor_warnings", "SLA warnings published.", labels, registry=registry
        ),
        breaches=Counter(
            "helpstream_sla_monitor_breaches", "SLA breaches published.", labels, registry=registry
        ),
        fulfilled=Counter(
            "helpstream_sla_monitor_fulfilled", "SLA targets met.", labels, registry=registry
        ),
        fire_lag=Histogram(
            "helpstream_sla_monitor_fire_lag_seconds",
            "Due instant to the outbox write of a warning or breach.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        timer_ticks=Counter(
            "helpstream_sla_monitor_timer_ticks",
            "SLA timer ticks, by outcome.",
            ("outcome",),
            registry=registry,
        ),
        timer_tick_seconds=Histogram(
            "helpstream_sla_monitor_timer_tick_seconds",
            "Duration of one SLA timer tick.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        first_reply=Histogram(
            "helpstream_sla_monitor_time_to_first_reply_seconds",
            "Ticket created to first public agent reply.",
            ("priority",),
            buckets=(60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800),
            registry=registry,
        ),
        skipped=Counter(
            "helpstream_sla_monitor_events_skipped",
            "Ticket events not applied.",
            ("reason",),
            registry=registry,
        ),
        policy_versions=Counter(
            "helpstream_sla_monitor_policy_version_lookups",
            "Pinned policy versions looked up in the store.",
            ("outcome",),
            registry=registry,
        ),
    )
