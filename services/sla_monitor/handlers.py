"""Ticket events in, clocks out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.sla_monitor.domain import first_reply_clock
from shared.events import TicketCreated
from shared.kafka import decode_events

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka.structs import ConsumerRecord

    from services.sla_monitor.store import ClockStore
    from shared.kafka import Rejected

TICKET_EVENTS = frozenset({TicketCreated.event_type})


async def on_ticket_events(
    records: Sequence[ConsumerRecord[bytes, bytes]], store: ClockStore
) -> Sequence[Rejected]:
    accepted, rejected = decode_events(records)
    clocks = [
        first_reply_clock(
            item.value.data.ticket_id,
            item.value.data.ticket.priority,
            item.value.data.ticket.created_at,
            item.record.partition,
        )
        for item in accepted
        if isinstance(item.value.data, TicketCreated)
    ]
    await store.start_clocks(clocks)
    return rejected
