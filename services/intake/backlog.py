"""The open-ticket backlog gauge: tickets not closed, by status and group.

Recounted from MongoDB (one aggregation on the indexed `status`) at start and every
`interval_s`, rather than kept by every handler that changes a status: a count that is a
minute old is what a dashboard needs, and it cannot drift."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from shared.events import Status
from shared.tasks import BackgroundTask

if TYPE_CHECKING:
    from prometheus_client import Gauge
    from pymongo.asynchronous.collection import AsyncCollection

    from shared.mongo import Document

log = structlog.get_logger(__name__)
OPEN = [status.value for status in Status if status is not Status.closed]
NO_GROUP = "none"  # label value for tickets no group holds yet


class BacklogGauge(BackgroundTask):
    name = "backlog-gauge"

    def __init__(self, tickets: AsyncCollection[Document], gauge: Gauge, interval_s: float) -> None:
        super().__init__()
        self._tickets = tickets
        self._gauge = gauge
        self._interval = interval_s
        self._shown: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        pipeline: list[Document] = [
            {"$match": {"status": {"$in": OPEN}}},
            {"$group": {"_id": {"status": "$status", "group": "$group"}, "n": {"$sum": 1}}},
        ]
        seen: set[tuple[str, str]] = set()
        async for row in await self._tickets.aggregate(pipeline):
            labels = (str(row["_id"]["status"]), str(row["_id"].get("group") or NO_GROUP))
            self._gauge.labels(*labels).set(row["n"])
            seen.add(labels)
        for gone in self._shown - seen:
            self._gauge.remove(*gone)
        self._shown = seen

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # a read for a gauge: keep the last values, retry later
                log.warning("backlog_gauge_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self._interval)
