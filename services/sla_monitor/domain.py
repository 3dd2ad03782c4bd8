"""SLA clocks: which targets a ticket gets and when each is due. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import Priority, SlaMetric

FIRST_REPLY_TARGETS: dict[Priority, timedelta] = {
    Priority.urgent: timedelta(minutes=15),
    Priority.high: timedelta(hours=1),
    Priority.normal: timedelta(hours=4),
    Priority.low: timedelta(hours=24),
}


@dataclass(frozen=True)
class Clock:
    ticket_id: str
    metric: SlaMetric
    priority: Priority
    started_at: datetime
    target: timedelta
    partition: int

    @property
    def key(self) -> str:
        return f"{self.ticket_id}:{self.metric.value}"

    @property
    def deadline(self) -> datetime:
        return self.started_at + self.target


def first_reply_clock(
    ticket_id: str, priority: Priority, created_at: datetime, partition: int
) -> Clock:
    return Clock(
        ticket_id=ticket_id,
        metric=SlaMetric.first_reply,
        priority=priority,
        started_at=created_at,
        target=FIRST_REPLY_TARGETS[priority],
        partition=partition,
    )
