"""SlaService on the in-memory repository: what ticket events and the timer loop publish.

The same behaviour on the real broker and MongoDB is in `tests/integration/sla_monitor`;
these run in milliseconds and reach the races a real database rarely shows.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from services.sla_monitor.handlers import SlaService, Tick, TimerLoop
from services.sla_monitor.memory_store import MemorySlaRepository
from services.sla_monitor.metrics import sla_metrics
from services.sla_monitor.policy import parse_policies
from services.sla_monitor.ports import SlaChange
from shared.clock import FixedClock
from shared.errors import Retryable
from shared.events import (
    Author,
    Category,
    Channel,
    Priority,
    Requester,
    SlaBreached,
    SlaClockData,
    SlaFulfilled,
    SlaMetric,
    SlaWarning,
    Status,
    TicketCreated,
    TicketMessageAdded,
    TicketSummary,
    make_event,
)
from shared.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Sequence

    from services.sla_monitor.domain import TicketSla
    from shared.events import CloudEvent, Contract

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
POLICIES = """
warnings: [0.75]
policies:
  - name: standard
    targets:
      first_reply: {target: 1h}
      resolution: {target: 8h}
"""


class Harness:
    def __init__(self) -> None:
        self.repo: RacingRepository | MemorySlaRepository = MemorySlaRepository()
        self.clock = FixedClock(T0)
        self.registry = CollectorRegistry()
        self.policies = parse_policies(POLICIES)
        self.wakes: list[tuple[str, int]] = []  # what the service told the outbox relay

    async def service(self) -> SlaService:
        known = await self.repo.register(self.policies)
        return SlaService(
            store=self.repo,
            clock=self.clock,
            topics=Topics(),
            policies=self.policies,
            known=known,
            metrics=sla_metrics(self.registry),
            on_events=lambda n: self.wakes.append(("events", n)),
            on_urgent=lambda: self.wakes.append(("urgent", 1)),
        )

    def published(self, kind: type[SlaClockData]) -> list[tuple[str, SlaMetric]]:
        """(ticket, metric) of each event of this kind saved for publication."""
        return [
            (e.data.ticket_id, e.data.metric)
            for _, e in self.repo.published
            if isinstance(e.data, kind)
        ]


def summary() -> TicketSummary:
    return TicketSummary(
        status=Status.new,
        priority=Priority.normal,
        category=Category.other,
        channel=Channel.web,
        group="general",
        requester_id="u-1",
        created_at=T0,
    )


def created(ticket_id: str) -> tuple[int, CloudEvent[Contract]]:
    data = TicketCreated(
        ticket_id=ticket_id, ticket=summary(), requester=Requester(id="u-1"), subject="help"
    )
    return 0, make_event(data, source="/helpstream/intake", time=T0, correlationid="c-1")


def agent_reply(ticket_id: str, at: datetime) -> tuple[int, CloudEvent[Contract]]:
    data = TicketMessageAdded(
        ticket_id=ticket_id,
        ticket=summary(),
        message_id="m-1",
        author=Author.agent,
        public=True,
        body="we are on it",
    )
    return 0, make_event(data, source="/helpstream/intake", time=at, correlationid="c-1")


async def test_a_redelivered_ticket_event_moves_no_timer_twice() -> None:
    h = Harness()
    service = await h.service()
    batch = [created("T-1"), agent_reply("T-1", T0 + timedelta(minutes=5))]

    await service.apply(batch)
    await service.apply(batch)  # the consumer crashed before committing its offsets

    assert h.published(SlaFulfilled) == [("T-1", SlaMetric.first_reply)]
    sla = await h.repo.get("T-1")
    assert sla is not None
    assert sla.version == 0  # the redelivery wrote nothing


async def test_a_breach_is_emitted_once_when_deadline_passes() -> None:
    h = Harness()
    service = await h.service()
    await service.apply([created("T-1")])

    h.clock.set(T0 + timedelta(minutes=50))
    await service.fire_due({0: h.clock.now()})
    assert h.published(SlaWarning) == [("T-1", SlaMetric.first_reply)]
    assert h.published(SlaBreached) == []

    h.clock.set(T0 + timedelta(hours=1, minutes=1))
    for _ in range(3):  # every tick after the deadline, and a second instance's tick
        await service.fire_due({0: h.clock.now()})

    assert h.published(SlaBreached) == [("T-1", SlaMetric.first_reply)]


async def test_a_timer_fires_no_further_than_the_partition_has_been_read() -> None:
    h = Harness()
    service = await h.service()
    await service.apply([created("T-1")])

    h.clock.set(T0 + timedelta(hours=2))
    await service.fire_due({0: T0 + timedelta(minutes=30)})  # events after that unread yet

    assert h.published(SlaBreached) == []
    assert h.published(SlaWarning) == []


async def test_an_agent_reply_before_the_deadline_cancels_the_breach() -> None:
    h = Harness()
    service = await h.service()
    await service.apply([created("T-1"), agent_reply("T-1", T0 + timedelta(minutes=59))])

    h.clock.set(T0 + timedelta(hours=2))
    await service.fire_due({0: h.clock.now()})

    assert h.published(SlaFulfilled) == [("T-1", SlaMetric.first_reply)]
    assert ("T-1", SlaMetric.first_reply) not in h.published(SlaBreached)


class RacingRepository(MemorySlaRepository):
    """Someone else (the timer loop, another instance) writes `T-1` right after each
    load, once armed."""

    armed = False

    async def load(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketSla, set[str]]]:
        loaded = await super().load(ticket_ids)
        if self.armed:
            self.armed = False
            other = await self.get("T-1")
            assert other is not None
            await self.save([SlaChange(other, None)], T0)
        return loaded


async def test_a_batch_that_lost_a_race_is_retried_and_keeps_what_was_written() -> None:
    h = Harness()
    h.repo = RacingRepository()
    service = await h.service()
    await service.apply([created("T-1")])
    batch = [agent_reply("T-1", T0 + timedelta(minutes=5)), created("T-2")]

    h.repo.armed = True
    with pytest.raises(Retryable):
        await service.apply(batch)
    assert await h.repo.get("T-2") is not None  # the other ticket's change was written
    assert h.published(SlaFulfilled) == []

    await service.apply(batch)  # the consumer's retry
    assert h.published(SlaFulfilled) == [("T-1", SlaMetric.first_reply)]


class UrgencyRecording(MemorySlaRepository):
    """Remembers, for each saved change with events, their kinds and whether it was urgent."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[bool, set[str]]] = []

    async def save(self, changes: Sequence[SlaChange], now: datetime) -> int:
        for change in changes:
            if change.events:
                kinds = {type(e.data).__name__ for _, e in change.events}
                self.saved.append((change.urgent, kinds))
        return await super().save(changes, now)


async def test_timer_fires_are_saved_urgent_and_ticket_events_are_not() -> None:
    """The outbox relay sends urgent changes before any backlog: a breach must not queue
    behind the clocks of a flood of new tickets."""
    h = Harness()
    repo = h.repo = UrgencyRecording()
    service = await h.service()
    await service.apply([created("T-1")])
    for at in (timedelta(minutes=50), timedelta(hours=1, minutes=1)):
        h.clock.set(T0 + at)
        await service.fire_due({0: h.clock.now()})

    assert repo.saved[0][0] is False  # the ticket's clocks started
    fired = [kinds for urgent, kinds in repo.saved[1:] if urgent]
    assert fired
    assert {"SlaWarning", "SlaBreached"} <= set().union(*fired)
    assert all(urgent for urgent, _ in repo.saved[1:])
    # the ticket's write woke the relay's ordinary rounds, each fire its urgent lane
    assert h.wakes == [("events", 2), ("urgent", 1), ("urgent", 1)]  # 2: both clocks started


async def test_a_timer_due_just_past_the_watermark_is_held_back_and_reported() -> None:
    h = Harness()
    service = await h.service()
    await service.apply([created("T-1")])
    h.clock.set(T0 + timedelta(hours=2))
    warning_at = T0 + timedelta(minutes=45)

    # the consumer has read partition 0 up to just before the warning: it waits for it
    tick = await service.fire_due({0: warning_at - timedelta(milliseconds=500)})
    assert (tick.fired, tick.held) == (0, {0: warning_at})
    # read far less: nothing is fired, and nothing so far ahead is looked at
    assert await service.fire_due({0: T0 + timedelta(minutes=10)}) == Tick(0, {})
    assert h.published(SlaWarning) == []

    tick = await service.fire_due({0: h.clock.now()})  # caught up
    assert tick.fired > 0
    assert tick.held == {}
    assert h.published(SlaBreached) == [("T-1", SlaMetric.first_reply)]


async def test_the_timer_ticks_again_once_the_watermark_passes_a_held_timer() -> None:
    h = Harness()
    service = await h.service()
    advanced = asyncio.Event()
    marks = {TopicPartition("tickets", 0): T0 + timedelta(minutes=40)}
    loop = TimerLoop(service, marks.get, "tickets", interval_s=3600.0, advanced=advanced)
    loop.owned = {0}
    pause = asyncio.create_task(loop.pause({0: T0 + timedelta(minutes=45)}))

    marks[TopicPartition("tickets", 0)] = T0 + timedelta(minutes=44)  # not far enough yet
    advanced.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not pause.done()

    marks[TopicPartition("tickets", 0)] = T0 + timedelta(minutes=45)
    advanced.set()
    await asyncio.wait_for(pause, 10)  # long before the hour-long interval


async def test_a_watermark_move_does_not_end_the_pause_when_no_timer_is_held() -> None:
    h = Harness()
    service = await h.service()
    advanced = asyncio.Event()
    marks = {TopicPartition("tickets", 0): T0}
    loop = TimerLoop(service, marks.get, "tickets", interval_s=3600.0, advanced=advanced)
    loop.owned = {0}
    pause = asyncio.create_task(loop.pause({}))

    marks[TopicPartition("tickets", 0)] = T0 + timedelta(hours=1)
    advanced.set()
    for _ in range(5):
        await asyncio.sleep(0)

    assert not pause.done()  # no extra tick: it waits out its interval
    pause.cancel()
