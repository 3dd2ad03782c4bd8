"""Ticket events in: remember each solve, which is what a survey asks about."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.events import Status, TicketStatusChanged
from shared.kafka import decode_events

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka.structs import ConsumerRecord

    from services.feedback.store import SolveStore
    from shared.kafka import Rejected


async def on_ticket_events(
    records: Sequence[ConsumerRecord[bytes, bytes]], store: SolveStore
) -> Sequence[Rejected]:
    accepted, rejected = decode_events(records)
    solves = []
    for item in accepted:
        data = item.value.data
        if isinstance(data, TicketStatusChanged) and data.new == Status.solved:
            solves.append(
                {
                    "_id": item.value.id,
                    "ticket_id": data.ticket_id,
                    "solved_at": item.value.time,
                    "agent": data.ticket.assignee,
                    "group": data.ticket.group,
                    "category": data.ticket.category.value,
                    "channel": data.ticket.channel.value,
                }
            )
    await store.record(solves)
    return rejected
