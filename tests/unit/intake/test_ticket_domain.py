"""The ticket aggregate: its status machine, message rules, escalation and event collection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.intake.domain import (
    DEFAULT_ESCALATION,
    MAX_ESCALATION_LEVEL,
    PRIORITY_ORDER,
    TRANSITIONS,
    EscalationLimit,
    EscalationPolicy,
    EscalationReason,
    IllegalTransition,
    Ticket,
    TicketClosed,
    TicketLimits,
    TicketMessageLimit,
    TicketTooLarge,
    raise_one,
)
from shared.events import (
    Author,
    Category,
    Channel,
    Contract,
    Priority,
    Requester,
    Status,
    TicketAssigned,
    TicketCreated,
    TicketEscalated,
    TicketMessageAdded,
    TicketPriorityChanged,
    TicketReopened,
    TicketStatusChanged,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def new_ticket(**overrides: Any) -> Ticket:
    values: dict[str, Any] = {
        "ticket_id": "T-1",
        "requester": Requester(id="u-42", locale="zh-CN"),
        "channel": Channel.app,
        "subject": "提现未到账",
        "description": "我的USDT提现已经3小时还没到账",
        "category": Category.withdrawal_delay,
        "priority": Priority.normal,
        "group": "payments",
        "now": NOW,
    }
    values.update(overrides)
    return Ticket.open(**values)


def fresh_ticket(**overrides: Any) -> Ticket:
    """A new ticket whose `created` event was already taken."""
    ticket = new_ticket(**overrides)
    ticket.take_events()
    return ticket


def at_status(status: Status, **overrides: Any) -> Ticket:
    path = {
        Status.new: [],
        Status.open: [Status.open],
        Status.pending: [Status.pending],
        Status.on_hold: [Status.on_hold],
        Status.solved: [Status.solved],
        Status.closed: [Status.solved, Status.closed],
    }[status]
    ticket = fresh_ticket(**overrides)
    for step in path:
        ticket.change_status(step, NOW)
    ticket.take_events()
    return ticket


def types_of(events: list[Contract]) -> list[str]:
    return [e.event_type for e in events]


def reply(ticket: Ticket, author: Author, *, public: bool = True, body: str = "hi") -> None:
    ticket.add_message(
        message_id=f"m-{len(ticket.messages)}",
        author=author,
        author_id="agent-7" if author == Author.agent else None,
        body=body,
        public=public,
        now=LATER,
    )


# --- opening -------------------------------------------------------------------------------


def test_opening_collects_one_created_event_with_the_new_ticket_summary() -> None:
    ticket = new_ticket()

    events = ticket.take_events()

    assert types_of(events) == ["helpstream.ticket.created"]
    created = events[0]
    assert isinstance(created, TicketCreated)
    assert created.ticket_id == "T-1"
    assert created.ticket.status == Status.new
    assert (created.ticket.category, created.ticket.priority) == (
        Category.withdrawal_delay,
        Priority.normal,
    )
    assert created.secret_redacted is False


def test_opening_after_a_redaction_adds_a_public_system_notice_after_the_created_event() -> None:
    ticket = new_ticket(secret_redacted=True, warning=("m-warn", "Never share your seed phrase"))

    events = ticket.take_events()

    assert types_of(events) == ["helpstream.ticket.created", "helpstream.ticket.message_added"]
    notice = events[1]
    assert isinstance(notice, TicketMessageAdded)
    assert (notice.author, notice.public, notice.body) == (
        Author.system,
        True,
        "Never share your seed phrase",
    )
    assert [(m.id, m.author, m.public) for m in ticket.messages] == [
        ("m-warn", Author.system, True)
    ]
    assert ticket.secret_redacted is True


def test_take_events_drains_so_a_second_take_is_empty() -> None:
    ticket = new_ticket()
    ticket.change_status(Status.open, LATER)

    first = ticket.take_events()
    second = ticket.take_events()

    assert types_of(first) == ["helpstream.ticket.created", "helpstream.ticket.status_changed"]
    assert second == []
    assert ticket.pending_events == []


# --- the status machine --------------------------------------------------------------------


def test_closed_is_terminal_and_every_other_status_can_be_left() -> None:
    assert TRANSITIONS[Status.closed] == frozenset()
    for status in Status:
        if status != Status.closed:
            assert TRANSITIONS[status], status


def test_an_illegal_transition_names_the_statuses_that_are_allowed() -> None:
    ticket = fresh_ticket()

    with pytest.raises(IllegalTransition) as raised:
        ticket.change_status(Status.closed, LATER)

    assert raised.value.code == "illegal_transition"
    assert "allowed: on_hold, open, pending, solved" in str(raised.value)
    assert ticket.status == Status.new
    assert ticket.take_events() == []


def test_a_closed_ticket_says_no_status_is_allowed() -> None:
    ticket = at_status(Status.closed)

    with pytest.raises(IllegalTransition, match=r"none \(the ticket is closed\)"):
        ticket.change_status(Status.open, LATER)


def test_changing_to_the_current_status_is_a_silent_no_op() -> None:
    ticket = at_status(Status.pending)

    ticket.change_status(Status.pending, LATER)

    assert ticket.take_events() == []
    assert ticket.updated_at == NOW


def test_agent_reopening_a_solved_ticket_emits_reopened_then_status_changed() -> None:
    ticket = at_status(Status.solved)

    ticket.change_status(Status.open, LATER)

    events = ticket.take_events()
    assert types_of(events) == ["helpstream.ticket.reopened", "helpstream.ticket.status_changed"]
    assert isinstance(events[0], TicketReopened)
    assert events[0].reason == "agent"
    assert ticket.updated_at == LATER


class StatusMachine(RuleBasedStateMachine):
    """Random status changes against the transition table, the reference model."""

    ticket: Ticket
    expected: Status

    @initialize()
    def start(self) -> None:
        self.ticket = fresh_ticket()
        self.expected = Status.new

    @rule(wanted=st.sampled_from(list(Status)))
    def change(self, wanted: Status) -> None:
        before = self.ticket.status
        if wanted != before and wanted not in TRANSITIONS[before]:
            with pytest.raises(IllegalTransition) as raised:
                self.ticket.change_status(wanted, LATER)
            assert (raised.value.current, raised.value.wanted) == (before, wanted)
            assert self.ticket.take_events() == []
            return
        self.ticket.change_status(wanted, LATER)
        events = self.ticket.take_events()
        if wanted == before:
            assert events == []
            return
        changes = [e for e in events if isinstance(e, TicketStatusChanged)]
        assert len(changes) == 1
        assert (changes[0].old, changes[0].new) == (before, wanted)
        assert changes[0].ticket.status == wanted
        reopened = [e for e in events if isinstance(e, TicketReopened)]
        assert len(reopened) == (1 if (before, wanted) == (Status.solved, Status.open) else 0)
        assert len(events) == len(changes) + len(reopened)
        self.expected = wanted

    @invariant()
    def status_is_the_last_accepted_target(self) -> None:
        assert self.ticket.status == self.expected

    @invariant()
    def closed_is_terminal(self) -> None:
        if self.ticket.status == Status.closed:
            for wanted in Status:
                if wanted != Status.closed:
                    with pytest.raises(IllegalTransition):
                        self.ticket.change_status(wanted, LATER)
            assert self.ticket.status == Status.closed


StatusMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStatusMachine = StatusMachine.TestCase


@given(path=st.lists(st.sampled_from(list(Status)), max_size=30))
@settings(max_examples=200, deadline=None)
def test_random_status_sequences_follow_the_transition_table(path: list[Status]) -> None:
    ticket = fresh_ticket()
    accepted: list[tuple[Status, Status]] = []
    for wanted in path:
        before = ticket.status
        if wanted in TRANSITIONS[before]:
            ticket.change_status(wanted, LATER)
            accepted.append((before, wanted))
        elif wanted == before:
            ticket.change_status(wanted, LATER)
        else:
            with pytest.raises(IllegalTransition):
                ticket.change_status(wanted, LATER)

    changes = [e for e in ticket.take_events() if isinstance(e, TicketStatusChanged)]
    assert [(e.old, e.new) for e in changes] == accepted
    assert ticket.status == (accepted[-1][1] if accepted else Status.new)


# --- messages ------------------------------------------------------------------------------


def test_a_requester_reply_reopens_a_solved_ticket() -> None:
    ticket = at_status(Status.solved)

    reply(ticket, Author.requester)

    events = ticket.take_events()
    assert types_of(events) == [
        "helpstream.ticket.message_added",
        "helpstream.ticket.reopened",
        "helpstream.ticket.status_changed",
    ]
    assert isinstance(events[1], TicketReopened)
    assert events[1].reason == "requester_reply"
    assert isinstance(events[2], TicketStatusChanged)
    assert (events[2].old, events[2].new) == (Status.solved, Status.open)
    assert ticket.status == Status.open


def test_a_requester_reply_answers_a_pending_ticket() -> None:
    ticket = at_status(Status.pending)

    reply(ticket, Author.requester)

    events = ticket.take_events()
    assert types_of(events) == [
        "helpstream.ticket.message_added",
        "helpstream.ticket.status_changed",
    ]
    assert ticket.status == Status.open


@pytest.mark.parametrize("status", [Status.new, Status.open, Status.on_hold])
def test_a_requester_reply_leaves_other_statuses_alone(status: Status) -> None:
    ticket = at_status(status)

    reply(ticket, Author.requester)

    assert types_of(ticket.take_events()) == ["helpstream.ticket.message_added"]
    assert ticket.status == status


def test_an_agents_first_public_reply_opens_a_new_ticket() -> None:
    ticket = fresh_ticket()

    reply(ticket, Author.agent)

    events = ticket.take_events()
    assert types_of(events) == [
        "helpstream.ticket.message_added",
        "helpstream.ticket.status_changed",
    ]
    assert ticket.status == Status.open


def test_an_internal_note_neither_opens_the_ticket_nor_publishes_its_body() -> None:
    ticket = fresh_ticket()

    reply(ticket, Author.agent, public=False, body="KYC docs look forged")

    events = ticket.take_events()
    assert len(events) == 1
    note = events[0]
    assert isinstance(note, TicketMessageAdded)
    assert (note.public, note.body) == (False, None)
    assert ticket.messages[-1].body == "KYC docs look forged"
    assert ticket.status == Status.new


@pytest.mark.parametrize("status", [Status.pending, Status.solved])
def test_an_agent_reply_does_not_move_a_pending_or_solved_ticket(status: Status) -> None:
    ticket = at_status(status)

    reply(ticket, Author.agent)

    assert ticket.status == status


@pytest.mark.parametrize("author", list(Author))
def test_no_one_can_add_a_message_to_a_closed_ticket(author: Author) -> None:
    ticket = at_status(Status.closed)

    with pytest.raises(TicketClosed):
        reply(ticket, author)

    assert ticket.messages == []
    assert ticket.take_events() == []


def test_a_redacted_requester_message_marks_the_ticket_and_adds_the_notice_after_it() -> None:
    ticket = fresh_ticket()

    message = ticket.add_message(
        message_id="m-1",
        author=Author.requester,
        author_id=None,
        body="private key: [REDACTED:hex_private_key]",
        public=True,
        now=LATER,
        secret_redacted=True,
        warning=("m-warn", "notice"),
    )

    assert message.secret_redacted is True
    assert ticket.secret_redacted is True
    assert [(m.id, m.author) for m in ticket.messages] == [
        ("m-1", Author.requester),
        ("m-warn", Author.system),
    ]
    events = ticket.take_events()
    assert [(e.author, e.secret_redacted) for e in events if isinstance(e, TicketMessageAdded)] == [
        (Author.requester, True),
        (Author.system, False),
    ]


# --- priority and assignment ---------------------------------------------------------------


def test_priority_and_assignment_changes_emit_one_event_each_and_repeats_emit_none() -> None:
    ticket = fresh_ticket()

    ticket.change_priority(Priority.high, LATER, reason="agent")
    ticket.change_priority(Priority.high, LATER, reason="agent")
    ticket.assign(assignee="agent-7", group=None, now=LATER)
    ticket.assign(assignee="agent-7", group="payments", now=LATER)

    events = ticket.take_events()
    assert types_of(events) == ["helpstream.ticket.priority_changed", "helpstream.ticket.assigned"]
    assert isinstance(events[0], TicketPriorityChanged)
    assert (events[0].old, events[0].new, events[0].reason) == (
        Priority.normal,
        Priority.high,
        "agent",
    )
    assert isinstance(events[1], TicketAssigned)
    assert (events[1].assignee, events[1].group) == ("agent-7", "payments")


def test_a_closed_ticket_cannot_be_reprioritised_or_reassigned() -> None:
    ticket = at_status(Status.closed)

    with pytest.raises(TicketClosed):
        ticket.change_priority(Priority.urgent, LATER)
    with pytest.raises(TicketClosed):
        ticket.assign(assignee="agent-7", group=None, now=LATER)


# --- escalation ----------------------------------------------------------------------------


@given(priority=st.sampled_from(PRIORITY_ORDER))
def test_raise_one_moves_one_step_and_stops_at_urgent(priority: Priority) -> None:
    raised = raise_one(priority)

    index = PRIORITY_ORDER.index(priority)
    assert PRIORITY_ORDER.index(raised) == min(index + 1, len(PRIORITY_ORDER) - 1)


def test_escalation_climbs_the_levels_groups_and_priorities_then_stops_at_the_limit() -> None:
    ticket = fresh_ticket(priority=Priority.low)
    ticket.assign(assignee="agent-7", group=None, now=NOW)
    ticket.take_events()
    seen: list[tuple[int, str, Priority, str | None]] = []

    reasons: list[EscalationReason] = ["requester_request", "agent", "agent"]
    for reason in reasons:
        assert ticket.escalate(reason=reason, now=LATER) is True
        seen.append((ticket.escalation_level, ticket.group, ticket.priority, ticket.assignee))
    with pytest.raises(EscalationLimit) as raised:
        ticket.escalate(reason="agent", now=LATER)

    assert seen == [
        (1, "senior_support", Priority.normal, None),
        (2, "service_manager", Priority.high, None),
        (3, "service_manager", Priority.urgent, None),
    ]
    assert raised.value.code == "escalation_limit"
    assert ticket.escalation_level == MAX_ESCALATION_LEVEL
    events = ticket.take_events()
    escalated = [e for e in events if isinstance(e, TicketEscalated)]
    assert [(e.level, e.reason) for e in escalated] == [
        (1, "requester_request"),
        (2, "agent"),
        (3, "agent"),
    ]
    raised_priorities = [e for e in events if isinstance(e, TicketPriorityChanged)]
    assert [(e.old, e.new, e.reason) for e in raised_priorities] == [
        (Priority.low, Priority.normal, "escalated:requester_request"),
        (Priority.normal, Priority.high, "escalated:agent"),
        (Priority.high, Priority.urgent, "escalated:agent"),
    ]


def test_escalating_an_urgent_ticket_keeps_it_urgent_and_emits_no_priority_change() -> None:
    ticket = fresh_ticket(priority=Priority.urgent)

    ticket.escalate(reason="agent", now=LATER)

    assert ticket.priority == Priority.urgent
    assert types_of(ticket.take_events()) == ["helpstream.ticket.escalated"]


def test_a_policy_without_priority_raise_only_moves_level_and_group() -> None:
    policy = EscalationPolicy(groups={1: "tier2"}, raise_priority=False)
    ticket = fresh_ticket()

    ticket.escalate(reason="agent", now=LATER, policy=policy)
    ticket.escalate(reason="agent", now=LATER, policy=policy)

    assert (ticket.escalation_level, ticket.group, ticket.priority) == (2, "tier2", Priority.normal)
    assert DEFAULT_ESCALATION.group_for(7, "payments") == "payments"


def test_the_same_cause_escalates_once() -> None:
    ticket = fresh_ticket()

    first = ticket.escalate(reason="sla_breach", now=LATER, cause_id="evt-breach-1")
    again = ticket.escalate(reason="sla_breach", now=LATER, cause_id="evt-breach-1")

    assert (first, again) == (True, False)
    assert ticket.escalation_level == 1
    assert ticket.escalation_causes == ["evt-breach-1"]
    escalated = [e for e in ticket.take_events() if isinstance(e, TicketEscalated)]
    assert [(e.level, e.cause_id) for e in escalated] == [(1, "evt-breach-1")]


def test_an_automatic_cause_at_the_top_level_is_recorded_but_raises_nothing() -> None:
    ticket = fresh_ticket()
    for _ in range(MAX_ESCALATION_LEVEL):
        ticket.escalate(reason="agent", now=LATER)
    ticket.take_events()

    applied = ticket.escalate(reason="low_rating", now=LATER, cause_id="evt-rating-1")

    assert applied is False
    assert ticket.escalation_causes == ["evt-rating-1"]
    assert ticket.take_events() == []


def test_a_closed_ticket_ignores_automatic_causes_and_refuses_people() -> None:
    ticket = at_status(Status.closed)

    assert ticket.escalate(reason="sla_breach", now=LATER, cause_id="evt-1") is False
    with pytest.raises(TicketClosed):
        ticket.escalate(reason="requester_request", now=LATER)
    assert ticket.escalation_level == 0
    assert ticket.take_events() == []


@given(
    causes=st.lists(st.sampled_from(["c1", "c2", "c3", "c4", "c5"]), max_size=12),
    priority=st.sampled_from(PRIORITY_ORDER),
)
def test_distinct_causes_escalate_once_each_up_to_the_limit(
    causes: list[str], priority: Priority
) -> None:
    ticket = fresh_ticket(priority=priority)

    for cause in causes:
        ticket.escalate(reason="sla_breach", now=LATER, cause_id=cause)

    distinct = list(dict.fromkeys(causes))
    assert ticket.escalation_level == min(len(distinct), MAX_ESCALATION_LEVEL)
    assert ticket.escalation_causes == distinct
    steps = min(PRIORITY_ORDER.index(priority) + ticket.escalation_level, len(PRIORITY_ORDER) - 1)
    assert ticket.priority == PRIORITY_ORDER[steps]
    escalated = [e for e in ticket.take_events() if isinstance(e, TicketEscalated)]
    assert [e.level for e in escalated] == list(range(1, ticket.escalation_level + 1))


# --- how much a ticket may hold ------------------------------------------------------------


def test_a_ticket_with_the_most_messages_refuses_another_and_stays_unchanged() -> None:
    ticket = fresh_ticket()
    limits = TicketLimits(max_messages=3, max_text_bytes=1_000_000)
    for i in range(3):
        ticket.add_message(
            message_id=f"m-{i}",
            author=Author.requester,
            author_id=None,
            body="hi",
            public=True,
            now=LATER,
            limits=limits,
        )
    ticket.take_events()

    with pytest.raises(TicketMessageLimit) as refused:
        ticket.add_message(
            message_id="m-4",
            author=Author.agent,
            author_id="a",
            body="hi",
            public=True,
            now=LATER,
            limits=limits,
        )

    assert refused.value.code == "ticket_message_limit"
    assert len(ticket.messages) == 3
    assert ticket.take_events() == []


def test_a_redaction_notice_counts_towards_the_message_limit() -> None:
    ticket = fresh_ticket()
    limits = TicketLimits(max_messages=1, max_text_bytes=1_000_000)

    with pytest.raises(TicketMessageLimit):
        ticket.add_message(
            message_id="m-1",
            author=Author.requester,
            author_id=None,
            body="[REDACTED]",
            public=True,
            now=LATER,
            warning=("w-1", "never share your seed"),
            limits=limits,
        )


def test_a_message_that_would_exceed_the_ticket_size_is_refused_counting_utf8_bytes() -> None:
    ticket = fresh_ticket(subject="s", description="d")
    limits = TicketLimits(max_messages=100, max_text_bytes=2 + 30)
    reply(ticket, Author.requester, body="你" * 10)  # 30 bytes: exactly full

    with pytest.raises(TicketTooLarge) as refused:
        ticket.add_message(
            message_id="m-2",
            author=Author.requester,
            author_id=None,
            body="x",
            public=True,
            now=LATER,
            limits=limits,
        )

    assert refused.value.code == "ticket_too_large"
    assert ticket.text_size() == 32
    assert len(ticket.messages) == 1
