"""The MongoDB SLA repository keeps the port's contract (as the in-memory one does);
pending events are read from the outboxes, as the relay reads them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from services.sla_monitor.policy import load_policies
from services.sla_monitor.ports import SlaChange
from services.sla_monitor.settings import SlaSettings
from services.sla_monitor.store import SlaStore
from tests.contract.harnesses import MongoHarness, fresh_database
from tests.contract.sla_repository import NOW, Harness, SlaRepositoryContract, opened, warning

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def harness(make_settings: Any) -> AsyncIterator[Harness]:
    async with fresh_database(make_settings(SlaSettings), "sla_monitor") as db:
        store = SlaStore(db)
        await store.ensure_indexes()
        yield MongoHarness(store, store.tickets)


class TestMongoSlaRepository(SlaRepositoryContract):
    pass


async def test_an_urgent_change_is_relayed_ahead_of_earlier_ordinary_ones(
    harness: Harness,
) -> None:
    """Timer fires are urgent: the relay reads them before any backlog of ticket clocks."""
    policies = load_policies()
    repo = harness.repository
    ordinary = SlaChange(opened("T-1", policies), NOW, [warning("T-1", "w-1")], ["e-1"], new=True)
    urgent = SlaChange(
        opened("T-2", policies), NOW, [warning("T-2", "w-2")], ["e-2"], new=True, urgent=True
    )
    await repo.save([ordinary], NOW)
    await repo.save([urgent], NOW + timedelta(seconds=5))

    assert [event.id for _, event in await harness.pending()] == ["w-2", "w-1"]
