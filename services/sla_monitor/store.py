"""SLA state in MongoDB: one document per ticket (its SLA timers under `clocks`, due time,
and the policy versions seen so far.

Timers are found by the `(partition, next_due)` index: each instance asks only for the
partitions it owns and only for what is due, never scanning all tickets.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.sla_monitor.domain import SlaTimer, SlaTimerState, TicketSla, open_metrics
from services.sla_monitor.policy import PolicySet, from_json
from shared.events import Category, Priority, SlaMetric, Status
from shared.unit_of_work import PENDING, Change, VersionedDocuments

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.sla_monitor.ports import SlaChange
    from shared.mongo import Document

OPEN_TIMERS = "open_timers"  # the counters document: open timers per metric, all tickets
SEEN = "seen"  # the ticket event ids a ticket's SLA applied, for redelivery dedupe
SEEN_KEEP = 200
_LABEL = re.compile(r"v(\d+)-([0-9a-f]{8})")  # how tickets name a stored policy version


def _label(doc: Document) -> str:
    return f"v{doc['number']}-{doc['hash'][:8]}"


def _timer_doc(timer: SlaTimer) -> Document:
    return {
        "metric": timer.metric.value,
        "target_s": timer.target.total_seconds(),
        "calendar": timer.calendar,
        "cycle": timer.cycle,
        "started_at": timer.started_at,
        "state": timer.state.value,
        "elapsed_before_s": timer.elapsed_before.total_seconds(),
        "running_since": timer.running_since,
        "warned": list(timer.warned),
        "breached_at": timer.breached_at,
        "stopped_at": timer.stopped_at,
    }


def _timer(doc: Document) -> SlaTimer:
    return SlaTimer(
        metric=SlaMetric(doc["metric"]),
        target=timedelta(seconds=doc["target_s"]),
        calendar=doc["calendar"],
        cycle=doc["cycle"],
        started_at=doc["started_at"],
        state=SlaTimerState(doc["state"]),
        elapsed_before=timedelta(seconds=doc["elapsed_before_s"]),
        running_since=doc.get("running_since"),
        warned=tuple(doc.get("warned", ())),
        breached_at=doc.get("breached_at"),
        stopped_at=doc.get("stopped_at"),
    )


def to_document(sla: TicketSla, next_due: datetime | None) -> Document:
    return {
        "_id": sla.ticket_id,
        "partition": sla.partition,
        "policy_name": sla.policy_name,
        "policy_version": sla.policy_version,
        "priority": sla.priority.value,
        "category": sla.category.value,
        "tier": sla.tier,
        "status": sla.status.value,
        "created_at": sla.created_at,
        "last_event_at": sla.last_event_at,
        "clocks": {m.value: _timer_doc(c) for m, c in sla.timers.items()},
        "agent_replied_at": sla.agent_replied_at,
        "open_metrics": sorted(m.value for m in open_metrics(sla)),
        "at_risk_metrics": sorted(
            m.value
            for m, c in sla.timers.items()
            if c.state is not SlaTimerState.stopped and c.warned and c.breached_at is None
        ),
        "next_due": next_due,
        "version": sla.version,
        "correlation_id": sla.correlation_id,
        "traceparent": sla.traceparent,
        "incident_id": sla.incident_id,
    }


def from_document(doc: Document) -> TicketSla:
    return TicketSla(
        ticket_id=doc["_id"],
        partition=doc["partition"],
        policy_name=doc["policy_name"],
        policy_version=doc["policy_version"],
        priority=Priority(doc["priority"]),
        category=Category(doc["category"]),
        tier=doc["tier"],
        status=Status(doc["status"]),
        created_at=doc["created_at"],
        last_event_at=doc["last_event_at"],
        timers={SlaMetric(m): _timer(c) for m, c in doc.get("clocks", {}).items()},
        agent_replied_at=doc.get("agent_replied_at"),
        version=doc.get("version", 0),
        correlation_id=doc.get("correlation_id"),
        traceparent=doc.get("traceparent"),
        incident_id=doc.get("incident_id"),
    )


class SlaStore:
    """`SlaRepository` on MongoDB: one document per ticket, written through the shared
    unit of work (versioned, with its outbox and the ids it applied)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets: AsyncCollection[Document] = db["ticket_sla"]
        self.documents = VersionedDocuments(
            self.tickets, applied_field=SEEN, applied_keep=SEEN_KEEP
        )
        self.versions: AsyncCollection[Document] = db["policy_versions"]
        self.counters: AsyncCollection[Document] = db["sla_counters"]

    async def ensure_indexes(self) -> None:
        await self.tickets.create_index([("partition", ASCENDING), ("next_due", ASCENDING)])
        await self.tickets.create_index([("open_metrics", ASCENDING)])
        await self.tickets.create_index([("at_risk_metrics", ASCENDING)])
        await self.versions.create_index([("number", ASCENDING)], unique=True)

    # --- policy versions ----------------------------------------------------------

    async def register(self, current: PolicySet) -> dict[str, PolicySet]:
        """Number the current policy file if new; return every known version by label."""
        for _ in range(5):
            existing = await self.versions.find_one({"hash": current.version})
            if existing is not None:
                break
            last = await self.versions.find_one(sort=[("number", -1)])
            number = (last["number"] if last else 0) + 1
            try:
                await self.versions.insert_one(
                    {
                        "_id": current.version,
                        "hash": current.version,
                        "number": number,
                        "content": current.to_json(),
                    }
                )
            except DuplicateKeyError:
                continue  # another instance numbered it (or took the number) first
        known: dict[str, PolicySet] = {}
        async for doc in self.versions.find({}):
            policies = current if doc["hash"] == current.version else from_json(doc["content"])
            policies.version = _label(doc)
            known[policies.version] = policies
        return known

    async def find_versions(self, labels: Collection[str]) -> dict[str, PolicySet]:
        """Stored versions by the label tickets pin (`v<number>-<hash>`, or a bare content
        hash), whichever instance registered them and whenever."""
        numbers = [int(found[1]) for label in labels if (found := _LABEL.fullmatch(label))]
        query = {"$or": [{"number": {"$in": numbers}}, {"_id": {"$in": list(labels)}}]}
        out: dict[str, PolicySet] = {}
        async for doc in self.versions.find(query):
            for label in {_label(doc), doc["hash"]} & set(labels):
                policies = from_json(doc["content"])
                policies.version = _label(doc)
                out[label] = policies
        return out

    # --- tickets ------------------------------------------------------------------

    async def load(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketSla, set[str]]]:
        found = await self.documents.read(ticket_ids)
        return {t: (from_document(doc), seen) for t, (doc, seen) in found.items()}

    async def get(self, ticket_id: str) -> TicketSla | None:
        doc = await self.tickets.find_one({"_id": ticket_id}, {**PENDING, SEEN: 0})
        return from_document(doc) if doc else None

    async def due(self, partition: int, until: datetime, limit: int) -> list[TicketSla]:
        docs = (
            await self.tickets.find(
                {"partition": partition, "next_due": {"$lte": until}},
                {**PENDING, SEEN: 0},
            )
            .sort("next_due", ASCENDING)
            .limit(limit)
            .to_list()
        )
        return [from_document(d) for d in docs]

    async def save(self, changes: Sequence[SlaChange], now: datetime) -> int:
        return await self.documents.commit([self._change(c) for c in changes], now)

    @staticmethod
    def _change(change: SlaChange) -> Change:
        return Change.of(
            to_document(change.sla, change.next_due),
            None if change.new else change.sla.version,
            change.events,
            change.seen,
            urgent=change.urgent,
        )

    async def at_risk_counts(self) -> dict[str, int]:
        return await self._timer_counts("at_risk_metrics")

    async def _timer_counts(self, field: str) -> dict[str, int]:
        """Per metric, tickets whose `open_metrics` or `at_risk_metrics` holds it (indexed)."""
        return {
            metric.value: await self.tickets.count_documents({field: metric.value})
            for metric in SlaMetric
        }

    # --- open timers, counted as they change ----------------------------------------

    async def applied(self, markers: Mapping[str, str]) -> set[str]:
        return await self.documents.holding(markers)

    async def add_open(self, delta: Mapping[str, int]) -> dict[str, int]:
        """Moves the deployment-wide open-timer counts; returns them after the move."""
        doc = await self.counters.find_one_and_update(
            {"_id": OPEN_TIMERS},
            {"$inc": {f"counts.{metric}": n for metric, n in delta.items()}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return dict(doc["counts"]) if doc else {}

    async def open_counts(self) -> dict[str, int] | None:
        """The kept counts; None if nobody has counted yet."""
        doc = await self.counters.find_one({"_id": OPEN_TIMERS})
        return dict(doc.get("counts", {})) if doc else None

    async def reconcile_open(self, at: datetime) -> dict[str, int]:
        """Recounts (visiting every open timer, indexed) and replaces the kept counts: drift
        from a crash between a ticket's write and its count, or a count that failed, ends
        here. A change counted while the recount runs may be lost or counted twice; the
        next reconciliation settles it."""
        counts = await self._timer_counts("open_metrics")
        await self.counters.update_one(
            {"_id": OPEN_TIMERS}, {"$set": {"counts": counts, "reconciled_at": at}}, upsert=True
        )
        return counts
