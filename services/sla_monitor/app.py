"""sla_monitor wiring: ticket-event consumer, partition-owned timer, SLA read API."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from fastapi import FastAPI, Header
from pymongo.errors import PyMongoError

from services.sla_monitor.handlers import SlaService, TimerLoop, set_open_clocks
from services.sla_monitor.metrics import sla_metrics
from services.sla_monitor.policy import load_policies
from services.sla_monitor.privacy import SlaEraser
from services.sla_monitor.settings import SlaSettings
from services.sla_monitor.store import SlaStore
from services.sla_monitor.views import TicketSlaView
from shared.events import SlaRequesterErased
from shared.http import ProblemError, require_bearer
from shared.ids import new_id
from shared.privacy import COLLECTION, confirm_erasures, with_erasures
from shared.runtime import ServiceRuntime, service_app
from shared.tasks import LoopWorker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from prometheus_client import Gauge

    from services.sla_monitor.metrics import SlaMetrics

SERVICE = "sla_monitor"
OPEN_CLOCKS_FLUSH_S = 1.0  # how often this instance's changes are written to the counts
OPEN_CLOCKS_READ_S = 15.0  # how often the counts other instances keep moving are read back
log = structlog.get_logger(__name__)


def timer_gauge(
    name: str, count: Callable[[], Awaitable[dict[str, int]]], gauge: Gauge, every_s: float
) -> LoopWorker:
    """Recounts one per-metric gauge now and then (indexed counts). Never more often than
    four times its own duration, so a slow database is not kept busy counting. A failed
    count keeps the last values and says why, so a gauge gone flat is never a silent one."""

    async def loop() -> None:
        while True:
            started = time.monotonic()
            try:
                counts = await count()
            except Exception as exc:
                log.warning(
                    "sla_gauge_unread", gauge=name, error=f"{type(exc).__name__}: {exc}"[:300]
                )
            else:
                for metric, n in counts.items():
                    gauge.labels(metric).set(n)
            await asyncio.sleep(max(every_s, 4 * (time.monotonic() - started)))

    return LoopWorker(name, loop)


def open_clocks_gauge(
    store: SlaStore,
    metrics: SlaMetrics,
    now: Callable[[], datetime],
    reconcile_s: float,
    flush: Callable[[], Awaitable[None]],
) -> LoopWorker:
    """Writes this instance's open-clock changes every second (`flush`), reads the
    deployment-wide counts (kept by every instance's writes) back into the gauge, and
    reconciles them with a recount every `reconcile_s` (0 never), never more often than
    four times the recount's own duration."""

    async def loop() -> None:
        due = time.monotonic() + reconcile_s
        every = min(OPEN_CLOCKS_READ_S, reconcile_s) if reconcile_s > 0 else OPEN_CLOCKS_READ_S
        read_at = time.monotonic() + every
        while True:
            await asyncio.sleep(OPEN_CLOCKS_FLUSH_S)
            await flush()
            if time.monotonic() < read_at:
                continue
            read_at = time.monotonic() + every
            try:
                if reconcile_s > 0 and time.monotonic() >= due:
                    started = time.monotonic()
                    counts: dict[str, int] | None = await store.reconcile_open(now())
                    metrics.open_clocks_updates.labels("recounted").inc()
                    took = time.monotonic() - started
                    due = time.monotonic() + max(reconcile_s, 4 * took)
                else:
                    counts = await store.open_counts()
            except PyMongoError as exc:
                metrics.open_clocks_updates.labels("failed").inc()
                log.warning("sla_open_clocks_unread", error=f"{type(exc).__name__}: {exc}"[:300])
                continue
            if counts is not None:
                set_open_clocks(metrics, counts)

    return LoopWorker("sla-open-clocks", loop)


def create_app(
    settings: SlaSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    cfg = settings or SlaSettings()
    runtime = runtime or ServiceRuntime(SERVICE, cfg)
    metrics = sla_metrics(runtime.registry)
    current = load_policies(cfg.sla_policies)  # a bad file stops the start with the reason
    parts: dict[str, Any] = {}

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        if cfg.operator_api_key is None:
            log.warning(
                "operator_routes_open_by_choice",
                setting="HELPSTREAM_OPERATOR_ROUTES_OPEN",
                hint="anyone reaching the port can re-pin SLAs",
            )
        if cfg.sla_read_api_key is None:
            log.warning(
                "sla_read_open_by_choice",
                setting="HELPSTREAM_SLA_READ_OPEN",
                hint="anyone reaching the port can read any ticket's SLA",
            )
        store = SlaStore(rt.db)
        await store.ensure_indexes()
        known = await store.register(current)
        relay = await rt.add_outbox([store.tickets, rt.db[COLLECTION]])
        service = SlaService(
            store=store,
            clock=rt.clock,
            topics=rt.topics,
            policies=current,
            known=known,
            metrics=metrics,
            on_events=relay.wake,
            on_urgent=relay.wake_urgent,
        )
        erasures = confirm_erasures(rt, SlaEraser(), SlaRequesterErased, rt.topics.sla, relay.wake)
        consumer = rt.add_consumer(
            "tickets",
            with_erasures(service.on_ticket_events, erasures),
            personal_fields=False,  # clocks need no address, subject or text
        )
        timer = TimerLoop(
            service,
            consumer.watermark,
            rt.topics.tickets,
            cfg.timer_interval_s,
            advanced=consumer.advanced,
            metrics=metrics,
        )
        consumer.on_assigned, consumer.on_revoked = timer.assigned, timer.revoked
        rt.workers.append(timer)
        rt.workers.append(
            timer_gauge(
                "sla-at-risk-clocks",
                store.at_risk_counts,
                metrics.at_risk_clocks,
                cfg.at_risk_clocks_refresh_s,
            )
        )
        counts = await store.open_counts()
        if counts is None and cfg.open_clocks_refresh_s > 0:  # never counted: count once
            counts = await store.reconcile_open(rt.clock.now())
            metrics.open_clocks_updates.labels("recounted").inc()
        set_open_clocks(metrics, counts or {})
        rt.workers.append(
            open_clocks_gauge(
                store,
                metrics,
                rt.clock.now,
                cfg.open_clocks_refresh_s,
                service.flush_open_counts,
            )
        )
        parts.update(store=store, service=service, timer=timer)
        app.state.sla = parts

    app = service_app(
        runtime,
        title="helpstream sla_monitor",
        description="SLA clocks per ticket: warnings, breaches, fulfilment (helpstream.sla).",
        setup=setup,
    )

    @app.get("/v1/tickets/{ticket_id}/sla", response_model=TicketSlaView, tags=["sla"])
    async def ticket_sla(
        ticket_id: str, authorization: Annotated[str | None, Header(max_length=512)] = None
    ) -> TicketSlaView:
        """Each clock: target, elapsed, remaining, paused, state, deadline, breached_at."""
        require_bearer(cfg.sla_read_api_key, authorization, "SLA read API key")
        service: SlaService = parts["service"]
        sla = await parts["store"].get(ticket_id)
        if sla is None:
            raise ProblemError(404, "Unknown ticket", f"No SLA clocks for ticket {ticket_id!r}.")
        await service.ensure_versions([sla])
        return TicketSlaView.of(sla, service.policies_for(sla), runtime.clock.now())

    @app.post("/v1/tickets/{ticket_id}/sla/reapply", response_model=TicketSlaView, tags=["sla"])
    async def reapply(
        ticket_id: str,
        x_correlation_id: Annotated[str | None, Header(max_length=128)] = None,
        authorization: Annotated[str | None, Header(max_length=512)] = None,
    ) -> TicketSlaView:
        """Operator action: pin the ticket to the current policy version (time carries over)."""
        require_bearer(cfg.operator_api_key, authorization, "operator API key")
        service: SlaService = parts["service"]
        sla = await service.reapply(ticket_id, x_correlation_id or new_id())
        if sla is None:
            raise ProblemError(404, "Unknown ticket", f"No SLA clocks for ticket {ticket_id!r}.")
        return TicketSlaView.of(sla, service.current, runtime.clock.now())

    return app
