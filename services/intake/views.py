"""What the HTTP API returns about a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from services.intake.domain import show_number
from shared.commands import Attachment
from shared.events import (
    Author,
    Category,
    Channel,
    CryptoContext,
    Priority,
    Requester,
    Status,
    TicketRef,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from services.intake.domain import Message, Ticket


class MessageView(BaseModel):
    id: str
    author: Author
    author_id: str | None
    body: str
    public: bool
    created_at: datetime
    secret_redacted: bool
    unverified: bool = Field(
        False,
        description="Unverified sender: someone claimed to be the requester (mail from "
        "another address). Held as an internal note; never the requester's words.",
    )
    claimed_from: str | None = Field(None, description="Who an unverified sender claimed to be.")
    attachments: list[Attachment] = Field(default_factory=list)

    @classmethod
    def of(cls, message: Message) -> MessageView:
        return cls(**{**message.__dict__, "attachments": list(message.attachments)})


class TicketView(BaseModel):
    id: str
    number: int | None = Field(
        None,
        description="The number people say and type; accepted wherever the id is.",
        examples=[482913],
    )
    reference: str | None = Field(
        None, description="The number as shown to people.", examples=["#482913"]
    )
    follow_up_of: TicketRef | None = Field(
        None, description="The earlier ticket this one follows up."
    )
    follow_ups: list[TicketRef] = Field(
        default_factory=list, description="Later tickets that follow this one up."
    )
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
    def of(
        cls, ticket: Ticket, *, internal: bool = True, follow_ups: Sequence[TicketRef] = ()
    ) -> TicketView:
        """`internal=False` leaves out internal notes and held unverified messages (for
        callers that are not agents)."""
        return cls(
            id=ticket.id,
            number=ticket.number,
            reference=show_number(ticket.number),
            follow_up_of=ticket.follow_up_of,
            follow_ups=list(follow_ups),
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
