"""What `GET /v1/tickets/{id}/sla` shows about each clock."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from services.sla_monitor.domain import ClockState, TicketSla
from shared.events import Priority, SlaMetric, Status

if TYPE_CHECKING:
    from services.sla_monitor.policy import PolicySet


class ClockView(BaseModel):
    metric: SlaMetric
    cycle: int
    state: ClockState
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
    clocks: list[ClockView]

    @classmethod
    def of(cls, sla: TicketSla, policies: PolicySet, now: datetime) -> TicketSlaView:
        clocks = []
        for clock in sla.clocks.values():
            elapsed = clock.elapsed(policies, now)
            clocks.append(
                ClockView(
                    metric=clock.metric,
                    cycle=clock.cycle,
                    state=clock.state,
                    paused=clock.state is ClockState.paused,
                    calendar=clock.calendar,
                    target_s=clock.target.total_seconds(),
                    elapsed_s=elapsed.total_seconds(),
                    remaining_s=(clock.target - elapsed).total_seconds(),
                    deadline=clock.deadline(policies),
                    started_at=clock.started_at,
                    breached_at=clock.breached_at,
                    warned=list(clock.warned),
                )
            )
        return cls(
            ticket_id=sla.ticket_id,
            status=sla.status,
            priority=sla.priority,
            policy=sla.policy_name,
            policy_version=sla.policy_version,
            clocks=clocks,
        )
