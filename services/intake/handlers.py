"""Use cases: take a command, apply it to the domain, store state and events together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.intake.domain import Ticket
from shared.events import Category, Priority, make_event
from shared.ids import new_id
from shared.outbox import outbox_entry

if TYPE_CHECKING:
    from services.intake.store import TicketStore
    from shared.clock import Clock
    from shared.commands import OpenTicket
    from shared.topics import Topics

SOURCE = "/helpstream/intake"


@dataclass(frozen=True)
class Opened:
    ticket: Ticket
    created: bool  # False: the same request was seen before; this is the first ticket


async def open_ticket(
    cmd: OpenTicket,
    *,
    store: TicketStore,
    clock: Clock,
    topics: Topics,
    correlation_id: str,
    ticket_id: str | None = None,
) -> Opened:
    now = clock.now()
    ticket = Ticket.open(
        ticket_id=ticket_id or new_id(),
        requester=cmd.requester,
        channel=cmd.channel,
        subject=cmd.subject,
        description=cmd.description,
        category=cmd.category or Category.other,
        priority=cmd.priority or Priority.normal,
        group="general",
        now=now,
        crypto=cmd.crypto,
        attachments=list(cmd.attachments),
    )
    outbox = [
        outbox_entry(
            topics.tickets,
            make_event(data, source=SOURCE, time=now, correlationid=correlation_id),
        )
        for data in ticket.events
    ]
    if await store.insert(ticket, outbox, now):
        return Opened(ticket, created=True)
    existing = await store.get(ticket.id)
    assert existing is not None
    return Opened(existing, created=False)
