"""What intake's ticket handling needs from its storage, in its own terms.

`TicketService` and `IncidentService` speak these types only; how tickets are kept
(MongoDB documents written through the shared unit of work in `store.py`, dicts in
`memory_store.py`) stays behind `TicketRepository`. Both implementations pass one
contract suite (`tests/contract/ticket_repository.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from services.intake.domain import Ticket
    from shared.events import Outgoing, Status, TicketRef


@dataclass(frozen=True)
class NewTicket:
    """A ticket to insert with its first events; `open_key` (an Idempotency-Key) once only."""

    ticket: Ticket
    events: Sequence[Outgoing]
    now: datetime
    open_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True)
class TicketChange:
    """A ticket as it is now, to be saved only if nobody changed it since it was read at
    `ticket.version`, with the events it publishes and the ids of what it applied
    (command ids, Idempotency-Key records) for redeliveries to find."""

    ticket: Ticket
    events: Sequence[Outgoing] = ()
    applied: Sequence[str] = ()


class TicketRepository(Protocol):
    """Tickets, each change written together with the events it causes."""

    async def insert(
        self,
        ticket: Ticket,
        events: Sequence[Outgoing],
        now: datetime,
        *,
        open_key: str | None = None,
        request_hash: str | None = None,
    ) -> bool:
        """False when `open_key` was used before (an idempotent retry): nothing is written."""
        ...

    async def insert_group(self, news: Sequence[NewTicket]) -> list[bool | BaseException]:
        """Tickets opened by different requests, written together: for each, True when
        written, False when its `open_key` was used before, or the error of its own write.
        An error of the whole write raises."""
        ...

    async def insert_many(
        self, tickets: Sequence[tuple[Ticket, Sequence[Outgoing], str]], now: datetime
    ) -> list[int]:
        """(ticket, events, open_key) each; those whose key was used before are skipped.
        Returns the positions of the tickets written."""
        ...

    async def next_numbers(self, count: int) -> range:
        """`count` ticket numbers nobody has had, increasing; never handed out again."""
        ...

    async def resolve(self, reference: str) -> str | None:
        """The ticket id a caller means: a number (`482913`, `#482913`) is looked up, an
        id is taken as it is; None for a number no ticket has."""
        ...

    async def resolve_many(self, references: Sequence[str]) -> dict[str, str]:
        """`resolve` for a batch; unknown numbers left out."""
        ...

    async def owners(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketRef, str]]:
        """Each existing ticket's reference and requester id."""
        ...

    async def follow_ups(self, ticket_ids: Sequence[str]) -> dict[str, list[TicketRef]]:
        """The follow-up tickets of each ticket, oldest first."""
        ...

    async def by_open_key(self, open_key: str) -> tuple[Ticket, str | None] | None:
        """The ticket an Idempotency-Key opened, and the hash of the request that did."""
        ...

    async def get(self, ticket_id: str) -> Ticket | None: ...

    async def get_applied(self, ticket_id: str) -> tuple[Ticket, list[str]] | None:
        """The ticket with the ids of what was applied to it, oldest first."""
        ...

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, tuple[Ticket, set[str]]]:
        """Existing tickets by id, each with the ids of what was applied to it."""
        ...

    async def save_many(self, changes: Sequence[TicketChange], now: datetime) -> int:
        """Writes every change that still can; returns how many were written. A change
        whose ticket moved on since it was read is not written at all."""
        ...

    async def list(
        self, *, requester_id: str | None, status: Status | None, before: str | None, limit: int
    ) -> list[Ticket]:
        """Newest first (ids are time-ordered); `before` is the last id of the page."""
        ...
