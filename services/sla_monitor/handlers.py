"""Ticket events move SLA timers; the timer loop fires what is due in the partitions we own.

Both write the same per-ticket document, each write conditional on the version it
read, so a warning is always checked against the latest state (an agent who replied a
second earlier cancels it) and two instances can never publish the same breach.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from aiokafka import TopicPartition
from pymongo.errors import PyMongoError

from services.sla_monitor.domain import (
    SlaTimerState,
    TicketSla,
    copy_sla,
    fact_id,
    open_delta,
)
from services.sla_monitor.policy import RecordedOnly
from services.sla_monitor.ports import SlaChange
from shared.errors import Retryable
from shared.events import (
    Author,
    SlaBreached,
    SlaClockData,
    SlaFulfilled,
    SlaMetric,
    SlaWarning,
    TicketIncidentUpdate,
    TicketLinkedToIncident,
    TicketMessageAdded,
    TicketStatusChanged,
    TicketUnlinkedFromIncident,
    make_event,
)
from shared.kafka import decode_events
from shared.tasks import BackgroundTask
from shared.tracing import new_trace, traceparent_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime

    from aiokafka.structs import ConsumerRecord

    from services.sla_monitor.metrics import SlaMetrics
    from services.sla_monitor.policy import PolicySet
    from services.sla_monitor.ports import SlaRepository
    from shared.clock import Clock
    from shared.events import CloudEvent, Contract, Outgoing
    from shared.kafka import Rejected
    from shared.topics import Topics

SOURCE = "/helpstream/sla_monitor"
MISSING_VERSION_RETRY_S = 60.0  # how long a version found nowhere is not looked for again
log = structlog.get_logger(__name__)

HELD_CHECK_S = 0.02  # how often a pause looks whether the watermark passed a held timer
HELD_LOOKAHEAD = timedelta(seconds=1)  # how far past a watermark a tick looks for held timers


@dataclass(frozen=True)
class Tick:
    """What a timer tick did: the events it fired, and per partition the soonest timer
    due by the clock but held back by the partition's watermark (the tickets consumer
    has yet to apply the events up to it)."""

    fired: int
    held: dict[int, datetime]


class SlaService:
    def __init__(
        self,
        *,
        store: SlaRepository,
        clock: Clock,
        topics: Topics,
        policies: PolicySet,
        known: dict[str, PolicySet],
        metrics: SlaMetrics,
        on_events: Callable[[int], None] = lambda _: None,
        on_urgent: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._topics = topics
        self.current = policies
        self._known = known
        self._missing: dict[str, tuple[float, PolicySet]] = {}
        self._looking = asyncio.Lock()
        self._metrics = metrics
        self._open_pending: dict[str, int] = defaultdict(int)  # saved, not yet counted
        self._on_events = on_events
        self._on_urgent = on_urgent

    def policies_for(self, sla: TicketSla) -> PolicySet:
        """The version the ticket is pinned to, once `ensure_versions` has looked for it.

        A version found nowhere is never replaced by the current file: the ticket's timers
        keep the targets they recorded (`RecordedOnly`)."""
        known = self._known.get(sla.policy_version)
        if known is not None:
            return known
        missing = self._missing.get(sla.policy_version)
        if missing is None:
            missing = (float("-inf"), RecordedOnly(self.current, sla.policy_version))
            self._missing[sla.policy_version] = missing
        return missing[1]

    async def ensure_versions(self, slas: Iterable[TicketSla]) -> None:
        """Holds every version these tickets are pinned to: another instance (one further
        along a rolling deploy) may have started with a policy file this one never read,
        and stored it. Loaded versions are kept; a version found nowhere is logged,
        counted, and looked for again after `MISSING_VERSION_RETRY_S`."""
        versions = {sla.policy_version for sla in slas}
        if not any(self._to_look_for(v, time.monotonic()) for v in versions):
            return
        async with self._looking:  # the consumer, the timer and reads may want the same one
            await self._look_for(versions)

    async def _look_for(self, versions: set[str]) -> None:
        now = time.monotonic()
        wanted = {v for v in versions if self._to_look_for(v, now)}
        if not wanted:
            return
        found = await self._store.find_versions(wanted)
        for version, policies in found.items():
            self._known[version] = policies
            self._missing.pop(version, None)
            self._metrics.policy_versions.labels("loaded").inc()
            log.info("sla_policy_version_loaded", version=version)
        for version in wanted - found.keys():
            self._missing[version] = (now, RecordedOnly(self.current, version))
            self._metrics.policy_versions.labels("missing").inc()
            log.error(
                "sla_policy_version_missing",
                version=version,
                current=self.current.version,
                effect="its tickets keep their clocks' recorded targets; no new cycle starts",
                hint="restore the version into the policy_versions collection, or reapply",
            )

    def _to_look_for(self, version: str, now: float) -> bool:
        missing = self._missing.get(version)
        return version not in self._known and (
            missing is None or missing[0] + MISSING_VERSION_RETRY_S <= now
        )

    # --- ticket events ---------------------------------------------------------------

    async def on_ticket_events(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Sequence[Rejected]:
        """The consumer's batch: decoded here, applied by `apply`; poison goes back."""
        accepted, rejected = decode_events(records)
        await self.apply([(item.record.partition, item.value) for item in accepted])
        return rejected

    async def apply(self, events: Sequence[tuple[int, CloudEvent[Contract]]]) -> None:
        """Moves the timers of each ticket by its events (with the partition each came
        from), in event time; events applied before are skipped. Raises `Retryable` when a
        ticket changed meanwhile: the changes that were written are counted, and the
        retried batch skips them."""
        by_ticket: dict[str, list[tuple[int, CloudEvent[Contract]]]] = defaultdict(list)
        for partition, event in events:
            if getattr(event.data, "ticket", None) is None:
                continue  # an incident's own events: its tickets' events move their timers
            by_ticket[event.subject].append((partition, event))
        if not by_ticket:
            return
        loaded = await self._store.load(list(by_ticket))
        await self.ensure_versions(sla for sla, _ in loaded.values())
        changes: list[SlaChange] = []
        moved: dict[str, tuple[str, dict[SlaMetric, int]]] = {}  # ticket: (marker, open delta)
        now = self._clock.now()
        written = 0
        for ticket_id, items in by_ticket.items():
            items.sort(key=lambda pair: pair[1].time)  # event time, not arrival
            existing, seen = loaded.get(ticket_id, (None, set()))
            sla = copy_sla(existing) if existing is not None else None
            new_ids: list[str] = []
            outbox: list[Outgoing] = []
            for partition, event in items:
                if event.id in seen:
                    continue
                seen.add(event.id)
                new_ids.append(event.id)
                sla = self._apply(sla, partition, event)
                sla.correlation_id = event.correlationid
                sla.traceparent = traceparent_for(event.correlationid) or event.traceparent
                outbox.extend(self._outbox(sla, event.correlationid, now, cause=event.id))
            if sla is None or not new_ids:
                continue
            next_due = sla.next_due(self.policies_for(sla))
            written += len(outbox)
            moved[ticket_id] = (new_ids[0], open_delta(existing, sla))
            changes.append(SlaChange(sla, next_due, outbox, new_ids, new=existing is None))
        lost = await self._store.save(changes, now)
        applied = set(moved)
        if lost:  # the retried batch skips what did apply: count those now
            applied = await self._store.applied({t: marker for t, (marker, _) in moved.items()})
        self._count_open([moved[t][1] for t in applied])
        if lost:
            raise Retryable("a ticket's SLA changed while applying events; retrying the batch")
        if changes:
            self._on_events(written)  # a backlog's batches may wait for the relay a little

    def _apply(
        self, sla: TicketSla | None, partition: int, event: CloudEvent[Contract]
    ) -> TicketSla:
        data = event.data
        summary = data.ticket  # type: ignore[attr-defined]
        at = event.time
        if sla is None:
            sla = TicketSla.start(
                ticket_id=event.subject,
                partition=partition,
                priority=summary.priority,
                category=summary.category,
                tier=summary.requester_tier,
                status=summary.status,
                created_at=summary.created_at,
                policies=self.current,
            )
        pinned = self.policies_for(sla)
        if isinstance(data, TicketMessageAdded) and data.public:
            if data.author == Author.agent:
                self._observe_first_reply(sla, at, pinned)
                sla.on_agent_reply(at, pinned)
            elif data.author == Author.requester:
                sla.on_requester_message(at, pinned)
        elif isinstance(data, TicketStatusChanged):
            sla.on_status(data.old, data.new, at, pinned, incident_id=data.incident_id)
        elif isinstance(data, TicketIncidentUpdate):
            sla.on_incident_update(at, pinned)
        elif isinstance(data, TicketLinkedToIncident):
            sla.on_incident_linked(data.incident_id, at, pinned)
        elif isinstance(data, TicketUnlinkedFromIncident):
            sla.on_incident_unlinked(data.incident_id, at, pinned)
        if (summary.priority, summary.category) != (sla.priority, sla.category):
            sla.reapply(
                priority=summary.priority,
                category=summary.category,
                at=at,
                pinned=pinned,
                policies=self.current,
            )
        return sla

    def _observe_first_reply(self, sla: TicketSla, at: datetime, policies: PolicySet) -> None:
        timer = sla.timers.get(SlaMetric.first_reply)
        if timer is not None and timer.state is not SlaTimerState.stopped:
            elapsed = timer.elapsed(policies, at).total_seconds()
            self._metrics.first_reply.labels(sla.priority.value).observe(elapsed)

    def _outbox(
        self, sla: TicketSla, correlation_id: str, now: datetime, cause: str | None = None
    ) -> list[Outgoing]:
        entries: list[Outgoing] = []
        for data in sla.take_events():
            self._count(data)
            event_id = fact_id(data, cause) if isinstance(data, SlaClockData) else None
            event = make_event(
                data, source=SOURCE, time=now, correlationid=correlation_id, event_id=event_id
            )
            entries.append((self._topics.sla, event))
        return entries

    def _count(self, data: Contract) -> None:
        if isinstance(data, SlaWarning):
            counter = self._metrics.warnings
        elif isinstance(data, SlaBreached):
            counter = self._metrics.breaches
        elif isinstance(data, SlaFulfilled):
            counter = self._metrics.fulfilled
        else:
            return
        counter.labels(data.metric.value, data.priority.value, data.policy).inc()

    def _count_open(self, deltas: Sequence[dict[SlaMetric, int]]) -> None:
        """Notes what saved changes opened and stopped; `flush_open_counts` writes it. The
        batch does not wait for that write: it commits once its own write is durable."""
        for delta in deltas:
            for metric, n in delta.items():
                if n:
                    self._open_pending[metric.value] += n

    async def flush_open_counts(self) -> None:
        """Moves the deployment-wide open-clock counts by the changes noted since the last
        flush, in one write; kept for the next flush when the database does not answer
        (a write that timed out but applied counts twice until the next reconciliation)."""
        moved = {metric: n for metric, n in self._open_pending.items() if n}
        if not moved:
            return
        self._open_pending = defaultdict(int)
        try:
            counts = await self._store.add_open(moved)
        except PyMongoError as exc:
            for metric, n in moved.items():
                self._open_pending[metric] += n
            self._metrics.open_clocks_updates.labels("failed").inc()
            log.warning(
                "sla_open_clocks_not_counted",
                delta=moved,
                error=f"{type(exc).__name__}: {exc}"[:300],
                effect="kept for the next flush",
            )
            return
        self._metrics.open_clocks_updates.labels("counted").inc()
        set_open_clocks(self._metrics, counts)

    # --- operator -----------------------------------------------------------------------

    async def reapply(self, ticket_id: str, correlation_id: str) -> TicketSla | None:
        """Pin the ticket to the current policy version, carrying time already spent."""
        for _ in range(5):
            sla = await self._store.get(ticket_id)
            if sla is None:
                return None
            await self.ensure_versions([sla])
            now = self._clock.now()
            before = copy_sla(sla)
            sla.reapply(
                priority=sla.priority,
                category=sla.category,
                at=now,
                pinned=self.policies_for(sla),
                policies=self.current,
            )
            outbox = self._outbox(sla, correlation_id, now)
            change = SlaChange(sla, sla.next_due(self.current), outbox)
            if not await self._store.save([change], now):
                self._count_open([open_delta(before, sla)])
                self._on_events(1)
                sla.version += 1
                return sla
        raise Retryable(f"ticket {ticket_id} kept changing")

    # --- timers -------------------------------------------------------------------------

    async def fire_due(self, partitions: dict[int, datetime], limit: int = 500) -> Tick:
        """Fire what is due in each owned partition, up to that partition's watermark.

        Each partition's query reaches `HELD_LOOKAHEAD` past its watermark (never past
        now): timers due by the clock but not yet by the watermark are left for later,
        and the soonest of them tells the timer loop what to wait for."""
        now = self._clock.now()
        changes: list[SlaChange] = []
        fired = 0
        held: dict[int, datetime] = {}
        horizons = {partition: min(now, watermark) for partition, watermark in partitions.items()}
        # asked together: the database answers one while the next is on its way
        found = await asyncio.gather(
            *(
                self._store.due(p, min(now, horizon + HELD_LOOKAHEAD), limit)
                for p, horizon in horizons.items()
            )
        )
        for (partition, horizon), due in zip(horizons.items(), found, strict=True):
            await self.ensure_versions(due)
            for sla in due:
                policies = self.policies_for(sla)
                due_at = sla.next_due(policies)
                if due_at is not None and due_at > horizon:
                    held.setdefault(partition, due_at)  # soonest first
                    continue
                sla.fire(horizon, policies)
                # a new trace, linked to the ticket's; the request's correlation id stays
                with new_trace("sla timer fire", sla.traceparent, {"ticket.id": sla.ticket_id}):
                    events = self._outbox(sla, sla.correlation_id or sla.ticket_id, now)
                if due_at is not None and events:
                    self._metrics.fire_lag.observe(max(0.0, (now - due_at).total_seconds()))
                fired += len(events)
                changes.append(SlaChange(sla, sla.next_due(policies), events, urgent=True))
        lost = await self._store.save(changes, now)
        if changes:
            self._on_urgent()  # breaches and warnings leave at once, ahead of any backlog
        if lost:
            log.info("sla_fire_raced", lost=lost)  # the next tick sees the newer state
        return Tick(fired, held)


def set_open_clocks(metrics: SlaMetrics, counts: dict[str, int]) -> None:
    for metric in SlaMetric:
        metrics.open_clocks.labels(metric.value).set(counts.get(metric.value, 0))


class TimerLoop(BackgroundTask):
    """Fires due SLA timers of the partitions this instance owns: again at once after a
    tick that fired, else after `interval_s`, or as soon as the tickets consumer's
    watermark passes a timer it was holding back.

    Under ingest the watermark trails the clock by a batch, so ticks often find a timer
    due but held; a fixed sleep on top of that wait put up to `interval_s` more on every
    such timer's lag. `watermark` is the consumer's (`BatchConsumer.watermark`); it moves
    with each batch applied (`advanced` is set then) and with each fetch that finds a
    partition caught up (looked at every `HELD_CHECK_S` while a timer is held)."""

    def __init__(
        self,
        service: SlaService,
        watermark: Callable[[TopicPartition], datetime | None],
        topic: str,
        interval_s: float = 0.2,
        *,
        advanced: asyncio.Event | None = None,
        metrics: SlaMetrics | None = None,
    ) -> None:
        super().__init__()
        self._service = service
        self._watermark = watermark
        self._topic = topic
        self._interval = interval_s
        self._advanced = advanced or asyncio.Event()
        self._metrics = metrics
        self.owned: set[int] = set()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self.owned |= {tp.partition for tp in partitions if tp.topic == self._topic}

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.owned -= {tp.partition for tp in partitions if tp.topic == self._topic}

    name = "sla-timer"

    def horizons(self) -> dict[int, datetime]:
        """Owned partitions whose consumer has caught up to some instant."""
        marks = {p: self._watermark(TopicPartition(self._topic, p)) for p in self.owned}
        return {p: mark for p, mark in marks.items() if mark is not None}

    async def tick(self) -> Tick:
        return await self._service.fire_due(self.horizons())

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                tick = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._count("failed", started)
                log.warning("sla_timer_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)
                continue
            self._count("fired" if tick.fired else "held" if tick.held else "idle", started)
            if not tick.fired:
                await self.pause(tick.held)

    async def pause(self, held: dict[int, datetime]) -> None:
        """Until the next tick: `interval_s`, or less once a held timer's partition
        watermark reaches it."""
        deadline = time.monotonic() + self._interval
        while (remaining := deadline - time.monotonic()) > 0:
            horizons = self.horizons()
            if any(p in horizons and horizons[p] >= due for p, due in held.items()):
                return
            self._advanced.clear()
            wait = min(remaining, HELD_CHECK_S) if held else remaining
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), wait)

    def _count(self, outcome: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.timer_ticks.labels(outcome).inc()
            self._metrics.timer_tick_seconds.observe(time.perf_counter() - started)
