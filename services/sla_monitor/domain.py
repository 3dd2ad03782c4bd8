"""SLA timers of one ticket: the state machine, by event time. Pure.

A `TicketSla` holds one `SlaTimer` per metric the ticket's policy names. Ticket events move
the timers (start, pause, resume, stop); `fire(now)` publishes warnings and breaches that
are due. Every change is collected as an SLA event in `pending`, which the handler writes
to the outbox in the same document write as the new state.

Times are event times: an agent reply that happened before the deadline fulfils the
timer even if it arrives late. Elapsed time is measured on the target's calendar
(business hours or calendar time) and carries over pauses and policy changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

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
from shared.ids import stable_id

if TYPE_CHECKING:
    from services.sla_monitor.policy import PolicySet, PolicySpec

ZERO = timedelta(0)
# Which timers a status pauses; every paused timer resumes when the ticket is open again.
PAUSED_BY: dict[Status, frozenset[SlaMetric]] = {
    Status.pending: frozenset(
        {SlaMetric.next_reply, SlaMetric.resolution, SlaMetric.periodic_update}
    ),
    Status.on_hold: frozenset({SlaMetric.periodic_update}),  # + resolution if the policy says
}


class SlaTimerState(StrEnum):
    running = "running"
    paused = "paused"
    stopped = "stopped"


@dataclass
class SlaTimer:
    metric: SlaMetric
    target: timedelta
    calendar: str
    cycle: int
    started_at: datetime
    state: SlaTimerState
    elapsed_before: timedelta = ZERO  # open time counted before `running_since`
    running_since: datetime | None = None
    warned: tuple[float, ...] = ()
    breached_at: datetime | None = None
    stopped_at: datetime | None = None

    def elapsed(self, policies: PolicySet, at: datetime) -> timedelta:
        if self.running_since is None or at <= self.running_since:
            return self.elapsed_before
        return self.elapsed_before + policies.calendar(self.calendar).between(
            self.running_since, at
        )

    def instant_of(self, policies: PolicySet, amount: timedelta) -> datetime | None:
        """When `amount` of open time will have elapsed, if the timer keeps running."""
        if self.running_since is None:
            return None
        remaining = max(ZERO, amount - self.elapsed_before)
        return policies.calendar(self.calendar).add(self.running_since, remaining)

    def deadline(self, policies: PolicySet) -> datetime | None:
        return self.instant_of(policies, self.target)

    def next_due(self, policies: PolicySet) -> datetime | None:
        if self.state is not SlaTimerState.running or self.breached_at is not None:
            return None
        marks = [f * self.target for f in policies.warnings if f not in self.warned]
        instants = [self.instant_of(policies, m) for m in [*marks, self.target]]
        return min((i for i in instants if i is not None), default=None)


@dataclass
class TicketSla:
    ticket_id: str
    partition: int
    policy_name: str
    policy_version: str
    priority: Priority
    category: Category
    tier: str
    status: Status
    created_at: datetime
    last_event_at: datetime
    timers: dict[SlaMetric, SlaTimer] = field(default_factory=dict)
    agent_replied_at: datetime | None = None
    version: int = 0
    # What a timer's events keep from the last event seen: the request's correlation id,
    # and the trace context they link to (their own trace starts when they fire).
    correlation_id: str | None = None
    traceparent: str | None = None
    # The open incident the ticket is linked to: resolution follows it (see `_pauses`).
    incident_id: str | None = None
    pending: list[Contract] = field(default_factory=list)

    # --- lifecycle ------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        ticket_id: str,
        partition: int,
        priority: Priority,
        category: Category,
        tier: str,
        status: Status,
        created_at: datetime,
        policies: PolicySet,
    ) -> TicketSla:
        policy = policies.select(priority, category, tier)
        sla = cls(
            ticket_id=ticket_id,
            partition=partition,
            policy_name=policy.name,
            policy_version=policies.version,
            priority=priority,
            category=category,
            tier=tier,
            status=status,
            created_at=created_at,
            last_event_at=created_at,
        )
        for metric in (SlaMetric.first_reply, SlaMetric.resolution, SlaMetric.periodic_update):
            if metric in policy.targets:
                sla._start_timer(metric, policy, policies, created_at, cycle=1)
        return sla

    def _start_timer(
        self,
        metric: SlaMetric,
        policy: PolicySpec,
        policies: PolicySet,
        at: datetime,
        cycle: int,
    ) -> SlaTimer:
        target = policy.targets[metric]
        paused = self._pauses(metric, policy)
        timer = SlaTimer(
            metric=metric,
            target=target.target,
            calendar=target.calendar,
            cycle=cycle,
            started_at=at,
            state=SlaTimerState.paused if paused else SlaTimerState.running,
            running_since=None if paused else at,
        )
        self.timers[metric] = timer
        self._emit(SlaApplied, timer, policies, at)
        return timer

    def _pauses(self, metric: SlaMetric, policy: PolicySpec | None) -> bool:
        paused = set(PAUSED_BY.get(self.status, ()))
        if self.status == Status.on_hold and (policy is None or policy.pause_resolution_on_hold):
            paused.add(SlaMetric.resolution)
        if self.incident_id is not None and (policy is None or policy.pause_resolution_in_incident):
            paused.add(SlaMetric.resolution)  # the incident's resolution solves the ticket
        return metric in paused

    def _sync_pauses(
        self, at: datetime, policy: PolicySpec | None, policies: PolicySet, **why: object
    ) -> None:
        """Pause what the status or incident now pauses and resume what neither does."""
        for timer in self.timers.values():
            if timer.state is SlaTimerState.stopped:
                continue
            extra = why if timer.metric == SlaMetric.resolution else {}
            should_pause = self._pauses(timer.metric, policy)
            if should_pause and timer.state is SlaTimerState.running:
                timer.elapsed_before = timer.elapsed(policies, at)
                timer.running_since = None
                timer.state = SlaTimerState.paused
                self._emit(SlaPaused, timer, policies, at, **extra)
            elif not should_pause and timer.state is SlaTimerState.paused:
                timer.running_since = at
                timer.state = SlaTimerState.running
                self._emit(SlaResumed, timer, policies, at, **extra)

    # --- incidents ------------------------------------------------------------------

    def on_incident_linked(self, incident_id: str, at: datetime, policies: PolicySet) -> None:
        """While linked to an open incident, resolution pauses if the policy says so
        (`pause_resolution_in_incident`): the incident decides when the ticket is solved."""
        self._seen(at)
        if self.status in (Status.solved, Status.closed) or self.incident_id == incident_id:
            return
        self.incident_id = incident_id
        self._sync_pauses(at, policies.policy(self.policy_name), policies, incident_id=incident_id)

    def on_incident_unlinked(self, incident_id: str, at: datetime, policies: PolicySet) -> None:
        """Unlinked (by an agent, or by the incident's resolution): resolution runs again
        unless the ticket's status pauses it."""
        self._seen(at)
        if self.incident_id != incident_id:
            return
        self.incident_id = None
        self._sync_pauses(at, policies.policy(self.policy_name), policies, incident_id=incident_id)

    # --- ticket events --------------------------------------------------------------

    def on_agent_reply(self, at: datetime, policies: PolicySet) -> None:
        """A public agent reply answers first_reply and next_reply and resets periodic_update."""
        self._seen(at)
        if self.agent_replied_at is None or at < self.agent_replied_at:
            self.agent_replied_at = at
        for metric in (SlaMetric.first_reply, SlaMetric.next_reply):
            timer = self.timers.get(metric)
            if timer is not None and timer.state is not SlaTimerState.stopped:
                self._stop(timer, at, policies, fulfilled=True)
        periodic = self.timers.get(SlaMetric.periodic_update)
        policy = policies.policy(self.policy_name)
        if periodic is not None and periodic.state is not SlaTimerState.stopped and policy:
            self._stop(periodic, at, policies, fulfilled=True)
            if SlaMetric.periodic_update in policy.targets:
                self._start_timer(
                    SlaMetric.periodic_update, policy, policies, at, cycle=periodic.cycle + 1
                )

    def on_incident_update(self, at: datetime, policies: PolicySet) -> None:
        """A public update of the ticket's incident answers what the policy lets it
        (`incident_updates_satisfy`: by default next_reply and periodic_update), as an
        agent's reply would: the timers are fulfilled, a periodic update starts again."""
        self._seen(at)
        policy = policies.policy(self.policy_name)
        if policy is None or self.status in (Status.solved, Status.closed):
            return
        satisfied = set(policy.incident_updates_satisfy)
        for metric in (SlaMetric.first_reply, SlaMetric.next_reply):
            timer = self.timers.get(metric)
            if (
                metric in satisfied
                and timer is not None
                and timer.state is not SlaTimerState.stopped
            ):
                self._stop(timer, at, policies, fulfilled=True)
        periodic = self.timers.get(SlaMetric.periodic_update)
        if (
            SlaMetric.periodic_update in satisfied
            and periodic is not None
            and periodic.state is not SlaTimerState.stopped
        ):
            self._stop(periodic, at, policies, fulfilled=True)
            if SlaMetric.periodic_update in policy.targets:
                self._start_timer(
                    SlaMetric.periodic_update, policy, policies, at, cycle=periodic.cycle + 1
                )

    def on_requester_message(self, at: datetime, policies: PolicySet) -> None:
        """Starts a next_reply cycle unless one is already waiting for an answer."""
        self._seen(at)
        if self.status == Status.closed:
            return
        policy = policies.policy(self.policy_name)
        if policy is None or SlaMetric.next_reply not in policy.targets:
            return
        current = self.timers.get(SlaMetric.next_reply)
        if current is not None and current.state is not SlaTimerState.stopped:
            return
        cycle = current.cycle + 1 if current is not None else 1
        self._start_timer(SlaMetric.next_reply, policy, policies, at, cycle=cycle)

    def on_status(
        self,
        old: Status,
        new: Status,
        at: datetime,
        policies: PolicySet,
        incident_id: str | None = None,
    ) -> None:
        """`incident_id`: the incident whose resolution made this change, which ends the link."""
        self._seen(at)
        self.status = new
        released = incident_id is not None and incident_id == self.incident_id
        if released:
            self.incident_id = None
        policy = policies.policy(self.policy_name)
        if new == Status.solved:
            for timer in self.timers.values():
                if timer.state is not SlaTimerState.stopped:
                    fulfilled = timer.metric == SlaMetric.resolution
                    self._stop(timer, at, policies, fulfilled=fulfilled)
            return
        if new == Status.closed:
            for timer in self.timers.values():
                if timer.state is not SlaTimerState.stopped:
                    self._stop(timer, at, policies, fulfilled=False)
            return
        if old == Status.solved and policy is not None:
            self._reopen(at, policy, policies)
        self._sync_pauses(
            at, policy, policies, **({"incident_id": incident_id} if released else {})
        )

    def _reopen(self, at: datetime, policy: PolicySpec, policies: PolicySet) -> None:
        """Resolution continues from the time already spent; periodic updates start again."""
        resolution = self.timers.get(SlaMetric.resolution)
        if resolution is not None and resolution.state is SlaTimerState.stopped:
            resolution.state = SlaTimerState.paused  # resumed below by the open status
            resolution.stopped_at = None
        if SlaMetric.periodic_update in policy.targets:
            previous = self.timers.get(SlaMetric.periodic_update)
            self._start_timer(
                SlaMetric.periodic_update,
                policy,
                policies,
                at,
                cycle=previous.cycle + 1 if previous else 1,
            )

    def reapply(
        self,
        *,
        priority: Priority,
        category: Category,
        at: datetime,
        pinned: PolicySet,
        policies: PolicySet,
    ) -> None:
        """A new priority/category (or an operator) applies the current policy version.

        Time already spent (on the `pinned` version's calendars) and time paused carry
        over; a breach already published stays.
        """
        self._seen(at)
        self.priority, self.category = priority, category
        policy = policies.select(priority, category, self.tier)
        self.policy_name, self.policy_version = policy.name, policies.version
        for metric, timer in self.timers.items():
            if timer.state is SlaTimerState.stopped:
                continue
            if metric not in policy.targets:
                self._stop(timer, at, pinned, fulfilled=False)
                continue
            if timer.state is SlaTimerState.running:
                timer.elapsed_before = timer.elapsed(pinned, at)
                timer.running_since = at
            target = policy.targets[metric]
            timer.target, timer.calendar = target.target, target.calendar
            timer.warned = tuple(f for f in policies.warnings if f in timer.warned)
            self._emit(SlaApplied, timer, policies, at)
        for metric in (SlaMetric.first_reply, SlaMetric.resolution, SlaMetric.periodic_update):
            if metric in policy.targets and metric not in self.timers and self._still_owed(metric):
                self._start_timer(metric, policy, policies, at, cycle=1)
        self._sync_pauses(at, policy, policies)  # the new policy may treat incidents otherwise

    def _still_owed(self, metric: SlaMetric) -> bool:
        return self.status not in (Status.solved, Status.closed) and not (
            metric == SlaMetric.first_reply and self.agent_replied_at is not None
        )

    # --- timers ---------------------------------------------------------------------

    def fire(self, now: datetime, policies: PolicySet) -> None:
        """Publish every warning and breach due by `now`, each once per timer cycle.

        A timer found past its target gets only its breach: warnings it skipped while the
        service was down would be noise by then.
        """
        for timer in self.timers.values():
            if timer.state is not SlaTimerState.running or timer.breached_at is not None:
                continue
            elapsed = timer.elapsed(policies, now)
            if elapsed >= timer.target:
                timer.breached_at = timer.deadline(policies)
                timer.warned = tuple(policies.warnings)
                self._emit(SlaBreached, timer, policies, now)
                continue
            for fraction in policies.warnings:
                if fraction not in timer.warned and elapsed >= fraction * timer.target:
                    timer.warned = (*timer.warned, fraction)
                    self._emit(SlaWarning, timer, policies, now, threshold=fraction)

    def next_due(self, policies: PolicySet) -> datetime | None:
        dues = [c.next_due(policies) for c in self.timers.values()]
        return min((d for d in dues if d is not None), default=None)

    # --- helpers --------------------------------------------------------------------

    def _seen(self, at: datetime) -> None:
        self.last_event_at = max(self.last_event_at, at)

    def _stop(self, timer: SlaTimer, at: datetime, policies: PolicySet, *, fulfilled: bool) -> None:
        timer.elapsed_before = timer.elapsed(policies, at)
        timer.running_since = None
        timer.state = SlaTimerState.stopped
        timer.stopped_at = at
        if fulfilled and timer.breached_at is None:
            self._emit(SlaFulfilled, timer, policies, at)

    def take_events(self) -> list[Contract]:
        events, self.pending = self.pending, []
        return events

    def _emit(
        self,
        kind: type[SlaClockData],
        timer: SlaTimer,
        policies: PolicySet,
        at: datetime,
        **extra: object,
    ) -> None:
        elapsed = timer.elapsed(policies, at)
        fields: dict[str, object] = {
            "ticket_id": self.ticket_id,
            "metric": timer.metric,
            "cycle": timer.cycle,
            "target_s": timer.target.total_seconds(),
            "elapsed_s": elapsed.total_seconds(),
            "remaining_s": (timer.target - elapsed).total_seconds(),
            "deadline": timer.deadline(policies),
            "priority": self.priority,
            "policy": self.policy_name,
            "policy_version": self.policy_version,
            **extra,
        }
        if kind is SlaBreached:
            fields["breached_at"] = timer.breached_at
        self.pending.append(kind.model_validate(fields))


def fact_id(data: SlaClockData, cause: str | None) -> str:
    """The same fact always gets the same event id, so consumers that dedupe on ids drop a
    breach re-published by a relay after a crash, or recomputed after a write was lost.

    Warnings and breaches are fired by a timer at an arbitrary instant, so their id leaves
    out the elapsed time; everything else is caused by one ticket event (or an operator's
    re-apply, `cause` None) and is identified through it.
    """
    parts = [
        data.event_type,
        data.ticket_id,
        data.metric.value,
        str(data.cycle),
        data.policy_version,
        repr(data.target_s),
    ]
    if isinstance(data, SlaBreached):
        parts.append(data.breached_at.isoformat())
    elif isinstance(data, SlaWarning):
        parts.append(repr(data.threshold))
    else:
        deadline = data.deadline.isoformat() if data.deadline else ""
        parts += [cause or "", repr(data.elapsed_s), deadline]
    return stable_id(*parts)


def open_metrics(sla: TicketSla | None) -> frozenset[SlaMetric]:
    """Metrics whose timer is not stopped (running or paused)."""
    if sla is None:
        return frozenset()
    return frozenset(m for m, t in sla.timers.items() if t.state is not SlaTimerState.stopped)


def open_delta(before: TicketSla | None, after: TicketSla) -> dict[SlaMetric, int]:
    """How a change moved the count of open timers, per metric (only metrics that moved)."""
    was, now = open_metrics(before), open_metrics(after)
    return {m: 1 for m in now - was} | {m: -1 for m in was - now}


def copy_sla(sla: TicketSla) -> TicketSla:
    """A deep enough copy to try a change and throw it away."""
    return replace(
        sla, timers={m: replace(c) for m, c in sla.timers.items()}, pending=list(sla.pending)
    )
