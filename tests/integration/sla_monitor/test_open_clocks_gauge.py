"""The open-clocks gauge follows what the service saves, and a recount only corrects drift."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from shared.clock import FixedClock
from shared.events import Author, Status
from tests.integration.sla_monitor.conftest import T0, Sla, TicketStory
from tests.support import eventually

GAUGE = "helpstream_sla_monitor_open_clocks"


def sample(text: str, name: str, labels: str) -> float | None:
    line = next((ln for ln in text.splitlines() if ln.startswith(f"{name}{{{labels}}} ")), None)
    return float(line.split()[-1]) if line else None


async def open_clocks(sla: Sla) -> dict[str, float | None]:
    text = (await sla.http.get("/metrics")).text
    return {
        m: sample(text, GAUGE, f'metric="{m}"') for m in ("first_reply", "next_reply", "resolution")
    }


async def shows(sla: Sla, expected: dict[str, float]) -> None:
    async def holds() -> bool:
        return await open_clocks(sla) == expected

    await eventually(holds, timeout=30)


async def test_the_gauge_counts_clocks_opened_and_stopped_without_a_recount(
    make_sla: Any,
) -> None:
    clock = FixedClock(T0)
    one, two, three = TicketStory(), TicketStory(), TicketStory()
    async with make_sla(clock, open_clocks_refresh_s=3600) as sla:
        await sla.send(one.created(), two.created(), three.created())
        await shows(sla, {"first_reply": 3, "next_reply": 0, "resolution": 3})

        await sla.send(
            one.message(Author.agent, T0 + timedelta(minutes=5)),  # first reply met
            two.status_to(Status.solved, T0 + timedelta(minutes=10)),  # everything stops
            three.message(Author.requester, T0 + timedelta(minutes=15)),  # next reply starts
        )
        await shows(sla, {"first_reply": 1, "next_reply": 1, "resolution": 2})
        text = (await sla.http.get("/metrics")).text

    # the one recount is the first start's, on an empty database
    assert sample(text, "helpstream_sla_monitor_open_clocks_updates_total", 'how="recounted"') == 1


async def test_a_reconciliation_corrects_counts_that_drifted(make_sla: Any) -> None:
    clock = FixedClock(T0)
    story = TicketStory()
    async with make_sla(clock, open_clocks_refresh_s=0.2) as sla:
        await sla.send(story.created())
        await shows(sla, {"first_reply": 1, "next_reply": 0, "resolution": 1})
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sla.settings.mongo_url)
        try:  # as if an instance crashed between saving a ticket and counting it
            counters = client[f"{sla.settings.mongo_db_prefix}_sla_monitor"]["sla_counters"]
            await counters.update_one({"_id": "open_timers"}, {"$inc": {"counts.resolution": 5}})

            async def reconciled() -> bool:
                doc = await counters.find_one({"_id": "open_timers"})
                return doc is not None and doc["counts"]["resolution"] == 1

            await eventually(reconciled, timeout=30)  # only a recount puts it back
        finally:
            await client.close()
        await shows(sla, {"first_reply": 1, "next_reply": 0, "resolution": 1})
