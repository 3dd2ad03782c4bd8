"""Events written with a state change reach Kafka once, and the outbox empties."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from shared.clock import SystemClock
from shared.events import CloudEvent, Contract, parse_event
from shared.infra.modes import Infra
from shared.kafka import make_producer
from shared.metrics import outbox_metrics
from shared.outbox import (
    OUTBOX,
    OUTBOX_CLAIM,
    OUTBOX_SINCE,
    URGENT_SINCE,
    OutboxRelay,
    ensure_outbox_index,
    outbox_entry,
    outbox_update,
)
from shared.settings import ServiceSettings
from tests.integration.shared.test_batch_consumer import created_event
from tests.support import Tap, eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiokafka import AIOKafkaProducer
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase


async def pending(
    tickets: AsyncCollection[dict[str, Any]], topic: str, count: int
) -> list[CloudEvent[Contract]]:
    """`count` ticket documents, each with one event waiting in its outbox."""
    await ensure_outbox_index(tickets)
    now = datetime.now(UTC)
    events = [parse_event(created_event(f"T-{i}")) for i in range(count)]
    await tickets.insert_many(
        [{"_id": e.subject, OUTBOX: [outbox_entry(topic, e)], OUTBOX_SINCE: now} for e in events]
    )
    return events


@dataclass
class Outboxes:
    """A tickets collection with outboxes, a started producer, and relays onto both."""

    infra: Infra
    topic: str
    tickets: AsyncCollection[dict[str, Any]]
    producer: AIOKafkaProducer

    def relay(
        self, collection: Any = None, registry: CollectorRegistry | None = None, **options: Any
    ) -> OutboxRelay:
        metrics = outbox_metrics(registry or CollectorRegistry(), "test")
        return OutboxRelay(
            [collection if collection is not None else self.tickets],
            self.producer,
            metrics,
            SystemClock(),
            **options,
        )

    def tap(self) -> Tap:
        return Tap(self.infra.kafka_bootstrap, self.topic)

    async def left(self) -> int:
        return await self.tickets.count_documents({OUTBOX_SINCE: {"$exists": True}})


@pytest.fixture
async def outboxes(
    infra: Infra, make_settings: Any, scratch_db: AsyncDatabase[dict[str, Any]]
) -> AsyncIterator[Outboxes]:
    settings = make_settings(ServiceSettings)
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        yield Outboxes(infra, f"{settings.topic_prefix}tickets", scratch_db["tickets"], producer)
    finally:
        await producer.stop()


async def test_relay_publishes_every_pending_event_once_and_clears_the_outbox(
    outboxes: Outboxes,
) -> None:
    events = await pending(outboxes.tickets, outboxes.topic, 30)
    registry = CollectorRegistry()
    relay = outboxes.relay(registry=registry, batch_size=7)
    async with outboxes.tap() as tap:
        while await relay.relay_once():
            pass
        received = await tap.collect(30)
        await tap.settle(1.0)

    ids = [parse_event(r.value).id for r in received]
    assert sorted(ids) == sorted(e.id for e in events)
    assert {r.key for r in received} == {e.subject.encode() for e in events}
    assert await outboxes.left() == 0
    assert registry.get_sample_value("helpstream_test_outbox_pending_documents") == 0


async def test_two_relays_on_one_collection_publish_each_event_once(
    outboxes: Outboxes,
) -> None:
    events = await pending(outboxes.tickets, outboxes.topic, 60)
    relays = [outboxes.relay(batch_size=5) for _ in range(2)]
    async with outboxes.tap() as tap:
        for _ in range(20):
            await asyncio.gather(*(relay.relay_once() for relay in relays))
        await tap.collect(60)
        received = await tap.settle(1.0)
    ids = [parse_event(r.value).id for r in received]
    assert sorted(ids) == sorted(e.id for e in events)


class AppendWhileLeased:
    """A collection on which a writer appends one event to a leased document between the
    relay's publish and its clear (the moment a concurrent state change can land)."""

    def __init__(self, real: Any, doc_id: str, entry: dict[str, Any]) -> None:
        self._real = real
        self._doc_id = doc_id
        self._entry: dict[str, Any] | None = entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        if self._entry is not None:
            entry, self._entry = self._entry, None
            await self._real.update_one(
                {"_id": self._doc_id},
                outbox_update([entry], datetime.now(UTC)),
            )
        return await self._real.bulk_write(*args, **kwargs)


async def test_an_event_appended_while_its_document_is_leased_is_published_later_not_lost(
    outboxes: Outboxes,
) -> None:
    events = await pending(outboxes.tickets, outboxes.topic, 8)
    late = parse_event(created_event("T-3"))
    appending = AppendWhileLeased(outboxes.tickets, "T-3", outbox_entry(outboxes.topic, late))
    relay = outboxes.relay(appending)
    async with outboxes.tap() as tap:
        first = await relay.relay_once()
        second = await relay.relay_once()
        await tap.collect(9)
        received = await tap.settle(1.0)
    leased = await outboxes.tickets.count_documents({OUTBOX_CLAIM: {"$exists": True}})

    assert (first, second) == (8, 1)  # the late event went out in the next round
    ids = [parse_event(r.value).id for r in received]
    assert sorted(ids) == sorted([*(e.id for e in events), late.id])  # each once
    assert (await outboxes.left(), leased) == (0, 0)


async def test_starting_on_a_database_with_the_retired_claim_index_drops_it(
    scratch_db: AsyncDatabase[dict[str, Any]],
) -> None:
    tickets = scratch_db["tickets"]
    await tickets.create_index([(OUTBOX_CLAIM, 1)], sparse=True)
    await ensure_outbox_index(tickets)
    await ensure_outbox_index(tickets)  # a second start (or instance) finds nothing to do
    names = {index["name"] async for index in await tickets.list_indexes()}
    assert names == {"_id_", f"{OUTBOX_SINCE}_1"}


async def test_only_the_lease_holder_relays_and_another_takes_over_once_it_stops(
    outboxes: Outboxes,
) -> None:
    tickets, topic = outboxes.tickets, outboxes.topic
    first = await pending(tickets, topic, 3)
    registries = [CollectorRegistry(), CollectorRegistry()]
    holder, other = (
        outboxes.relay(registry=registry, lease=timedelta(seconds=2)) for registry in registries
    )
    held = "helpstream_test_outbox_relay_lease_held"
    try:
        async with outboxes.tap() as tap:
            assert await holder.relay_once() == 3
            later = [parse_event(created_event(f"L-{i}")) for i in range(2)]
            await tickets.insert_many(
                [
                    {"_id": e.subject, OUTBOX: [outbox_entry(topic, e)], OUTBOX_SINCE: e.time}
                    for e in later
                ]
            )
            assert await other.relay_once() == 0  # the holder's lease is still running
            assert registries[0].get_sample_value(held) == 1
            assert registries[1].get_sample_value(held) == 0
            await holder.stop()  # hands the lease back
            await asyncio.sleep(0.6)  # the other tries again after a quarter lease
            assert await other.relay_once() == 2
            await tap.collect(5)
            received = await tap.settle(1.0)
    finally:
        await other.stop()
    ids = sorted(parse_event(r.value).id for r in received)
    assert ids == sorted(e.id for e in [*first, *later])


class TakenOverBeforeClear:
    """The relay's first clear comes after it lost its lease (paused past it): another
    relay has published and cleared the same events, and a writer appended a new event
    to the same document, so its outbox has the size the paused relay read."""

    def __init__(self, real: Any, other: OutboxRelay, doc_id: str, entry: dict[str, Any]):
        self._real, self._other, self._doc_id = real, other, doc_id
        self._entry: dict[str, Any] | None = entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        if self._entry is not None:
            entry, self._entry = self._entry, None
            await asyncio.sleep(0.05)  # the paused relay's lease (0 s) has run out
            assert await self._other.relay_once() == 1
            await self._real.update_one(
                {"_id": self._doc_id}, outbox_update([entry], datetime.now(UTC))
            )
        return await self._real.bulk_write(*args, **kwargs)


async def test_a_relay_that_lost_its_lease_mid_round_clears_no_event_it_did_not_publish(
    outboxes: Outboxes,
) -> None:
    (event,) = await pending(outboxes.tickets, outboxes.topic, 1)
    late = parse_event(created_event(event.subject))
    other = outboxes.relay(lease=timedelta(seconds=30))
    taken_over = TakenOverBeforeClear(
        outboxes.tickets, other, event.subject, outbox_entry(outboxes.topic, late)
    )
    paused = outboxes.relay(taken_over, lease=timedelta(0))
    async with outboxes.tap() as tap:
        assert await paused.relay_once() == 1
        assert await other.relay_once() == 1  # the late event was kept, and goes now
        await tap.collect(3)
        received = await tap.settle(1.0)
    ids = [parse_event(r.value).id for r in received]
    assert sorted(ids) == sorted([event.id, event.id, late.id])  # a duplicate, no loss
    assert await outboxes.left() == 0


async def test_an_urgent_event_written_behind_a_backlog_goes_out_in_the_next_round(
    outboxes: Outboxes,
) -> None:
    """An SLA breach must not wait for a backlog of ordinary events (fire lag)."""
    await pending(outboxes.tickets, outboxes.topic, 120)
    breach = parse_event(created_event("T-breached"))
    now = datetime.now(UTC)
    await outboxes.tickets.insert_one({"_id": breach.subject})
    await outboxes.tickets.update_one(
        {"_id": breach.subject},
        outbox_update([outbox_entry(outboxes.topic, breach)], now, urgent=True),
    )
    relay = outboxes.relay(batch_size=50)
    async with outboxes.tap() as tap:
        first_round = await relay.relay_once()
        received = await tap.collect(first_round)

    assert first_round == 50
    assert breach.id in {parse_event(r.value).id for r in received}


class FirstClearHeld:
    """A collection on which the relay's first clear waits until released: a round of
    ordinary events stuck clearing, as a round on a loaded database is for seconds."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.clearing = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        if not self.clearing.is_set():
            self.clearing.set()
            await self.release.wait()
        return await self._real.bulk_write(*args, **kwargs)


async def until_drained(outboxes: Outboxes) -> None:
    async def drained() -> bool:
        return await outboxes.left() == 0

    await eventually(drained)


@contextlib.asynccontextmanager
async def round_held_in_its_clear(
    outboxes: Outboxes, **options: Any
) -> AsyncIterator[tuple[OutboxRelay, FirstClearHeld]]:
    """A started relay whose first round has published and waits to clear."""
    held = FirstClearHeld(outboxes.tickets)
    relay = outboxes.relay(held, **options)
    relay.start()
    try:
        await asyncio.wait_for(held.clearing.wait(), 20)
        yield relay, held
    finally:
        await relay.stop()


async def test_an_urgent_event_goes_out_while_a_round_of_ordinary_ones_is_still_clearing(
    outboxes: Outboxes,
) -> None:
    events = await pending(outboxes.tickets, outboxes.topic, 120)
    registry = CollectorRegistry()
    breach = parse_event(created_event("T-breached"))
    async with (
        outboxes.tap() as tap,
        round_held_in_its_clear(outboxes, registry=registry) as (relay, held),
    ):
        await outboxes.tickets.insert_one(
            {"_id": breach.subject, OUTBOX: [outbox_entry(outboxes.topic, breach)]}
            | {OUTBOX_SINCE: URGENT_SINCE}
        )
        relay.wake_urgent()
        before_clear = list(await tap.collect(121))  # the round's 120, then the breach
        held.release.set()
        await until_drained(outboxes)
        received = await tap.settle(1.0)

    ids = [parse_event(r.value).id for r in received]
    assert breach.id in {parse_event(r.value).id for r in before_clear}
    assert sorted(ids) == sorted([*(e.id for e in events), breach.id])  # each once
    assert registry.get_sample_value("helpstream_test_outbox_urgent_events_relayed_total") == 1


async def test_a_document_that_turns_urgent_while_its_round_clears_keeps_its_events_in_order(
    outboxes: Outboxes,
) -> None:
    """The urgent lane leaves a document another round is relaying: its breach goes out
    after the event that round published, never beside it."""
    events = await pending(outboxes.tickets, outboxes.topic, 3)
    breach = parse_event(created_event("T-1"))
    async with outboxes.tap() as tap, round_held_in_its_clear(outboxes) as (relay, held):
        entry = outbox_entry(outboxes.topic, breach)
        await outboxes.tickets.update_one(
            {"_id": "T-1"}, outbox_update([entry], datetime.now(UTC), urgent=True)
        )
        relay.wake_urgent()
        await tap.collect(3)
        while_held = [parse_event(r.value).id for r in await tap.settle(1.0)]
        held.release.set()
        await until_drained(outboxes)
        after = [parse_event(r.value).id for r in await tap.settle(1.0)][len(while_held) :]

    assert sorted(while_held) == sorted(e.id for e in events)  # no breach beside its round
    assert after == [breach.id]
    assert await outboxes.left() == 0
