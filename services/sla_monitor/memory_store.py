"""`SlaRepository` in memory, for unit tests: dicts, and the events a change would
publish kept in `published`, in the order they were saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.sla_monitor.domain import SlaTimerState, copy_sla, open_metrics
from services.sla_monitor.policy import from_json
from shared.events import SlaMetric

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime

    from services.sla_monitor.domain import TicketSla
    from services.sla_monitor.policy import PolicySet
    from services.sla_monitor.ports import SlaChange
    from shared.events import Outgoing

SEEN_KEEP = 200  # as the MongoDB store: a redelivery older than that is not recognised


@dataclass
class _Stored:
    sla: TicketSla
    next_due: datetime | None
    seen: list[str]


@dataclass(frozen=True)
class _Version:
    number: int
    hash: str
    content: str

    @property
    def label(self) -> str:
        return f"v{self.number}-{self.hash[:8]}"


class MemorySlaRepository:
    def __init__(self) -> None:
        self.tickets: dict[str, _Stored] = {}
        self.versions: dict[str, _Version] = {}  # by content hash
        self.counts: dict[str, int] | None = None
        self.published: list[Outgoing] = []

    async def register(self, current: PolicySet) -> dict[str, PolicySet]:
        if current.version not in self.versions:
            number = max((v.number for v in self.versions.values()), default=0) + 1
            self.versions[current.version] = _Version(number, current.version, current.to_json())
        known: dict[str, PolicySet] = {}
        for version in self.versions.values():
            policies = current if version.hash == current.version else from_json(version.content)
            policies.version = version.label
            known[policies.version] = policies
        return known

    async def find_versions(self, labels: Collection[str]) -> dict[str, PolicySet]:
        out: dict[str, PolicySet] = {}
        for version in self.versions.values():
            for label in {version.label, version.hash} & set(labels):
                policies = from_json(version.content)
                policies.version = version.label
                out[label] = policies
        return out

    async def load(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketSla, set[str]]]:
        return {
            t: (copy_sla(self.tickets[t].sla), set(self.tickets[t].seen))
            for t in dict.fromkeys(ticket_ids)
            if t in self.tickets
        }

    async def get(self, ticket_id: str) -> TicketSla | None:
        stored = self.tickets.get(ticket_id)
        return copy_sla(stored.sla) if stored else None

    async def due(self, partition: int, until: datetime, limit: int) -> list[TicketSla]:
        due = [
            s
            for s in self.tickets.values()
            if s.sla.partition == partition and s.next_due is not None and s.next_due <= until
        ]
        due.sort(key=lambda s: s.next_due or until)
        return [copy_sla(s.sla) for s in due[:limit]]

    async def save(self, changes: Sequence[SlaChange], now: datetime) -> int:
        lost = 0
        for change in changes:
            ticket_id = change.sla.ticket_id
            stored = self.tickets.get(ticket_id)
            if (
                (stored is not None)
                if change.new
                else (stored is None or stored.sla.version != change.sla.version)
            ):
                lost += 1
                continue
            saved = copy_sla(change.sla)
            saved.version = 0 if change.new else change.sla.version + 1
            saved.pending = []
            seen = (stored.seen if stored else []) + list(change.seen)
            self.tickets[ticket_id] = _Stored(saved, change.next_due, seen[-SEEN_KEEP:])
            self.published.extend(change.events)
        return lost

    async def applied(self, markers: Mapping[str, str]) -> set[str]:
        return {t for t, m in markers.items() if t in self.tickets and m in self.tickets[t].seen}

    async def add_open(self, delta: Mapping[str, int]) -> dict[str, int]:
        counts = dict(self.counts or {})
        for metric, n in delta.items():
            counts[metric] = counts.get(metric, 0) + n
        self.counts = counts
        return dict(counts)

    async def open_counts(self) -> dict[str, int] | None:
        return dict(self.counts) if self.counts is not None else None

    async def reconcile_open(self, at: datetime) -> dict[str, int]:
        counts = {m.value: 0 for m in SlaMetric}
        for stored in self.tickets.values():
            for metric in open_metrics(stored.sla):
                counts[metric.value] += 1
        self.counts = counts
        return dict(counts)

    async def at_risk_counts(self) -> dict[str, int]:
        counts = {m.value: 0 for m in SlaMetric}
        for stored in self.tickets.values():
            for metric, timer in stored.sla.timers.items():
                if (
                    timer.state is not SlaTimerState.stopped
                    and timer.warned
                    and timer.breached_at is None
                ):
                    counts[metric.value] += 1
        return counts
