"""What the HTTP API returns about a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from shared.commands import Attachment
from shared.events import Author, Category, Channel, CryptoContext, Priority, Requester, Status

if TYPE_CHECKING:
    from services.intake.domain import Message, Ticket


class MessageView(BaseModel):
    id: str
    author: Author
    author_id: str | None
    body: str
    public: bool
    created_at: datetime
    secret_redacted: bool

    @classmethod
    def of(cls, message: Message) -> MessageView:
        return cls(**message.__dict__)


class TicketView(BaseModel):
    id: str
    status: Status
    priority: Priority
    category: Category
    channel: Channel
    group: str
    assignee: str | None
    escalation_level: int
    requester: Requester
    subject: str
    description: str
    crypto: CryptoContext | None
    attachments: list[Attachment]
    secret_redacted: bool
    messages: list[MessageView]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, ticket: Ticket, *, internal: bool = True) -> TicketView:
        """`internal=False` leaves out internal notes (for callers that are not agents)."""
        return cls(
            id=ticket.id,
            status=ticket.status,
            priority=ticket.priority,
            category=ticket.category,
            channel=ticket.channel,
            group=ticket.group,
            assignee=ticket.assignee,
            escalation_level=ticket.escalation_level,
            requester=ticket.requester,
            subject=ticket.subject,
            description=ticket.description,
            crypto=ticket.crypto,
            attachments=ticket.attachments,
            secret_redacted=ticket.secret_redacted,
            messages=[MessageView.of(m) for m in ticket.messages if internal or m.public],
            created_at=ticket.created_at,
            updated_at=ticket.updated_at,
        )


class TicketPage(BaseModel):
    items: list[TicketView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
