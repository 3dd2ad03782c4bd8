"""Retention anonymizes tickets closed longer than the configured period, on an injected
clock, and asks the other services to erase those tickets' copies."""

from __future__ import annotations

from datetime import timedelta

from services.intake.retention import Retention
from shared.clock import FixedClock, SystemClock
from shared.events import RequesterErasureRequested
from shared.metrics import privacy_metrics
from tests.integration.intake.conftest import Intake
from tests.support import Tap, eventually


async def close(intake: Intake, ticket_id: str) -> None:
    reply = {"body": "Solved for you", "author": "agent", "author_id": "a-1"}
    added = await intake.http.post(
        f"/v1/tickets/{ticket_id}/messages", json=reply, headers=intake.auth()
    )
    assert added.status_code == 201, added.text
    for status in ("solved", "closed"):
        changed = await intake.http.patch(
            f"/v1/tickets/{ticket_id}", json={"status": status}, headers=intake.auth()
        )
        assert changed.status_code == 200, changed.text


async def test_only_tickets_closed_longer_than_the_period_are_anonymized_with_their_copies(
    intake: Intake,
) -> None:
    requester = {"id": "u-retained", "email": "old.case@example.com", "locale": "en"}
    closed = await intake.open(requester=requester, subject="Old withdrawal case")
    still_open = await intake.open(requester=requester, subject="Current case")
    await close(intake, closed["id"])
    start = SystemClock().now()
    clock = FixedClock(start + timedelta(days=29))
    retention = Retention(
        intake.runtime.db,
        clock=clock,
        topics=intake.runtime.topics,
        metrics=privacy_metrics(intake.runtime.registry, "intake_test"),
        keep=timedelta(days=30),
        on_events=intake.runtime.relay.wake if intake.runtime.relay else lambda _: None,
    )
    assert await retention.run_once() == 0  # not yet

    clock.advance(timedelta(days=2))  # 31 days after it closed
    async with Tap(
        intake.settings.kafka_bootstrap, intake.runtime.topics.tickets, intake.settings
    ) as tap:
        assert await retention.run_once() == 1
        assert await retention.run_once() == 0  # once only

        async def requested() -> list[RequesterErasureRequested]:
            await tap.collect(len(tap.records) + 1, timeout=0.3)
            return [
                e.data
                for e in tap.events()
                if isinstance(e.data, RequesterErasureRequested) and e.data.tickets_only
            ]

        (request,) = await eventually(requested)
    assert request.ticket_ids == [closed["id"]]
    assert request.requester_id == "u-retained"

    old = (await intake.http.get(f"/v1/tickets/{closed['id']}", headers=intake.auth())).json()
    assert old["subject"] == "[erased]"
    assert old["requester"]["email"] is None
    assert old["status"] == "closed"
    kept = (await intake.http.get(f"/v1/tickets/{still_open['id']}", headers=intake.auth())).json()
    assert kept["subject"] == "Current case"
    assert kept["requester"]["email"] == "old.case@example.com"
