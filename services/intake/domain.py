"""Tickets: the aggregate, its status machine and the events each change causes.

Pure: no I/O. Handlers load a `Ticket`, call a method, and store it together with
`ticket.events` (the outbox) in one write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.events import (
    Author,
    Category,
    Channel,
    Contract,
    CryptoContext,
    Priority,
    Requester,
    Status,
    TicketCreated,
    TicketStatusChanged,
    TicketSummary,
)

if TYPE_CHECKING:
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


class IllegalTransition(Exception):
    def __init__(self, current: Status, wanted: Status) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (the ticket is closed)"
        super().__init__(f"a {current} ticket cannot become {wanted}; allowed: {allowed}")
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True)
class Message:
    id: str
    author: Author
    author_id: str | None
    body: str
    public: bool
    created_at: datetime
    secret_redacted: bool = False


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
    events: list[Contract] = field(default_factory=list)

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
    ) -> Ticket:
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
        )
        ticket.events.append(
            TicketCreated(
                ticket_id=ticket_id,
                ticket=ticket.summary(),
                requester=requester,
                subject=subject,
                crypto=crypto,
                secret_redacted=secret_redacted,
            )
        )
        return ticket

    def summary(self) -> TicketSummary:
        return TicketSummary(
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

    def change_status(self, wanted: Status, now: datetime) -> None:
        if wanted == self.status:
            return
        if wanted not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, wanted)
        old, self.status, self.updated_at = self.status, wanted, now
        self.events.append(
            TicketStatusChanged(ticket_id=self.id, ticket=self.summary(), old=old, new=wanted)
        )
