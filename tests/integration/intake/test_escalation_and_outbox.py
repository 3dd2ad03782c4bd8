"""Breaches and low ratings escalate once per cause; the outbox survives a relay crash."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.intake.auth import ApiKeyStore
from services.intake.handlers import TicketService
from services.intake.metrics import intake_metrics
from services.intake.store import TicketStore
from services.intake.triage import load_rules
from shared.clock import SystemClock
from shared.commands import OpenTicket
from shared.events import (
    FeedbackSubmitted,
    Priority,
    SlaBreached,
    SlaMetric,
    make_event,
)
from shared.infra.modes import Infra
from shared.kafka import make_producer
from shared.metrics import outbox_metrics
from shared.mongo import make_client, service_database
from shared.outbox import OUTBOX_SINCE, OutboxRelay, ensure_outbox_index
from shared.topics import Topics
from tests.integration.intake.conftest import Intake, ticket_body
from tests.support import Tap, eventually, produce


def breach(ticket_id: str, metric: SlaMetric = SlaMetric.first_reply) -> bytes:
    now = datetime.now(UTC)
    data = SlaBreached(
        ticket_id=ticket_id,
        metric=metric,
        target_s=3600,
        elapsed_s=3601,
        remaining_s=-1,
        deadline=now,
        priority=Priority.high,
        policy="default",
        policy_version="1:abc",
        breached_at=now,
    )
    return make_event(
        data, source="/helpstream/sla_monitor", time=now, correlationid="c"
    ).to_bytes()


def rating(ticket_id: str, score: int, follow_up: bool) -> bytes:
    now = datetime.now(UTC)
    data = FeedbackSubmitted(
        ticket_id=ticket_id, survey_id="s-1", score=score, needs_follow_up=follow_up
    )
    return make_event(data, source="/helpstream/feedback", time=now, correlationid="c").to_bytes()


async def level_of(intake: Intake, ticket_id: str) -> dict[str, Any]:
    response = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())
    return dict(response.json())


async def test_each_breach_escalates_once_even_when_redelivered(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    ticket_id = (await intake.open())["id"]
    first = breach(ticket_id)
    key = ticket_id.encode()
    await produce(infra.kafka_bootstrap, topics.sla, [(key, first), (key, first)])

    async def escalated() -> bool:
        return (await level_of(intake, ticket_id))["escalation_level"] == 1

    await eventually(escalated)
    await produce(infra.kafka_bootstrap, topics.sla, [(key, first), (key, breach(ticket_id))])

    async def twice() -> bool:
        return (await level_of(intake, ticket_id))["escalation_level"] == 2

    await eventually(twice)
    async with Tap(infra.kafka_bootstrap, topics.tickets) as tap:
        await tap.collect(3)
        events = [json.loads(r.value) for r in await tap.settle()]
    escalations = [e["data"] for e in events if e["type"] == "helpstream.ticket.escalated"]
    assert [(e["level"], e["reason"]) for e in escalations] == [
        (1, "sla_breach"),
        (2, "sla_breach"),
    ]
    ticket = await level_of(intake, ticket_id)
    assert (ticket["group"], ticket["priority"]) == ("service_manager", "urgent")


async def test_a_low_rating_needing_follow_up_escalates_and_a_good_one_does_not(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    unhappy = (await intake.open())["id"]
    happy = (await intake.open())["id"]
    await produce(
        infra.kafka_bootstrap,
        topics.feedback,
        [(happy.encode(), rating(happy, 5, False)), (unhappy.encode(), rating(unhappy, 1, True))],
    )

    async def escalated() -> bool:
        return (await level_of(intake, unhappy))["escalation_level"] == 1

    await eventually(escalated)
    assert (await level_of(intake, happy))["escalation_level"] == 0
    metrics = (await intake.http.get("/metrics")).text
    assert 'helpstream_intake_escalations_total{reason="low_rating"} 1.0' in metrics


class CrashAfterPublish:
    """A collection whose writes fail: the relay publishes, then dies before clearing."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("relay process killed")


async def test_relay_killed_mid_way_loses_nothing_and_republishes_only_the_same_event_ids(
    infra: Infra, make_settings: Any, uid: str
) -> None:
    from services.intake.settings import IntakeSettings

    settings = make_settings(IntakeSettings)
    topics = Topics(settings.topic_prefix)
    client = make_client(settings)
    store = TicketStore(service_database(client, settings, "intake"))
    await store.ensure_indexes()
    await ensure_outbox_index(store.tickets)
    service = TicketService(
        store=store,
        clock=SystemClock(),
        topics=topics,
        rules=load_rules(),
        metrics=intake_metrics(CollectorRegistry()),
        keys=ApiKeyStore(store.tickets.database, intake_metrics(CollectorRegistry())),
    )
    for n in range(10):
        await service.open(
            OpenTicket.model_validate(ticket_body(subject=f"ticket {n}")), correlation_id=f"c{n}"
        )
    producer = make_producer(settings, "relay-test")
    await producer.start()
    metrics = outbox_metrics(CollectorRegistry(), "intake")
    crashing = OutboxRelay(  # its leases lapse at once, as if the survivor came much later
        [CrashAfterPublish(store.tickets)],
        producer,
        metrics,
        SystemClock(),
        batch_size=4,
        lease=timedelta(0),
    )
    survivor = OutboxRelay([store.tickets], producer, metrics, SystemClock(), batch_size=4)
    try:
        async with Tap(infra.kafka_bootstrap, topics.tickets) as tap:
            with pytest.raises(ConnectionError):
                await crashing.relay_once()
            while await survivor.relay_once():
                pass
            await tap.collect(14)
            records = await tap.settle()
        left = await store.tickets.count_documents({OUTBOX_SINCE: {"$exists": True}})
    finally:
        await producer.stop()
        await client.drop_database(f"{settings.mongo_db_prefix}_intake")
        await client.close()

    events = [json.loads(r.value) for r in records]
    per_id = Counter(e["id"] for e in events)
    assert len(per_id) == 10  # every ticket.created event arrived
    assert sorted(per_id.values()) == [1] * 6 + [2] * 4  # the 4 published before the crash, again
    by_id: dict[str, Any] = {}
    for event in events:
        assert by_id.setdefault(event["id"], event) == event  # a republished event is identical
    assert left == 0
