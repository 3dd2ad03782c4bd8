"""SLA clocks of a ticket linked to an incident: updates answer, the incident decides resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sla_monitor.domain import SlaTimerState, TicketSla
from services.sla_monitor.policy import PolicySet, parse_policies
from shared.events import (
    Category,
    Priority,
    SlaFulfilled,
    SlaMetric,
    SlaPaused,
    SlaResumed,
    Status,
)

POLICIES = parse_policies(
    """
policies:
  - name: follow_own_target
    match: {category: trading}
    pause_resolution_in_incident: false
    incident_updates_satisfy: [periodic_update]
    targets:
      first_reply: {target: 1h}
      next_reply: {target: 2h}
      periodic_update: {target: 4h}
      resolution: {target: 8h}
  - name: standard
    targets:
      first_reply: {target: 1h}
      next_reply: {target: 2h}
      periodic_update: {target: 4h}
      resolution: {target: 8h}
"""
)
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RES, NR, PU = SlaMetric.resolution, SlaMetric.next_reply, SlaMetric.periodic_update


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def start(category: Category = Category.withdrawal_delay) -> TicketSla:
    sla = TicketSla.start(
        ticket_id="T-1",
        partition=0,
        priority=Priority.normal,
        category=category,
        tier="standard",
        status=Status.open,
        created_at=T0,
        policies=POLICIES,
    )
    sla.take_events()
    return sla


def elapsed_min(
    sla: TicketSla, metric: SlaMetric, when: datetime, p: PolicySet = POLICIES
) -> float:
    return sla.timers[metric].elapsed(p, when).total_seconds() / 60


def test_linking_pauses_resolution_and_says_which_incident_did() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(30), POLICIES)

    events = sla.take_events()
    assert [(type(e), e.metric, e.incident_id) for e in events] == [  # type: ignore[attr-defined]
        (SlaPaused, RES, "inc-1")
    ]
    assert sla.timers[RES].state is SlaTimerState.paused
    assert elapsed_min(sla, RES, at(600)) == 30  # the storm's hours do not count
    assert sla.next_due(POLICIES) is not None  # first reply still runs: updates answer it


def test_resolving_the_incident_fulfils_resolution_with_only_the_time_before_the_link() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(30), POLICIES)
    sla.take_events()

    sla.on_status(Status.open, Status.solved, at(900), POLICIES, incident_id="inc-1")

    fulfilled = [e for e in sla.take_events() if isinstance(e, SlaFulfilled) and e.metric == RES]
    assert len(fulfilled) == 1
    assert fulfilled[0].elapsed_s == 30 * 60  # 15 hours after open, never breached
    assert sla.incident_id is None


def test_an_incident_resolved_to_pending_ends_the_link_and_the_requester_reopens_it() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(30), POLICIES)
    sla.on_status(Status.open, Status.pending, at(60), POLICIES, incident_id="inc-1")
    assert sla.incident_id is None
    assert sla.timers[RES].state is SlaTimerState.paused  # pending pauses it now
    sla.take_events()

    sla.on_status(Status.pending, Status.open, at(120), POLICIES)

    resumed = sla.take_events()
    assert [(type(e), e.metric) for e in resumed if e.metric == RES] == [(SlaResumed, RES)]
    assert elapsed_min(sla, RES, at(180)) == 30 + 60


def test_unlinking_by_hand_resumes_resolution_and_names_the_incident() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(30), POLICIES)
    sla.take_events()

    sla.on_incident_unlinked("inc-1", at(90), POLICIES)

    events = sla.take_events()
    assert [(type(e), e.metric, e.incident_id) for e in events] == [  # type: ignore[attr-defined]
        (SlaResumed, RES, "inc-1")
    ]
    assert elapsed_min(sla, RES, at(100)) == 40


def test_a_status_change_while_linked_does_not_resume_resolution() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(10), POLICIES)
    sla.on_status(Status.open, Status.on_hold, at(20), POLICIES)
    sla.on_status(Status.on_hold, Status.open, at(30), POLICIES)

    assert sla.timers[RES].state is SlaTimerState.paused
    assert not [e for e in sla.take_events() if isinstance(e, SlaResumed) and e.metric == RES]


def test_unlinking_from_another_incident_changes_nothing() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(10), POLICIES)
    sla.take_events()

    sla.on_incident_unlinked("inc-2", at(20), POLICIES)
    sla.on_status(Status.open, Status.on_hold, at(30), POLICIES, incident_id="inc-2")

    assert sla.incident_id == "inc-1"
    assert sla.timers[RES].state is SlaTimerState.paused
    assert [e for e in sla.take_events() if isinstance(e, SlaResumed)] == []


def test_a_redelivered_link_emits_nothing_twice() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(10), POLICIES)
    sla.take_events()
    sla.on_incident_linked("inc-1", at(10), POLICIES)
    assert sla.take_events() == []


def test_a_policy_that_keeps_its_own_resolution_target_does_not_pause() -> None:
    sla = start(Category.trading)
    sla.on_incident_linked("inc-1", at(10), POLICIES)

    assert sla.take_events() == []
    assert sla.timers[RES].state is SlaTimerState.running
    assert sla.incident_id == "inc-1"


def test_an_update_answers_only_the_clocks_the_policy_names() -> None:
    standard, trading = start(), start(Category.trading)
    for sla in (standard, trading):
        sla.on_requester_message(at(5), POLICIES)
        sla.take_events()
        sla.on_incident_update(at(20), POLICIES)

    assert {e.metric for e in standard.take_events() if isinstance(e, SlaFulfilled)} >= {NR, PU}
    fulfilled = {e.metric for e in trading.take_events() if isinstance(e, SlaFulfilled)}
    assert PU in fulfilled
    assert NR not in fulfilled
    assert standard.timers[PU].cycle == 2  # a new periodic cycle starts from the update


def test_a_linked_ticket_solved_by_an_agent_stops_like_any_other() -> None:
    sla = start()
    sla.on_incident_linked("inc-1", at(10), POLICIES)
    sla.take_events()
    sla.on_status(Status.open, Status.solved, at(20), POLICIES)

    assert all(c.state is SlaTimerState.stopped for c in sla.timers.values())
    assert any(isinstance(e, SlaFulfilled) and e.metric == RES for e in sla.take_events())
