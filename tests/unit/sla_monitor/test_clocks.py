from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla_monitor.domain import PAUSED_BY, SlaTimerState, TicketSla, copy_sla, fact_id
from services.sla_monitor.policy import PolicySet, parse_policies
from shared.events import (
    Category,
    Contract,
    Priority,
    SlaApplied,
    SlaBreached,
    SlaClockData,
    SlaFulfilled,
    SlaMetric,
    SlaPaused,
    SlaResumed,
    SlaWarning,
    Status,
)

POLICIES = parse_policies(
    """
warnings: [0.75, 0.9]
calendars:
  - name: office
    timezone: UTC
    schedules:
      - weekly:
          mon: ["09:00-17:00"]
          tue: ["09:00-17:00"]
          wed: ["09:00-17:00"]
          thu: ["09:00-17:00"]
          fri: ["09:00-17:00"]
policies:
  - name: business
    match: {category: kyc}
    targets:
      first_reply: {target: 2h, calendar: office}
      resolution: {target: 8h, calendar: office}
  - name: keep_resolution_on_hold
    match: {category: trading}
    pause_resolution_on_hold: false
    targets:
      first_reply: {target: 1h}
      next_reply: {target: 2h}
      periodic_update: {target: 4h}
      resolution: {target: 8h}
  - name: urgent
    match: {priority: urgent}
    targets:
      first_reply: {target: 15m}
      next_reply: {target: 30m}
      periodic_update: {target: 1h}
      resolution: {target: 2h}
  - name: relaxed
    match: {priority: low}
    targets:
      first_reply: {target: 2h}
      next_reply: {target: 4h}
      periodic_update: {target: 8h}
      resolution: {target: 16h}
  - name: standard
    targets:
      first_reply: {target: 1h}
      next_reply: {target: 2h}
      periodic_update: {target: 4h}
      resolution: {target: 8h}
"""
)
FIRST_REPLY_ONLY = parse_policies(
    """
policies:
  - name: only_first_reply
    targets:
      first_reply: {target: 1h}
"""
)
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # a Monday, an hour before the office opens
HOUR = timedelta(hours=1)
FR, NR, PU, RES = (
    SlaMetric.first_reply,
    SlaMetric.next_reply,
    SlaMetric.periodic_update,
    SlaMetric.resolution,
)
# What intake lets a ticket's status change to.
ALLOWED: dict[Status, tuple[Status, ...]] = {
    Status.new: (Status.open, Status.pending, Status.on_hold, Status.solved),
    Status.open: (Status.pending, Status.on_hold, Status.solved),
    Status.pending: (Status.open, Status.solved),
    Status.on_hold: (Status.open, Status.solved),
    Status.solved: (Status.open, Status.closed),
    Status.closed: (),
}

if TYPE_CHECKING:
    from collections.abc import Sequence

E = TypeVar("E", bound=SlaClockData)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def start(
    *,
    priority: Priority = Priority.normal,
    category: Category = Category.other,
    tier: str = "standard",
    status: Status = Status.open,
    policies: PolicySet = POLICIES,
) -> TicketSla:
    return TicketSla.start(
        ticket_id="T-1",
        partition=0,
        priority=priority,
        category=category,
        tier=tier,
        status=status,
        created_at=T0,
        policies=policies,
    )


def started(
    *,
    priority: Priority = Priority.normal,
    category: Category = Category.other,
    status: Status = Status.open,
    policies: PolicySet = POLICIES,
) -> TicketSla:
    """A started ticket whose sla.applied events were already taken."""
    sla = start(priority=priority, category=category, status=status, policies=policies)
    taken(sla)
    return sla


def taken(sla: TicketSla) -> list[SlaClockData]:
    events = sla.take_events()
    assert all(isinstance(e, SlaClockData) for e in events)
    return [e for e in events if isinstance(e, SlaClockData)]


def of(kind: type[E], events: Sequence[Contract], metric: SlaMetric | None = None) -> list[E]:
    return [e for e in events if isinstance(e, kind) and (metric is None or e.metric == metric)]


def kinds(events: Sequence[Contract]) -> list[tuple[str, SlaMetric, int]]:
    return [(type(e).__name__, e.metric, e.cycle) for e in events if isinstance(e, SlaClockData)]


def status_change(sla: TicketSla, new: Status, minutes: float) -> list[SlaClockData]:
    sla.on_status(sla.status, new, at(minutes), POLICIES)
    return taken(sla)


# --- start ----------------------------------------------------------------------------


def test_start_runs_first_reply_resolution_and_periodic_update_from_creation() -> None:
    sla = start()

    assert set(sla.timers) == {FR, RES, PU}
    for timer in sla.timers.values():
        assert timer.state is SlaTimerState.running
        assert timer.started_at == T0
        assert timer.running_since == T0
        assert timer.cycle == 1
        assert timer.breached_at is None


def test_start_emits_one_applied_per_clock_with_targets_and_deadlines() -> None:
    events = start().take_events()

    applied = of(SlaApplied, events)
    assert len(events) == len(applied) == 3
    by_metric = {e.metric: e for e in applied}
    assert set(by_metric) == {FR, RES, PU}
    for metric, target in ((FR, HOUR), (PU, 4 * HOUR), (RES, 8 * HOUR)):
        event = by_metric[metric]
        assert event.ticket_id == "T-1"
        assert event.cycle == 1
        assert event.target_s == target.total_seconds()
        assert event.elapsed_s == 0
        assert event.remaining_s == target.total_seconds()
        assert event.deadline == T0 + target
        assert event.priority == Priority.normal
        assert event.policy == "standard"
        assert event.policy_version == POLICIES.version


def test_next_reply_does_not_start_until_a_requester_message() -> None:
    sla = started()

    sla.fire(at(600), POLICIES)

    assert NR not in sla.timers
    assert not of(SlaClockData, taken(sla), NR)


@pytest.mark.parametrize(
    ("priority", "category", "tier", "policy", "first_reply"),
    [
        (Priority.normal, Category.kyc, "standard", "business", 2 * HOUR),
        (Priority.urgent, Category.kyc, "vip", "business", 2 * HOUR),  # first match wins
        (Priority.urgent, Category.trading, "standard", "keep_resolution_on_hold", HOUR),
        (Priority.urgent, Category.other, "standard", "urgent", timedelta(minutes=15)),
        (Priority.low, Category.fees, "gold", "relaxed", 2 * HOUR),
        (Priority.high, Category.fees, "standard", "standard", HOUR),  # catch-all
    ],
)
def test_start_applies_the_first_policy_in_file_order_that_fits(
    priority: Priority, category: Category, tier: str, policy: str, first_reply: timedelta
) -> None:
    sla = start(priority=priority, category=category, tier=tier)

    assert sla.policy_name == policy
    assert sla.policy_version == POLICIES.version
    assert sla.timers[FR].target == first_reply
    assert {e.policy for e in of(SlaApplied, taken(sla))} == {policy}


def test_start_only_runs_clocks_the_policy_names() -> None:
    sla = start(category=Category.kyc)

    assert set(sla.timers) == {FR, RES}
    assert sla.timers[FR].calendar == "office"


def test_start_on_a_pending_ticket_holds_resolution_and_periodic_update_paused() -> None:
    sla = start(status=Status.pending)

    assert sla.timers[FR].state is SlaTimerState.running
    assert sla.timers[RES].state is SlaTimerState.paused
    assert sla.timers[PU].state is SlaTimerState.paused
    taken(sla)
    sla.fire(at(24 * 60), POLICIES)
    assert {e.metric for e in of(SlaBreached, taken(sla))} == {FR}


def test_business_hours_deadline_counts_only_open_hours() -> None:
    sla = start(category=Category.kyc)

    applied = {e.metric: e for e in of(SlaApplied, taken(sla))}

    # Created Monday 08:00, the office opens at 09:00: 2 open hours end at 11:00.
    assert applied[FR].deadline == datetime(2025, 3, 3, 11, 0, tzinfo=UTC)
    # 8 open hours fill Monday 09:00-17:00.
    assert applied[RES].deadline == datetime(2025, 3, 3, 17, 0, tzinfo=UTC)


# --- fire -----------------------------------------------------------------------------


def test_fire_at_three_quarters_emits_exactly_one_warning() -> None:
    sla = started()

    sla.fire(at(45), POLICIES)

    events = taken(sla)
    assert len(events) == 1
    [warning] = of(SlaWarning, events, FR)
    assert warning.threshold == 0.75
    assert warning.cycle == 1
    assert warning.elapsed_s == 45 * 60
    assert warning.remaining_s == 15 * 60
    assert warning.deadline == at(60)


def test_fire_at_nine_tenths_emits_one_warning_for_that_threshold() -> None:
    sla = started()
    sla.fire(at(45), POLICIES)
    taken(sla)

    sla.fire(at(54), POLICIES)

    events = taken(sla)
    assert len(events) == 1
    [warning] = of(SlaWarning, events, FR)
    assert warning.threshold == 0.9


def test_fire_at_the_target_emits_one_breach_at_the_deadline() -> None:
    sla = started()
    sla.fire(at(45), POLICIES)
    sla.fire(at(54), POLICIES)
    taken(sla)

    sla.fire(at(60), POLICIES)

    events = taken(sla)
    assert len(events) == 1
    [breach] = of(SlaBreached, events, FR)
    assert breach.breached_at == at(60)
    assert breach.deadline == at(60)
    assert breach.elapsed_s == breach.target_s == 3600
    assert breach.remaining_s == 0
    assert sla.timers[FR].breached_at == at(60)


@pytest.mark.parametrize("later", [60, 61, 90, 6 * 60])
def test_firing_again_emits_nothing_more_for_the_same_clock_cycle(later: int) -> None:
    sla = started()
    for minutes in (45, 54, 60):
        sla.fire(at(minutes), POLICIES)
    taken(sla)

    sla.fire(at(later), POLICIES)
    sla.fire(at(later), POLICIES)

    assert not of(SlaClockData, taken(sla), FR)


def test_firing_twice_at_the_same_instant_warns_once() -> None:
    sla = started()

    sla.fire(at(45), POLICIES)
    sla.fire(at(45), POLICIES)

    assert len(of(SlaWarning, taken(sla))) == 1


def test_a_breach_fired_again_from_the_same_state_keeps_its_event_id() -> None:
    # A write lost in a database crash makes the timer fire the same breach again, later;
    # consumers drop it because its id is the same.
    first, again = started(), started()
    first.fire(at(60), POLICIES)
    again.fire(at(75), POLICIES)

    [one] = of(SlaBreached, taken(first), FR)
    [two] = of(SlaBreached, taken(again), FR)

    assert one.elapsed_s != two.elapsed_s
    assert fact_id(one, None) == fact_id(two, None)


def test_breaches_of_different_cycles_and_warnings_get_different_event_ids() -> None:
    sla = started()
    for minutes in (45, 54, 60, 4 * 60):
        sla.fire(at(minutes), POLICIES)
    sla.on_agent_reply(at(4 * 60 + 1), POLICIES)
    sla.fire(at(9 * 60), POLICIES)

    events = taken(sla)
    ids = [fact_id(e, "cause") for e in events]

    assert len(of(SlaBreached, events, PU)) == 2  # cycles 1 and 2 of periodic_update
    assert len(set(ids)) == len(ids)


def test_events_caused_by_different_ticket_events_get_different_event_ids() -> None:
    sla = started()
    sla.on_status(Status.open, Status.pending, at(10), POLICIES)
    [paused] = of(SlaPaused, taken(sla), RES)

    assert fact_id(paused, "event-1") == fact_id(paused, "event-1")
    assert fact_id(paused, "event-1") != fact_id(paused, "event-2")


def test_first_fire_far_past_the_target_emits_only_the_breach() -> None:
    sla = started()

    sla.fire(at(5 * 60), POLICIES)

    events = taken(sla)
    assert not of(SlaWarning, events)
    breaches = {e.metric: e for e in of(SlaBreached, events)}
    assert set(breaches) == {FR, PU}  # resolution (8h) is at 62%: nothing due
    assert breaches[FR].breached_at == at(60)
    assert breaches[PU].breached_at == at(4 * 60)
    assert breaches[FR].elapsed_s == 5 * 3600
    assert len(events) == 2
    sla.fire(at(6 * 60), POLICIES)
    assert not of(SlaWarning, taken(sla), FR)


def test_next_due_steps_through_warnings_then_deadline_then_none() -> None:
    sla = started(policies=FIRST_REPLY_ONLY)
    timer = sla.timers[FR]

    assert timer.next_due(FIRST_REPLY_ONLY) == at(45)
    assert sla.next_due(FIRST_REPLY_ONLY) == at(45)
    sla.fire(at(45), FIRST_REPLY_ONLY)
    assert sla.next_due(FIRST_REPLY_ONLY) == at(54)
    sla.fire(at(54), FIRST_REPLY_ONLY)
    assert sla.next_due(FIRST_REPLY_ONLY) == at(60)
    sla.fire(at(60), FIRST_REPLY_ONLY)
    assert timer.next_due(FIRST_REPLY_ONLY) is None
    assert sla.next_due(FIRST_REPLY_ONLY) is None


def test_next_due_is_the_earliest_across_clocks() -> None:
    sla = started()

    assert sla.next_due(POLICIES) == at(45)  # first_reply's 75 % comes first
    sla.on_agent_reply(at(10), POLICIES)
    # periodic_update restarted at 10m (4h → 3h mark), resolution's 75 % mark is at 6h.
    assert sla.next_due(POLICIES) == at(10 + 180)


def test_next_due_is_none_for_a_paused_clock() -> None:
    sla = started()
    status_change(sla, Status.pending, 10)

    assert sla.timers[RES].next_due(POLICIES) is None
    assert sla.timers[PU].next_due(POLICIES) is None
    assert sla.next_due(POLICIES) == at(45)


def test_business_hours_warning_and_breach_follow_open_time() -> None:
    sla = started(category=Category.kyc)

    sla.fire(datetime(2025, 3, 3, 10, 29, tzinfo=UTC), POLICIES)
    assert not taken(sla)  # 1h29m open of 2h: below 75 %
    sla.fire(datetime(2025, 3, 3, 10, 30, tzinfo=UTC), POLICIES)
    [warning] = taken(sla)
    assert isinstance(warning, SlaWarning)
    assert warning.threshold == 0.75
    assert warning.elapsed_s == 90 * 60

    sla.fire(datetime(2025, 3, 4, 8, 0, tzinfo=UTC), POLICIES)
    breaches = {e.metric: e for e in of(SlaBreached, taken(sla))}
    assert breaches[FR].breached_at == datetime(2025, 3, 3, 11, 0, tzinfo=UTC)
    assert breaches[RES].breached_at == datetime(2025, 3, 3, 17, 0, tzinfo=UTC)


# --- pause and resume -----------------------------------------------------------------


def test_pending_pauses_next_reply_resolution_and_periodic_update_but_not_first_reply() -> None:
    sla = started()
    sla.on_requester_message(at(10), POLICIES)
    taken(sla)

    events = status_change(sla, Status.pending, 30)

    paused = of(SlaPaused, events)
    assert len(events) == len(paused) == 3
    assert {e.metric for e in paused} == {NR, RES, PU} == PAUSED_BY[Status.pending]
    assert {e.metric: e.elapsed_s for e in paused} == {NR: 20 * 60, RES: 30 * 60, PU: 30 * 60}
    assert all(e.deadline is None for e in paused)
    assert sla.timers[FR].state is SlaTimerState.running
    for metric in (NR, RES, PU):
        assert sla.timers[metric].state is SlaTimerState.paused


def test_resuming_after_pending_moves_deadlines_later_by_the_paused_time() -> None:
    sla = started()
    sla.on_requester_message(at(10), POLICIES)
    status_change(sla, Status.pending, 30)

    events = status_change(sla, Status.open, 90)

    resumed = {e.metric: e for e in of(SlaResumed, events)}
    assert len(events) == len(resumed) == 3
    assert set(resumed) == {NR, RES, PU}
    assert resumed[RES].elapsed_s == 30 * 60
    assert resumed[RES].deadline == at(8 * 60 + 60)
    assert resumed[PU].deadline == at(4 * 60 + 60)
    assert resumed[NR].deadline == at(10 + 2 * 60 + 60)
    assert resumed[NR].elapsed_s == 20 * 60
    assert sla.timers[RES].elapsed(POLICIES, at(120)) == timedelta(minutes=60)


def test_paused_time_does_not_count_towards_warnings_or_breaches() -> None:
    sla = started()
    status_change(sla, Status.pending, 60)

    sla.fire(at(20 * 60), POLICIES)  # resolution would be long breached if it ran
    assert {e.metric for e in taken(sla)} == {FR}

    status_change(sla, Status.open, 20 * 60)
    sla.fire(at(20 * 60 + 5 * 60), POLICIES)  # resolution: 1h + 5h = 6h of 8h
    events = taken(sla)
    [warning] = of(SlaWarning, events, RES)
    assert warning.threshold == 0.75
    assert warning.elapsed_s == 6 * 3600
    assert not of(SlaBreached, events, RES)


def test_pausing_a_business_hours_clock_moves_its_deadline_by_the_open_time_missed() -> None:
    sla = started(category=Category.kyc)
    monday_16h = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)
    tuesday_10h = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)

    sla.on_status(Status.open, Status.pending, monday_16h, POLICIES)
    sla.on_status(Status.pending, Status.open, tuesday_10h, POLICIES)

    [resumed] = of(SlaResumed, taken(sla), RES)
    assert resumed.elapsed_s == 7 * 3600
    assert resumed.deadline == datetime(2025, 3, 4, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("category", "resolution_pauses"),
    [(Category.other, True), (Category.trading, False)],
)
def test_on_hold_pauses_periodic_update_and_resolution_only_if_the_policy_says(
    category: Category, resolution_pauses: bool
) -> None:
    sla = started(category=category)
    sla.on_requester_message(at(5), POLICIES)
    taken(sla)

    paused = of(SlaPaused, status_change(sla, Status.on_hold, 30))

    expected = {PU, RES} if resolution_pauses else {PU}
    assert {e.metric for e in paused} == expected
    assert sla.timers[NR].state is SlaTimerState.running
    assert sla.timers[FR].state is SlaTimerState.running
    assert (sla.timers[RES].state is SlaTimerState.paused) is resolution_pauses
    resumed = of(SlaResumed, status_change(sla, Status.open, 60))
    assert {e.metric for e in resumed} == expected


def test_moving_between_open_and_new_changes_no_clock() -> None:
    sla = started(status=Status.new)

    assert status_change(sla, Status.open, 10) == []
    assert all(c.state is SlaTimerState.running for c in sla.timers.values())


# --- agent replies --------------------------------------------------------------------


def test_agent_reply_fulfils_first_reply_with_elapsed_and_remaining() -> None:
    sla = started()

    sla.on_agent_reply(at(20), POLICIES)

    [fulfilled] = of(SlaFulfilled, taken(sla), FR)
    assert fulfilled.cycle == 1
    assert fulfilled.elapsed_s == 20 * 60
    assert fulfilled.remaining_s == 40 * 60
    assert fulfilled.target_s == 3600
    timer = sla.timers[FR]
    assert timer.state is SlaTimerState.stopped
    assert timer.stopped_at == at(20)


def test_agent_reply_fulfils_a_running_next_reply() -> None:
    sla = started()
    sla.on_requester_message(at(10), POLICIES)
    taken(sla)

    sla.on_agent_reply(at(40), POLICIES)

    [fulfilled] = of(SlaFulfilled, taken(sla), NR)
    assert fulfilled.cycle == 1
    assert fulfilled.elapsed_s == 30 * 60
    assert fulfilled.remaining_s == 90 * 60
    assert sla.timers[NR].state is SlaTimerState.stopped


def test_agent_reply_restarts_periodic_update_as_the_next_cycle() -> None:
    sla = started()

    sla.on_agent_reply(at(20), POLICIES)

    events = taken(sla)
    assert kinds(of(SlaClockData, events, PU)) == [
        ("SlaFulfilled", PU, 1),
        ("SlaApplied", PU, 2),
    ]
    [applied] = of(SlaApplied, events, PU)
    assert applied.elapsed_s == 0
    assert applied.deadline == at(20 + 4 * 60)
    timer = sla.timers[PU]
    assert (timer.cycle, timer.state, timer.started_at) == (2, SlaTimerState.running, at(20))


def test_agent_reply_leaves_resolution_running() -> None:
    sla = started()

    sla.on_agent_reply(at(20), POLICIES)

    assert not of(SlaClockData, taken(sla), RES)
    assert sla.timers[RES].state is SlaTimerState.running


def test_agent_reply_after_a_breach_emits_no_fulfilled_for_that_clock() -> None:
    sla = started()
    sla.on_requester_message(at(0), POLICIES)
    sla.fire(at(5 * 60), POLICIES)  # first_reply, next_reply and periodic_update breached
    taken(sla)

    sla.on_agent_reply(at(5 * 60 + 10), POLICIES)

    events = taken(sla)
    assert not of(SlaFulfilled, events)
    assert kinds(events) == [("SlaApplied", PU, 2)]
    assert sla.timers[FR].state is SlaTimerState.stopped
    assert sla.timers[NR].state is SlaTimerState.stopped


def test_second_agent_reply_does_not_fulfil_first_reply_again() -> None:
    sla = started()
    sla.on_agent_reply(at(20), POLICIES)
    taken(sla)

    sla.on_agent_reply(at(30), POLICIES)

    assert not of(SlaClockData, taken(sla), FR)


def test_late_agent_reply_before_the_deadline_fulfils_the_clock() -> None:
    sla = started()
    sla.fire(at(45), POLICIES)
    taken(sla)

    # Happened at 50m, arrives after the 60m deadline, before the next fire.
    sla.on_agent_reply(at(50), POLICIES)
    sla.fire(at(70), POLICIES)

    events = taken(sla)
    [fulfilled] = of(SlaFulfilled, events, FR)
    assert fulfilled.elapsed_s == 50 * 60
    assert fulfilled.remaining_s == 10 * 60
    assert not of(SlaBreached, events)


# --- requester messages ---------------------------------------------------------------


def test_requester_message_starts_next_reply_cycle_one() -> None:
    sla = started()

    sla.on_requester_message(at(10), POLICIES)

    [applied] = taken(sla)
    assert isinstance(applied, SlaApplied)
    assert (applied.metric, applied.cycle) == (NR, 1)
    assert applied.deadline == at(10 + 120)
    timer = sla.timers[NR]
    assert (timer.cycle, timer.state, timer.started_at) == (1, SlaTimerState.running, at(10))


def test_requester_message_after_an_answer_starts_the_next_cycle() -> None:
    sla = started()
    sla.on_requester_message(at(10), POLICIES)
    sla.on_agent_reply(at(20), POLICIES)
    taken(sla)

    sla.on_requester_message(at(30), POLICIES)

    [applied] = taken(sla)
    assert isinstance(applied, SlaApplied)
    assert (applied.metric, applied.cycle) == (NR, 2)
    assert applied.deadline == at(30 + 120)
    assert sla.timers[NR].started_at == at(30)


def test_second_unanswered_requester_message_does_not_restart_next_reply() -> None:
    sla = started()
    sla.on_requester_message(at(10), POLICIES)
    taken(sla)

    sla.on_requester_message(at(40), POLICIES)

    assert taken(sla) == []
    timer = sla.timers[NR]
    assert (timer.cycle, timer.started_at) == (1, at(10))
    assert timer.deadline(POLICIES) == at(10 + 120)


def test_requester_message_on_a_pending_ticket_starts_next_reply_paused() -> None:
    sla = started()
    status_change(sla, Status.pending, 5)

    sla.on_requester_message(at(10), POLICIES)

    assert sla.timers[NR].state is SlaTimerState.paused
    [applied] = taken(sla)
    assert applied.deadline is None


def test_requester_message_starts_nothing_when_the_policy_has_no_next_reply() -> None:
    sla = started(category=Category.kyc)

    sla.on_requester_message(at(10), POLICIES)

    assert NR not in sla.timers
    assert taken(sla) == []


# --- solved, reopened, closed ---------------------------------------------------------


def test_solving_fulfils_resolution_and_stops_every_clock() -> None:
    sla = started()
    sla.on_requester_message(at(10), POLICIES)
    taken(sla)

    events = status_change(sla, Status.solved, 120)

    assert kinds(events) == [("SlaFulfilled", RES, 1)]
    [fulfilled] = events
    assert fulfilled.elapsed_s == 2 * 3600
    assert fulfilled.remaining_s == 6 * 3600
    assert all(c.state is SlaTimerState.stopped for c in sla.timers.values())
    assert all(c.stopped_at == at(120) for c in sla.timers.values())


def test_solved_ticket_fires_nothing() -> None:
    sla = started()
    status_change(sla, Status.solved, 30)

    sla.fire(at(48 * 60), POLICIES)

    assert taken(sla) == []
    assert sla.next_due(POLICIES) is None


def test_solving_after_a_resolution_breach_emits_no_fulfilled() -> None:
    sla = started()
    sla.fire(at(9 * 60), POLICIES)
    taken(sla)

    assert status_change(sla, Status.solved, 10 * 60) == []


def test_reopening_resumes_resolution_from_the_time_already_spent() -> None:
    sla = started()
    status_change(sla, Status.solved, 120)

    events = status_change(sla, Status.open, 300)

    [resumed] = of(SlaResumed, events, RES)
    assert resumed.cycle == 1
    assert resumed.elapsed_s == 2 * 3600
    assert resumed.deadline == at(300 + 6 * 60)
    timer = sla.timers[RES]
    assert timer.state is SlaTimerState.running
    assert timer.stopped_at is None


def test_reopening_starts_a_new_periodic_update_cycle() -> None:
    sla = started()
    status_change(sla, Status.solved, 120)

    events = status_change(sla, Status.open, 300)

    [applied] = of(SlaApplied, events, PU)
    assert applied.cycle == 2
    assert applied.elapsed_s == 0
    assert applied.deadline == at(300 + 4 * 60)
    assert sla.timers[PU].started_at == at(300)
    assert sla.timers[FR].state is SlaTimerState.stopped  # first reply is not owed again


def test_reopened_resolution_breaches_once_the_total_open_time_reaches_the_target() -> None:
    sla = started()
    status_change(sla, Status.solved, 120)
    status_change(sla, Status.open, 300)

    sla.fire(at(300 + 6 * 60), POLICIES)

    [breach] = of(SlaBreached, taken(sla), RES)
    assert breach.breached_at == at(300 + 6 * 60)
    assert breach.elapsed_s == 8 * 3600


def test_closing_stops_everything_for_good() -> None:
    sla = started()
    status_change(sla, Status.solved, 60)

    assert status_change(sla, Status.closed, 120) == []
    sla.on_requester_message(at(130), POLICIES)
    sla.fire(at(48 * 60), POLICIES)

    assert taken(sla) == []
    assert NR not in sla.timers
    assert all(c.state is SlaTimerState.stopped for c in sla.timers.values())


def test_closing_a_ticket_with_running_clocks_stops_them_without_fulfilment() -> None:
    sla = started()

    events = status_change(sla, Status.closed, 60)

    assert events == []
    assert all(c.state is SlaTimerState.stopped for c in sla.timers.values())


# --- reapply (priority or category change) --------------------------------------------


def reapply(sla: TicketSla, priority: Priority, minutes: float) -> list[SlaClockData]:
    sla.reapply(
        priority=priority,
        category=sla.category,
        at=at(minutes),
        pinned=POLICIES,
        policies=POLICIES,
    )
    return taken(sla)


def test_reapply_changes_targets_and_carries_elapsed_time_over() -> None:
    sla = started()

    events = reapply(sla, Priority.urgent, 30)

    applied = {e.metric: e for e in of(SlaApplied, events)}
    assert set(applied) == {FR, RES, PU}
    assert all(e.policy == "urgent" and e.priority == Priority.urgent for e in applied.values())
    assert all(e.elapsed_s == 30 * 60 for e in applied.values())
    assert applied[RES].target_s == 2 * 3600
    assert applied[RES].deadline == at(120)  # 30m spent + 90m left
    assert applied[PU].deadline == at(60)
    assert sla.policy_name == "urgent"
    assert sla.timers[RES].target == 2 * HOUR


def test_reapply_keeps_paused_time_out_of_the_elapsed_time() -> None:
    sla = started()
    status_change(sla, Status.pending, 30)

    reapply(sla, Priority.urgent, 90)
    events = status_change(sla, Status.open, 100)

    [resumed] = of(SlaResumed, events, RES)
    assert resumed.elapsed_s == 30 * 60
    assert resumed.deadline == at(100 + 90)


def test_reapply_to_a_shorter_target_already_exceeded_breaches_on_the_next_fire() -> None:
    sla = started()
    reapply(sla, Priority.urgent, 30)  # first_reply: 30m spent, 15m target

    sla.fire(at(30), POLICIES)

    events = taken(sla)
    [breach] = of(SlaBreached, events, FR)
    assert breach.elapsed_s >= breach.target_s == 15 * 60
    assert breach.breached_at == at(30)  # the new target applies from the change
    assert not of(SlaWarning, events, FR)


def test_reapply_keeps_an_existing_breach_and_does_not_breach_again() -> None:
    sla = started(priority=Priority.urgent)
    sla.fire(at(20), POLICIES)  # first_reply (15m) breached
    taken(sla)

    reapply(sla, Priority.normal, 25)  # first_reply target now 1h
    assert sla.timers[FR].breached_at == at(15)
    reapply(sla, Priority.urgent, 26)
    sla.fire(at(2 * 60), POLICIES)

    assert sla.timers[FR].breached_at == at(15)
    assert not of(SlaClockData, taken(sla), FR)


def test_reapply_does_not_repeat_warnings_already_fired() -> None:
    sla = started()
    sla.fire(at(45), POLICIES)  # first_reply 0.75 of 1h
    taken(sla)

    reapply(sla, Priority.low, 50)  # first_reply target now 2h
    sla.fire(at(90), POLICIES)  # 0.75 of 2h
    assert not of(SlaWarning, taken(sla), FR)

    sla.fire(at(108), POLICIES)  # 0.9 of 2h: not fired yet
    [warning] = of(SlaWarning, taken(sla), FR)
    assert warning.threshold == 0.9
    assert warning.target_s == 2 * 3600


def test_reapply_stops_clocks_the_new_policy_does_not_name() -> None:
    sla = started()

    sla.reapply(
        priority=Priority.normal,
        category=Category.kyc,
        at=at(30),
        pinned=POLICIES,
        policies=POLICIES,
    )

    events = taken(sla)
    assert sla.policy_name == "business"
    assert sla.timers[PU].state is SlaTimerState.stopped
    assert not of(SlaClockData, events, PU)
    assert {e.metric for e in of(SlaApplied, events)} == {FR, RES}
    assert sla.timers[RES].calendar == "office"


# --- copy -----------------------------------------------------------------------------


def test_copy_sla_is_independent_of_the_original() -> None:
    sla = start()
    copy = copy_sla(sla)

    copy.on_agent_reply(at(20), POLICIES)
    copy.on_requester_message(at(30), POLICIES)
    copy.timers[RES].target = 99 * HOUR
    taken(copy)
    copy.timers[RES].warned = (0.75,)

    assert len(sla.pending) == 3
    assert set(sla.timers) == {FR, RES, PU}
    assert sla.timers[FR].state is SlaTimerState.running
    assert sla.timers[PU].cycle == 1
    assert sla.timers[RES].target == 8 * HOUR
    assert sla.timers[RES].warned == ()
    assert sla.last_event_at == T0


# --- properties -----------------------------------------------------------------------

Op = tuple[int, str, int]
OPS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=300),  # minutes to advance
        st.sampled_from(["agent", "requester", "status", "fire"]),
        st.integers(min_value=0, max_value=3),  # which allowed status
    ),
    max_size=30,
)


@settings(max_examples=600, deadline=None)
@given(
    ops=OPS,
    initial=st.sampled_from([Status.new, Status.open]),
    category=st.sampled_from([Category.other, Category.trading]),  # on_hold pauses or not
)
def test_clock_invariants_hold_for_any_sequence_of_ticket_events(
    ops: list[Op], initial: Status, category: Category
) -> None:
    sla = start(status=initial, category=category)
    now = T0
    events = taken(sla)
    stopped: set[tuple[SlaMetric, int]] = set()
    for minutes, op, choice in ops:
        now += timedelta(minutes=minutes)
        reopening = False
        if op == "agent":
            sla.on_agent_reply(now, POLICIES)
        elif op == "requester":
            sla.on_requester_message(now, POLICIES)
        elif op == "status":
            allowed = ALLOWED[sla.status]
            if not allowed:
                continue
            new = allowed[choice % len(allowed)]
            reopening = sla.status == Status.solved and new != Status.closed
            sla.on_status(sla.status, new, now, POLICIES)
        else:
            sla.fire(now, POLICIES)
        new_events = taken(sla)

        for event in new_events:
            key = (event.metric, event.cycle)
            revived = reopening and event.metric == RES
            assert key not in stopped or revived, f"{type(event).__name__} after stop: {key}"
        events += new_events
        stopped = {(m, c.cycle) for m, c in sla.timers.items() if c.state is SlaTimerState.stopped}

    breaches = Counter((e.metric, e.cycle) for e in events if isinstance(e, SlaBreached))
    assert all(n == 1 for n in breaches.values())
    warnings = Counter(
        (e.metric, e.cycle, e.threshold) for e in events if isinstance(e, SlaWarning)
    )
    assert all(n == 1 for n in warnings.values())
    last_elapsed: dict[tuple[SlaMetric, int], float] = {}
    for event in events:
        key = (event.metric, event.cycle)
        assert event.elapsed_s >= 0
        assert event.elapsed_s >= last_elapsed.get(key, 0.0)
        last_elapsed[key] = event.elapsed_s
        if isinstance(event, SlaBreached):
            assert event.elapsed_s >= event.target_s
            assert event.breached_at <= now
    for key in breaches:
        fulfilled_after = False
        seen_breach = False
        for event in events:
            if (event.metric, event.cycle) != key:
                continue
            seen_breach = seen_breach or isinstance(event, SlaBreached)
            fulfilled_after = fulfilled_after or (seen_breach and isinstance(event, SlaFulfilled))
        assert not fulfilled_after, f"fulfilled after breach: {key}"
