"""The open-ticket gauge counts tickets not closed, by status and group, from MongoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.intake.backlog import NO_GROUP, BacklogGauge
from services.intake.metrics import intake_metrics

if TYPE_CHECKING:
    from shared.infra.modes import Infra


async def test_open_tickets_are_counted_by_status_and_group_and_closed_ones_drop_out(
    infra: Infra, uid: str
) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongo_url)
    tickets = client[f"t{uid}backlog"]["tickets"]
    await tickets.insert_many(
        [
            {"_id": "a", "status": "new", "group": None},
            {"_id": "b", "status": "open", "group": "payments"},
            {"_id": "c", "status": "open", "group": "payments"},
            {"_id": "d", "status": "closed", "group": "payments"},
        ]
    )
    registry = CollectorRegistry()
    metrics = intake_metrics(registry)
    gauge = BacklogGauge(tickets, metrics.open_tickets, interval_s=60)
    try:
        await gauge.refresh()
        value = registry.get_sample_value
        assert value("helpstream_intake_open_tickets", {"status": "open", "group": "payments"}) == 2
        assert value("helpstream_intake_open_tickets", {"status": "new", "group": NO_GROUP}) == 1
        assert (
            value("helpstream_intake_open_tickets", {"status": "closed", "group": "payments"})
            is None
        )

        await tickets.update_one({"_id": "a"}, {"$set": {"status": "closed"}})
        await gauge.refresh()
        assert value("helpstream_intake_open_tickets", {"status": "new", "group": NO_GROUP}) is None
    finally:
        await client.close()
