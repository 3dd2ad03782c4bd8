"""Retention: closed tickets are anonymized some time after they closed, with every copy.

A scheduled job (time from the injected clock) takes closed tickets not changed for
`closed_ticket_retention_days`, anonymizes them as an erasure would (`anonymized_ticket`,
one pseudonym per requester and run) and, in the same write as the run's record, puts a
`requester.erasure_requested` with `tickets_only` in the outbox of `retention_runs`: the other
services erase those tickets' copies and keep the requester's other data. A ticket is taken
once (`erased_at` is set); a run takes at most `batch` tickets.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

import structlog
from pymongo import ASCENDING, UpdateOne

from services.intake.privacy import SOURCE, anonymized_ticket
from shared.events import RequesterErasureRequested, Status, make_event
from shared.ids import new_id
from shared.tasks import BackgroundTask
from shared.unit_of_work import with_events

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from pymongo.asynchronous.database import AsyncDatabase

    from shared.clock import Clock
    from shared.events import Outgoing
    from shared.metrics import PrivacyMetrics
    from shared.mongo import Document
    from shared.topics import Topics

log = structlog.get_logger(__name__)
RUNS = "retention_runs"


class Retention(BackgroundTask):
    name = "retention"

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        clock: Clock,
        topics: Topics,
        metrics: PrivacyMetrics,
        keep: timedelta,
        interval_s: float = 3600.0,
        batch: int = 500,
        on_events: Callable[[int], None] = lambda _: None,
    ) -> None:
        super().__init__()
        self._tickets = db["tickets"]
        self.runs = db[RUNS]
        self._clock = clock
        self._topics = topics
        self._metrics = metrics
        self._keep = keep
        self._interval = interval_s
        self._batch = batch
        self._on_events = on_events

    async def ensure_indexes(self) -> None:
        await self._tickets.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])

    async def run_once(self) -> int:
        """Anonymizes what is due now; returns how many tickets."""
        now = self._clock.now()
        due = await (
            self._tickets.find(
                {
                    "status": Status.closed.value,
                    "updated_at": {"$lt": now - self._keep},
                    "erased_at": {"$exists": False},
                },
                {"requester": 1, "messages": 1},
            )
            .limit(self._batch)
            .to_list()
        )
        if not due:
            return 0
        by_requester: dict[str, list[Document]] = defaultdict(list)
        for doc in due:
            by_requester[str((doc.get("requester") or {}).get("id", ""))].append(doc)
        ops: list[UpdateOne] = []
        entries: list[Outgoing] = []
        for requester_id, docs in by_requester.items():
            pseudonym = f"erased-{new_id().replace('-', '')[-16:]}"
            ops.extend(
                UpdateOne(
                    {"_id": d["_id"], "erased_at": {"$exists": False}},
                    {"$set": anonymized_ticket(d, pseudonym, now), "$inc": {"version": 1}},
                )
                for d in docs
            )
            request = RequesterErasureRequested(
                erasure_id=new_id(),
                requester_id=requester_id or pseudonym,
                pseudonym=pseudonym,
                ticket_ids=[str(d["_id"]) for d in docs],
                tickets_only=True,
            )
            event = make_event(
                request, source=SOURCE, time=now, correlationid=request.erasure_id,
                subject=request.requester_id,
            )  # fmt: skip
            entries.append((self._topics.tickets, event))
        # the run's record first: a crash after it repeats the anonymization, never loses
        # the request to the other services
        run_id = new_id()
        await self.runs.insert_one(
            with_events({"_id": run_id, "at": now, "tickets": len(due)}, entries, now)
        )
        await self._tickets.bulk_write(ops, ordered=False)
        self._metrics.erased_records.labels("retention_tickets").inc(len(due))
        self._on_events(len(entries))
        return len(due)

    async def run(self) -> None:
        while True:
            try:
                while await self.run_once() >= self._batch:
                    pass  # a backlog: the next batch at once
            except Exception as exc:
                log.warning("retention_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self._interval)
