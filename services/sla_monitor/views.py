"""What `GET /v1/tickets/{id}/sla` shows about each SLA timer (its `clocks`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from services.sla_monitor.domain import SlaTimerState, TicketSla
from shared.events import Priority, SlaMetric, Status

if TYPE_CHECKING:
    from services.sla_monitor.policy import PolicySet


class SlaTimerView(BaseModel):
    metric: SlaMetric
    cycle: int
    state: SlaTimerState
    paused: bool
    calendar: str
    target_s: float
    elapsed_s: float
    remaining_s: float
    deadline: datetime | None
    started_at: datetime
    breached_at: datetime | None
    warned: list[float]


class TicketSlaView(BaseModel):
    ticket_id: str
    status: Status
    priority: Priority
    policy: str
    policy_version: str
    clocks: list[SlaTimerView]

    @classmethod
    def of(cls, sla: TicketSla, policies: PolicySet, now: datetime) -> TicketSlaView:
        timers = []
        for timer in sla.timers.values():
            elapsed = timer.elapsed(policies, now)
            timers.append(
                SlaTimerView(
                    metric=timer.metric,
                    cycle=timer.cycle,
                    state=timer.state,
                    paused=timer.state is SlaTimerState.paused,
                    calendar=timer.calendar,
                    target_s=timer.target.total_seconds(),
                    elapsed_s=elapsed.total_seconds(),
                    remaining_s=(timer.target - elapsed).total_seconds(),
                    deadline=timer.deadline(policies),
                    started_at=timer.started_at,
                    breached_at=timer.breached_at,
                    warned=list(timer.warned),
                )
            )
        return cls(
            ticket_id=sla.ticket_id,
            status=sla.status,
            priority=sla.priority,
            policy=sla.policy_name,
            policy_version=sla.policy_version,
            clocks=timers,
        )
