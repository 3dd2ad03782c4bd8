"""sla_monitor fire lag with many open clocks.

1. Load `ticket_sla` documents straight into MongoDB (insert_many, 1000 a batch), built
   with `TicketSla.start` + `store.to_document`, spread over 4 partitions: CLOCKS − DUE
   open clocks due far after the run, then DUE clocks whose breach falls due at a steady
   rate during the measurement window (their warnings already sent, so each fires
   exactly one `sla.breached`).
2. Start sla_monitor in-process (tickets topic pre-created with 4 partitions) while a
   producer sends `ticket.created` events for new tickets at INGEST/s.
3. Fire lag = time the `sla.breached` event is read from helpstream.sla − its
   `breached_at` (the due instant); p50/p99 over every due clock (one never seen
   counts at the time waited, so p99 is then a lower bound). Also the service's own
   `helpstream_sla_fire_lag_seconds` (due instant → outbox write) and memory (VmRSS)
   of this process (service + load generator) and of the SecantusDB process.

Environment: HELPSTREAM_BENCH_SLA_CLOCKS (default 1000000), HELPSTREAM_BENCH_SLA_WINDOW_S
(60), HELPSTREAM_BENCH_SLA_DUE_PER_S (50), HELPSTREAM_BENCH_SLA_INGEST_PER_S (50). The
in-memory database gets a storage cache sized for the clocks (`cache_for`): its default
1G is also the most it can hold, and it answered "internal server error" past ~500,000
documents. Loading stops early (and the count actually loaded is reported) after 15
minutes, when SecantusDB passes 16 GiB, or when it fails an insert.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from bench._common import (
    consumers_assigned,
    create_topics,
    infrastructure,
    percentile,
    prefix,
    raw_producer,
    rss_mib,
    running,
    service_settings,
    table,
)
from services.sla_monitor.app import create_app
from services.sla_monitor.domain import TicketSla
from services.sla_monitor.policy import load_policies
from services.sla_monitor.settings import SlaSettings
from services.sla_monitor.store import SlaStore, to_document
from shared.events import (
    Category,
    Channel,
    Priority,
    Requester,
    SlaMetric,
    Status,
    TicketCreated,
    TicketSummary,
    make_event,
)
from shared.outbox import ensure_outbox_index
from shared.runtime import ServiceRuntime
from shared.topics import Topics

if TYPE_CHECKING:
    from services.sla_monitor.policy import PolicySet
    from shared.infra.modes import Infra
    from shared.mongo import Document

PARTITIONS = 4
BATCH = 1000
LOAD_LIMIT_S = 15 * 60
MONGO_LIMIT_MIB = 16 * 1024
FAR_AHEAD = timedelta(days=1)  # the far clocks' creation time, from the load's start
LEAD_S = 30.0  # from the end of the load to the first due clock (service start-up)
DRAIN_S = 30.0
FIRE_LAG_METRICS = ("helpstream_sla_monitor_fire_lag_seconds", "helpstream_sla_fire_lag_seconds")


def env(name: str, default: float) -> float:
    return float(os.environ.get(f"HELPSTREAM_BENCH_SLA_{name}", default))


def clock_doc(policies: PolicySet, i: int, created_at: datetime, *, warned: bool) -> Document:
    """An urgent (24x7, first reply 15 min) ticket's SLA document."""
    sla = TicketSla.start(
        ticket_id=str(uuid.UUID(int=i + 1)),
        partition=i % PARTITIONS,
        priority=Priority.urgent,
        category=Category.withdrawal_delay,
        tier="standard",
        status=Status.new,
        created_at=created_at,
        policies=policies,
    )
    sla.take_events()
    if warned:  # only the breach is left to fire, at created_at + 15 min
        first = sla.timers[SlaMetric.first_reply]
        sla.timers[SlaMetric.first_reply] = replace(first, warned=tuple(policies.warnings))
    doc = to_document(sla, sla.next_due(policies))
    doc["seen"] = []
    return doc


async def load(
    infra: Infra, settings: SlaSettings, total: int, due: int, due_from_lead: float
) -> dict[str, Any]:
    """Insert the clocks; returns how many went in, how long it took and the due plan."""
    policies = load_policies(settings.sla_policies)
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    store = SlaStore(client[f"{settings.mongo_db_prefix}_sla_monitor"])
    await store.ensure_indexes()
    await ensure_outbox_index(store.tickets)
    await store.register(policies)  # the service finds this version and keeps its label
    target = policies.select(Priority.urgent, Category.withdrawal_delay, "standard")
    first_reply = target.targets[SlaMetric.first_reply].target
    started = time.perf_counter()
    loaded = 0
    stopped = ""
    pending: asyncio.Task[Any] | None = None
    far = total - due
    # The far clocks' first due instant is a day away, however long the load takes. Made
    # at the load's start, their 15-minute first reply warns at three quarters of it, so a
    # load of over ~11 minutes (1,000,000 clocks took 14.5 on 2026-11-30) left nearly all
    # of them due when the service started: the window then measured a storm of a million
    # warnings (the database stalled, nothing fired) instead of its 3,000 breaches.
    far_created = datetime.now(UTC) + FAR_AHEAD
    try:
        while loaded < far:
            size = min(BATCH, far - loaded)
            batch = [
                clock_doc(
                    policies,
                    loaded + j,
                    far_created - timedelta(seconds=(loaded + j) % 60),
                    warned=False,
                )
                for j in range(size)
            ]
            if pending is not None:
                try:
                    await pending
                except PyMongoError as exc:  # SecantusDB gave up (seen past ~500k): stop here
                    stopped = f"database error: {exc}"[:200]
                    pending = None
                    break
            pending = asyncio.create_task(store.tickets.insert_many(batch, ordered=False))
            loaded += size
            if loaded % 50_000 < BATCH:
                mongo = rss_mib(infra.mongo_pid) if infra.mongo_pid else 0.0
                print(
                    f"  loaded {loaded:,} in {time.perf_counter() - started:.0f}s, "
                    f"SecantusDB {mongo:,.0f} MiB",
                    flush=True,
                )
                if time.perf_counter() - started > LOAD_LIMIT_S:
                    stopped = "time"
                    break
                if mongo > MONGO_LIMIT_MIB:
                    stopped = "memory"
                    break
        if pending is not None:
            try:
                await pending
            except PyMongoError as exc:
                stopped = f"database error: {exc}"[:200]
        if stopped.startswith("database error"):
            loaded = await store.tickets.count_documents({})
        # the due clocks last, so their due instants are relative to the end of the load
        first_due = datetime.now(UTC) + timedelta(seconds=due_from_lead)
        spacing = env("WINDOW_S", 60) / max(due, 1)
        dues = [first_due + timedelta(seconds=k * spacing) for k in range(due)]
        docs = [
            clock_doc(policies, far + k, at - first_reply, warned=True) for k, at in enumerate(dues)
        ]
        for i in range(0, len(docs), BATCH):
            await store.tickets.insert_many(docs[i : i + BATCH], ordered=False)
        loaded += len(docs)
    finally:
        await client.close()
    return {
        "loaded": loaded,
        "seconds": time.perf_counter() - started,
        "stopped": stopped,
        "due_ids": {d["_id"] for d in docs},
        "first_due": first_due,
    }


def created_event(i: int) -> tuple[bytes, bytes]:
    now = datetime.now(UTC)
    ticket_id = str(uuid.uuid4())
    event = make_event(
        TicketCreated(
            ticket_id=ticket_id,
            ticket=TicketSummary(
                status=Status.new,
                priority=Priority.normal,
                category=Category.withdrawal_delay,
                channel=Channel.app,
                group="payments",
                requester_id=f"u-{i % 997}",
                created_at=now,
            ),
            requester=Requester(id=f"u-{i % 997}", email=f"u{i}@example.com"),
            subject=f"ingest {i}",
        ),
        source="/helpstream/intake",
        time=now,
        correlationid=f"bench-{i}",
    )
    return ticket_id.encode(), event.to_bytes()


async def ingest(bootstrap: str, topic: str, rate: float, until: float) -> int:
    """New tickets at a steady rate until `until` (monotonic); returns how many."""
    producer = raw_producer(bootstrap)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        while time.monotonic() < until:
            key, value = created_event(sent)
            await producer.send(topic, value, key=key)
            sent += 1
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


STAGES = ("due → fired", "fired → produced", "produced → read")


async def collect_fires(
    bootstrap: str, topic: str, due_ids: set[str], until: float
) -> dict[str, tuple[float, ...]]:
    """ticket id → (fire lag, *stages) in seconds of each `sla.breached` of the due clocks.

    The stages split the lag where it can be seen from outside: the event's `time` is the
    instant the timer's tick read its clock, the record's timestamp when the relay produced
    it (both clocks are this machine's)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"tap-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    lags: dict[str, tuple[float, ...]] = {}
    try:
        while time.monotonic() < until and len(lags) < len(due_ids):
            batches = await consumer.getmany(timeout_ms=200)
            received = time.time()
            for part in batches.values():
                for record in part:
                    event = json.loads(record.value)
                    if event["type"] != "helpstream.sla.breached":
                        continue
                    if event["subject"] in due_ids and event["subject"] not in lags:
                        due = datetime.fromisoformat(event["data"]["breached_at"]).timestamp()
                        fired = datetime.fromisoformat(event["time"]).timestamp()
                        produced = record.timestamp / 1000
                        lags[event["subject"]] = (
                            received - due,
                            fired - due,
                            produced - fired,
                            received - produced,
                        )
    finally:
        await consumer.stop()
    return lags


def cache_for(clocks: int) -> str:
    """The in-memory database holds no more than its cache: ~2 KiB per clock with its
    indexes and outbox, doubled for headroom (SecantusDB's 1G default fills near 500k)."""
    return f"{max(1, math.ceil(clocks * 4096 / 2**30))}G"


async def main(infra: Infra, total: int) -> dict[str, float]:
    window = env("WINDOW_S", 60)
    due = min(total, int(env("DUE_PER_S", 50) * window))
    tag = prefix()
    # The open-clocks gauge is kept from the service's writes; its reconciliation recounts
    # every open clock (~20 µs each on SecantusDB, a minute at 1M, with the database serving
    # nothing else), and would run at the first start since the clocks are loaded here
    # directly: it is off, the cheap at-risk recount stays on. On MongoDB it is an index count.
    settings = service_settings(SlaSettings, infra, tag, open_clocks_refresh_s=0)
    topics = Topics(f"{tag}.")
    names = [topics.tickets, topics.sla, Topics.dlq(topics.tickets)]
    await create_topics(infra.kafka_bootstrap, names, PARTITIONS)
    print(f"-- loading {total:,} open clocks ({due:,} fall due in the {window:.0f}s window)")
    plan = await load(infra, settings, total, due, LEAD_S)
    mongo_after_load = rss_mib(infra.mongo_pid) if infra.mongo_pid else 0.0
    print(
        f"  loaded {plan['loaded']:,} in {plan['seconds']:.0f}s "
        f"({plan['loaded'] / plan['seconds']:,.0f}/s), SecantusDB {mongo_after_load:,.0f} MiB",
        flush=True,
    )
    runtime = ServiceRuntime("sla_monitor", settings)
    app = create_app(settings, runtime)
    started = time.monotonic()
    async with running(app):
        await consumers_assigned(runtime, limit_s=120)
        ready_s = time.monotonic() - started
        print(f"  service ready in {ready_s:.1f}s (first clock due {LEAD_S:.0f}s after load)")
        seconds_to_first = (plan["first_due"] - datetime.now(UTC)).total_seconds()
        end = time.monotonic() + max(0.0, seconds_to_first) + window
        fires = asyncio.create_task(
            collect_fires(infra.kafka_bootstrap, topics.sla, plan["due_ids"], end + DRAIN_S)
        )
        sent = await ingest(infra.kafka_bootstrap, topics.tickets, env("INGEST_PER_S", 50), end)
        lags = await fires
        waited = time.time()
        registry = runtime.registry
        fire_count = fire_sum = 0.0
        for name in FIRE_LAG_METRICS:  # the metric was renamed once; read either
            fire_count += registry.get_sample_value(f"{name}_count") or 0.0
            fire_sum += registry.get_sample_value(f"{name}_sum") or 0.0
        relayed = (
            registry.get_sample_value(
                "helpstream_sla_monitor_outbox_events_relayed_total", {"topic": topics.sla}
            )
            or 0.0
        )
        backlog = registry.get_sample_value("helpstream_sla_monitor_outbox_pending_documents")
        own_rss = rss_mib()
        mongo_rss = rss_mib(infra.mongo_pid) if infra.mongo_pid else 0.0
    due_at = {t: 0.0 for t in plan["due_ids"]}
    missing = [
        waited - (plan["first_due"].timestamp() + i * window / max(due, 1))
        for i, t in enumerate(sorted(due_at))
        if t not in lags
    ]
    every = [lag[0] for lag in lags.values()] + missing
    p50, p99 = percentile(every, 50), percentile(every, 99)
    stages = [
        (f"  {name} p50 / p99 s", f"{percentile(seen, 50):.3f} / {percentile(seen, 99):.3f}")
        for k, name in enumerate(STAGES, start=1)
        if (seen := [lag[k] for lag in lags.values()])
    ]
    rows = [
        ("open clocks loaded", f"{plan['loaded']:,}"),
        ("load time s", plan["seconds"]),
        ("load rate docs/s", plan["loaded"] / plan["seconds"]),
        ("clocks due in window", due),
        ("breaches seen", len(lags)),
        ("fire lag p50 s", p50),
        ("fire lag p99 s" + (" (lower bound)" if missing else ""), p99),
        ("fire lag max s", max(every) if every else float("nan")),
        *stages,
        ("service's own fire lag mean s", fire_sum / fire_count if fire_count else float("nan")),
        ("service fires (timer)", fire_count),
        ("SLA events relayed / outbox backlog docs at end", f"{relayed:,.0f} / {backlog}"),
        ("tickets ingested", sent),
        ("bench+service RSS MiB", own_rss),
        ("SecantusDB RSS MiB (after load / end)", f"{mongo_after_load:,.0f} / {mongo_rss:,.0f}"),
    ]
    print(table(rows, ("figure", "value")))
    if plan["stopped"]:
        print(f"  loading stopped early ({plan['stopped']}): measured at {plan['loaded']:,}")
    return {
        "sla_open_clocks": float(plan["loaded"]),
        "sla_load_seconds": round(plan["seconds"], 1),
        "sla_due_in_window": float(due),
        "sla_breaches_seen": float(len(lags)),
        "sla_fire_lag_p50_s": round(p50, 3),
        "sla_fire_lag_p99_s": round(p99, 3),
        "sla_fire_lag_p99_is_lower_bound": 1.0 if missing else 0.0,
        "sla_service_fire_lag_mean_s": round(fire_sum / fire_count, 3) if fire_count else -1.0,
        "sla_ingested_tickets": float(sent),
        "sla_bench_process_rss_mib": round(own_rss, 1),
        "sla_mongo_rss_mib_after_load": round(mongo_after_load, 1),
        "sla_mongo_rss_mib_end": round(mongo_rss, 1),
    }


def run() -> dict[str, float]:
    total = int(env("CLOCKS", 1_000_000))
    with infrastructure(mongo_cache=cache_for(total)) as infra:
        return asyncio.run(main(infra, total))
