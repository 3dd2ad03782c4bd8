"""`TicketRepository` in memory, for unit tests: dicts, and the events a change would
publish kept in `published`, in the order they were written."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from services.intake.domain import ticket_number
from shared.events import TicketRef

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from services.intake.domain import Ticket
    from services.intake.ports import NewTicket, TicketChange
    from shared.events import Outgoing, Status

APPLIED_KEEP = 500  # as the MongoDB store: older ids are forgotten
FIRST_NUMBER = 100_001


@dataclass
class _Stored:
    ticket: Ticket
    applied: list[str]
    open_key: str | None = None
    request_hash: str | None = None


def _copy(ticket: Ticket) -> Ticket:
    return replace(copy.deepcopy(ticket), pending_events=[])


class MemoryTicketRepository:
    def __init__(self) -> None:
        self.tickets: dict[str, _Stored] = {}
        self.published: list[Outgoing] = []
        self._issued = 0

    async def insert(
        self,
        ticket: Ticket,
        events: Sequence[Outgoing],
        now: datetime,
        *,
        open_key: str | None = None,
        request_hash: str | None = None,
    ) -> bool:
        taken = open_key is not None and any(s.open_key == open_key for s in self.tickets.values())
        if taken or ticket.id in self.tickets:
            return False
        self.tickets[ticket.id] = _Stored(_copy(ticket), [], open_key, request_hash)
        self.published.extend(events)
        return True

    async def insert_group(self, news: Sequence[NewTicket]) -> list[bool | BaseException]:
        return [
            await self.insert(
                n.ticket, n.events, n.now, open_key=n.open_key, request_hash=n.request_hash
            )
            for n in news
        ]

    async def insert_many(
        self, tickets: Sequence[tuple[Ticket, Sequence[Outgoing], str]], now: datetime
    ) -> list[int]:
        return [
            i
            for i, (ticket, events, key) in enumerate(tickets)
            if await self.insert(ticket, events, now, open_key=key)
        ]

    async def next_numbers(self, count: int) -> range:
        self._issued += count
        end = FIRST_NUMBER + self._issued
        return range(end - count, end)

    async def resolve(self, reference: str) -> str | None:
        number = ticket_number(reference)
        if number is None:
            return reference
        return next((t for t, s in self.tickets.items() if s.ticket.number == number), None)

    async def resolve_many(self, references: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for reference in references:
            found = await self.resolve(reference)
            if found is not None:
                out[reference] = found
        return out

    async def owners(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketRef, str]]:
        return {
            t: (TicketRef(id=t, number=s.ticket.number), s.ticket.requester.id)
            for t in ticket_ids
            if (s := self.tickets.get(t)) is not None
        }

    async def follow_ups(self, ticket_ids: Sequence[str]) -> dict[str, list[TicketRef]]:
        found: dict[str, list[TicketRef]] = {}
        for ticket_id in sorted(self.tickets):
            ticket = self.tickets[ticket_id].ticket
            if ticket.follow_up_of is not None and ticket.follow_up_of.id in ticket_ids:
                found.setdefault(ticket.follow_up_of.id, []).append(
                    TicketRef(id=ticket.id, number=ticket.number)
                )
        return found

    async def by_open_key(self, open_key: str) -> tuple[Ticket, str | None] | None:
        for stored in self.tickets.values():
            if stored.open_key == open_key:
                return _copy(stored.ticket), stored.request_hash
        return None

    async def get(self, ticket_id: str) -> Ticket | None:
        stored = self.tickets.get(ticket_id)
        return _copy(stored.ticket) if stored else None

    async def get_applied(self, ticket_id: str) -> tuple[Ticket, list[str]] | None:
        stored = self.tickets.get(ticket_id)
        return (_copy(stored.ticket), list(stored.applied)) if stored else None

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, tuple[Ticket, set[str]]]:
        return {
            t: (_copy(s.ticket), set(s.applied))
            for t in ticket_ids
            if (s := self.tickets.get(t)) is not None
        }

    async def save_many(self, changes: Sequence[TicketChange], now: datetime) -> int:
        written = 0
        for change in changes:
            stored = self.tickets.get(change.ticket.id)
            if stored is None or stored.ticket.version != change.ticket.version:
                continue
            saved = _copy(change.ticket)
            saved.version += 1
            stored.ticket = saved
            stored.applied = (stored.applied + list(change.applied))[-APPLIED_KEEP:]
            self.published.extend(change.events)
            written += 1
        return written

    async def list(
        self, *, requester_id: str | None, status: Status | None, before: str | None, limit: int
    ) -> list[Ticket]:
        found = [
            s.ticket
            for t, s in sorted(self.tickets.items(), reverse=True)
            if (requester_id is None or s.ticket.requester.id == requester_id)
            and (status is None or s.ticket.status == status)
            and (before is None or t < before)
        ]
        return [_copy(t) for t in found[:limit]]
