"""Tickets: the aggregate, its status machine and the events each change causes.

Pure: no I/O. Handlers load a `Ticket`, call methods, then store it together with the
events it collected (`ticket.pending_events`) in one write, the outbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from shared.events import (
    ArticleSuggestion,
    Author,
    Category,
    Channel,
    Contract,
    CryptoContext,
    Priority,
    Requester,
    Status,
    TicketAssigned,
    TicketCreated,
    TicketEscalated,
    TicketLinkedToIncident,
    TicketMessageAdded,
    TicketPriorityChanged,
    TicketRef,
    TicketReopened,
    TicketSolvedByArticle,
    TicketStatusChanged,
    TicketSummary,
    TicketUnlinkedFromIncident,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from shared.commands import Attachment

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.new: frozenset({Status.open, Status.pending, Status.on_hold, Status.solved}),
    Status.open: frozenset({Status.pending, Status.on_hold, Status.solved}),
    Status.pending: frozenset({Status.open, Status.solved}),
    Status.on_hold: frozenset({Status.open, Status.solved}),
    Status.solved: frozenset({Status.open, Status.closed}),
    Status.closed: frozenset(),
}
PRIORITY_ORDER = (Priority.low, Priority.normal, Priority.high, Priority.urgent)
MAX_ESCALATION_LEVEL = 3
EscalationReason = Literal["requester_request", "agent", "sla_breach", "low_rating"]


class DomainError(Exception):
    """A request the ticket's current state does not allow; `code` is machine-readable."""

    code = "domain_error"


class IllegalTransition(DomainError):
    code = "illegal_transition"

    def __init__(self, current: Status, wanted: Status) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (the ticket is closed)"
        super().__init__(f"status {current} cannot change to {wanted}; allowed: {allowed}")
        self.current = current
        self.wanted = wanted


class TicketClosed(DomainError):
    code = "ticket_closed"

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} is closed; open a new ticket instead")


class AlreadySolved(DomainError):
    """An article can solve a ticket that is still waiting for an answer, once."""

    code = "already_solved"

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} is already solved")


class EscalationLimit(DomainError):
    code = "escalation_limit"

    def __init__(self) -> None:
        super().__init__(f"the ticket is already at the highest level ({MAX_ESCALATION_LEVEL})")


@dataclass(frozen=True)
class TicketLimits:
    """How much one ticket may hold. Anyone with a status link can repeat a reply, and every
    change loads and rewrites the whole ticket (MongoDB refuses documents over 16 MiB)."""

    max_messages: int = 500
    max_text_bytes: int = 4_000_000  # UTF-8 of subject, description and every message body


DEFAULT_LIMITS = TicketLimits()


class TicketLimitExceeded(DomainError):
    """The ticket is full; `limit` names which limit (a metric label)."""

    limit = "unknown"


class TicketMessageLimit(TicketLimitExceeded):
    code = "ticket_message_limit"
    limit = "messages"

    def __init__(self, ticket_id: str, maximum: int) -> None:
        super().__init__(
            f"ticket {ticket_id} holds the most messages a ticket may ({maximum}); "
            "open a new ticket instead"
        )


class TicketTooLarge(TicketLimitExceeded):
    code = "ticket_too_large"
    limit = "size"

    def __init__(self, ticket_id: str, maximum: int) -> None:
        super().__init__(
            f"this message would take ticket {ticket_id} over {maximum} bytes of text; "
            "send a shorter message or open a new ticket"
        )


_NUMBER = re.compile(r"#?([0-9]{1,15})")


def ticket_number(reference: str) -> int | None:
    """The number in what a person typed (`482913` or `#482913`); None for anything else,
    such as a ticket id (UUIDs always hold a letter or a hyphen)."""
    match = _NUMBER.fullmatch(reference.strip())
    return int(match.group(1)) if match else None


def show_number(number: int | None) -> str | None:
    return f"#{number}" if number is not None else None


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


@dataclass(frozen=True)
class Message:
    id: str
    author: Author
    author_id: str | None
    body: str
    public: bool
    created_at: datetime
    secret_redacted: bool = False
    unverified: bool = False  # claimed to be the requester's; held internal, never theirs
    claimed_from: str | None = None  # who an unverified sender said they were (redacted)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class EscalationPolicy:
    """Who takes a ticket at each level, and whether escalating raises its priority."""

    groups: dict[int, str]
    raise_priority: bool = True

    def group_for(self, level: int, current: str) -> str:
        return self.groups.get(level, current)


DEFAULT_ESCALATION = EscalationPolicy(
    groups={1: "senior_support", 2: "service_manager", 3: "service_manager"}
)


def raise_one(priority: Priority) -> Priority:
    index = PRIORITY_ORDER.index(priority)
    return PRIORITY_ORDER[min(index + 1, len(PRIORITY_ORDER) - 1)]


@dataclass
class Ticket:
    id: str
    requester: Requester
    channel: Channel
    subject: str
    description: str
    category: Category
    priority: Priority
    group: str
    created_at: datetime
    updated_at: datetime
    status: Status = Status.new
    assignee: str | None = None
    escalation_level: int = 0
    crypto: CryptoContext | None = None
    attachments: list[Attachment] = field(default_factory=list)
    secret_redacted: bool = False
    messages: list[Message] = field(default_factory=list)
    escalation_causes: list[str] = field(default_factory=list)
    number: int | None = None  # what people say and type: shown as "#482913"
    follow_up_of: TicketRef | None = None
    incident_id: str | None = None  # the incident this ticket is one of
    version: int = 0
    pending_events: list[Contract] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        *,
        ticket_id: str,
        requester: Requester,
        channel: Channel,
        subject: str,
        description: str,
        category: Category,
        priority: Priority,
        group: str,
        now: datetime,
        crypto: CryptoContext | None = None,
        attachments: list[Attachment] | None = None,
        secret_redacted: bool = False,
        warning: tuple[str, str] | None = None,
        number: int | None = None,
        follow_up_of: TicketRef | None = None,
        suggested_articles: Sequence[ArticleSuggestion] = (),
    ) -> Ticket:
        """`warning` is (message id, text) of the security notice owed after a redaction."""
        ticket = cls(
            id=ticket_id,
            requester=requester,
            channel=channel,
            subject=subject,
            description=description,
            category=category,
            priority=priority,
            group=group,
            created_at=now,
            updated_at=now,
            crypto=crypto,
            attachments=list(attachments or []),
            secret_redacted=secret_redacted,
            number=number,
            follow_up_of=follow_up_of,
        )
        ticket._emit(
            TicketCreated(
                ticket_id=ticket_id,
                ticket=ticket.summary(),
                requester=requester,
                subject=subject,
                crypto=crypto,
                secret_redacted=secret_redacted,
                follow_up_of=follow_up_of,
                suggested_articles=list(suggested_articles),
            )
        )
        if warning is not None:
            ticket._system_notice(warning[0], warning[1], now)
        return ticket

    def ref(self) -> TicketRef:
        return TicketRef(id=self.id, number=self.number)

    def summary(self) -> TicketSummary:
        return TicketSummary(
            number=self.number,
            status=self.status,
            priority=self.priority,
            category=self.category,
            channel=self.channel,
            group=self.group,
            assignee=self.assignee,
            escalation_level=self.escalation_level,
            requester_id=self.requester.id,
            requester_tier=self.requester.tier,
            created_at=self.created_at,
        )

    # --- changes ------------------------------------------------------------------

    def change_status(self, wanted: Status, now: datetime) -> None:
        if wanted == self.status:
            return
        if wanted not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, wanted)
        old = self.status
        self.status = wanted
        self.updated_at = now
        if old == Status.solved and wanted == Status.open:
            self._emit(TicketReopened(ticket_id=self.id, ticket=self.summary(), reason="agent"))
        self._emit(
            TicketStatusChanged(ticket_id=self.id, ticket=self.summary(), old=old, new=wanted)
        )

    def add_message(
        self,
        *,
        message_id: str,
        author: Author,
        author_id: str | None,
        body: str,
        public: bool,
        now: datetime,
        secret_redacted: bool = False,
        warning: tuple[str, str] | None = None,
        limits: TicketLimits = DEFAULT_LIMITS,
        claimed_from: str | None = None,
        unverified: bool = False,
        attachments: Sequence[Attachment] = (),
    ) -> Message:
        """A requester reply reopens a solved ticket and answers a pending one; an agent's
        first public reply opens a new ticket. A full ticket refuses the message.

        `unverified`: someone claims to be the requester but could not be shown to be (mail
        from another address). The message is kept as an internal note flagged unverified
        and changes nothing else: a spoofed mail must neither speak for the requester nor
        reopen, answer or close anything."""
        if self.status == Status.closed:
            raise TicketClosed(self.id)
        if unverified:
            public, warning = False, None
        adding = [body] if warning is None else [body, warning[1]]
        if len(self.messages) + len(adding) > limits.max_messages:
            raise TicketMessageLimit(self.id, limits.max_messages)
        if self.text_size() + sum(map(utf8_size, adding)) > limits.max_text_bytes:
            raise TicketTooLarge(self.id, limits.max_text_bytes)
        message = Message(
            message_id,
            author,
            author_id,
            body,
            public,
            now,
            secret_redacted,
            unverified=unverified,
            claimed_from=claimed_from if unverified else None,
            attachments=tuple(attachments),
        )
        self.messages.append(message)
        self.updated_at = now
        if secret_redacted:
            self.secret_redacted = True
        self._emit(
            TicketMessageAdded(
                ticket_id=self.id,
                ticket=self.summary(),
                message_id=message_id,
                author=author,
                public=public,
                body=body if public else None,
                secret_redacted=secret_redacted,
                unverified=unverified,
            )
        )
        if unverified:
            return message
        if author == Author.requester:
            if self.status == Status.solved:
                old, self.status = self.status, Status.open
                self._emit(TicketReopened(ticket_id=self.id, ticket=self.summary()))
                self._emit(
                    TicketStatusChanged(
                        ticket_id=self.id, ticket=self.summary(), old=old, new=Status.open
                    )
                )
            elif self.status == Status.pending:
                self.change_status(Status.open, now)
        elif author == Author.agent and public and self.status == Status.new:
            self.change_status(Status.open, now)
        if warning is not None:
            self._system_notice(warning[0], warning[1], now)
        return message

    def change_priority(self, wanted: Priority, now: datetime, reason: str | None = None) -> None:
        if wanted == self.priority:
            return
        self._ensure_open_for_changes()
        old, self.priority, self.updated_at = self.priority, wanted, now
        self._emit(
            TicketPriorityChanged(
                ticket_id=self.id, ticket=self.summary(), old=old, new=wanted, reason=reason
            )
        )

    def assign(self, *, assignee: str | None, group: str | None, now: datetime) -> None:
        new_assignee = assignee if assignee is not None else self.assignee
        new_group = group if group is not None else self.group
        if (new_assignee, new_group) == (self.assignee, self.group):
            return
        self._ensure_open_for_changes()
        self.assignee, self.group, self.updated_at = new_assignee, new_group, now
        self._emit(
            TicketAssigned(
                ticket_id=self.id, ticket=self.summary(), assignee=new_assignee, group=new_group
            )
        )

    def escalate(
        self,
        *,
        reason: EscalationReason,
        now: datetime,
        policy: EscalationPolicy = DEFAULT_ESCALATION,
        cause_id: str | None = None,
    ) -> bool:
        """Raise the level by one. An automatic cause escalates at most once (False when
        already applied or at the top); a person asking at the top gets `EscalationLimit`."""
        if cause_id is not None and cause_id in self.escalation_causes:
            return False
        if self.status == Status.closed:
            if cause_id is not None:
                return False
            raise TicketClosed(self.id)
        if self.escalation_level >= MAX_ESCALATION_LEVEL:
            if cause_id is not None:
                self.escalation_causes.append(cause_id)
                return False
            raise EscalationLimit()
        if cause_id is not None:
            self.escalation_causes.append(cause_id)
        self.escalation_level += 1
        self.updated_at = now
        self.group = policy.group_for(self.escalation_level, self.group)
        self.assignee = None
        self._emit(
            TicketEscalated(
                ticket_id=self.id,
                ticket=self.summary(),
                level=self.escalation_level,
                reason=reason,
                cause_id=cause_id,
            )
        )
        if policy.raise_priority and self.priority != Priority.urgent:
            self.change_priority(raise_one(self.priority), now, reason=f"escalated:{reason}")
        return True

    # --- incidents ----------------------------------------------------------------

    def link_to_incident(
        self, incident_id: str, now: datetime, by: Literal["scope", "agent"] = "scope"
    ) -> bool:
        """False when already linked to it. An agent may move a ticket to another incident."""
        if self.incident_id == incident_id:
            return False
        self._ensure_open_for_changes()
        if self.incident_id is not None:
            self.unlink_from_incident(self.incident_id, now)
        self.incident_id, self.updated_at = incident_id, now
        self._emit(
            TicketLinkedToIncident(
                ticket_id=self.id, ticket=self.summary(), incident_id=incident_id, by=by
            )
        )
        return True

    def unlink_from_incident(self, incident_id: str, now: datetime) -> bool:
        if self.incident_id != incident_id:
            return False
        self.incident_id, self.updated_at = None, now
        self._emit(
            TicketUnlinkedFromIncident(
                ticket_id=self.id, ticket=self.summary(), incident_id=incident_id
            )
        )
        return True

    def resolve_by_incident(
        self,
        *,
        incident_id: str,
        message_id: str,
        text: str,
        outcome: Status,
        now: datetime,
    ) -> bool:
        """The incident's resolution as a public system message, then `outcome` (solved or
        pending) where the status machine allows it. False when done before, or when the
        ticket has left the incident or was closed meanwhile."""
        if self.incident_id != incident_id or self.status == Status.closed:
            return False
        if any(m.id == message_id for m in self.messages):
            return False
        self._system_notice(message_id, text, now, incident_id=incident_id)
        self.updated_at = now
        if outcome != self.status and outcome in TRANSITIONS[self.status]:
            old, self.status = self.status, outcome
            self._emit(
                TicketStatusChanged(
                    ticket_id=self.id,
                    ticket=self.summary(),
                    old=old,
                    new=outcome,
                    incident_id=incident_id,
                )
            )
        return True

    def solve_by_article(self, article_id: str, language: str, now: datetime) -> None:
        """The requester says a help article answered them: solved, as a deflection."""
        if self.status == Status.closed:
            raise TicketClosed(self.id)
        if self.status == Status.solved:
            raise AlreadySolved(self.id)
        old = self.status
        self.status, self.updated_at = Status.solved, now
        self._emit(
            TicketSolvedByArticle(
                ticket_id=self.id,
                ticket=self.summary(),
                article_id=article_id,
                language=language,
                old=old,
            )
        )
        self._emit(
            TicketStatusChanged(ticket_id=self.id, ticket=self.summary(), old=old, new=self.status)
        )

    # --- helpers ------------------------------------------------------------------

    def text_size(self) -> int:
        """UTF-8 bytes of the ticket's text, what `TicketLimits.max_text_bytes` bounds."""
        texts = (self.subject, self.description, *(m.body for m in self.messages))
        return sum(map(utf8_size, texts))

    def take_events(self) -> list[Contract]:
        events, self.pending_events = self.pending_events, []
        return events

    def _ensure_open_for_changes(self) -> None:
        if self.status == Status.closed:
            raise TicketClosed(self.id)

    def _system_notice(
        self, message_id: str, text: str, now: datetime, *, incident_id: str | None = None
    ) -> None:
        """A public message from helpstream itself; `incident_id` when it closes an incident."""
        self.messages.append(Message(message_id, Author.system, None, text, True, now))
        self._emit(
            TicketMessageAdded(
                ticket_id=self.id,
                ticket=self.summary(),
                message_id=message_id,
                author=Author.system,
                public=True,
                body=text,
                incident_id=incident_id,
            )
        )

    def _emit(self, event: Contract) -> None:
        self.pending_events.append(event)
