"""Incidents: one cause behind many tickets (a chain halt, a stuck withdrawal queue).

Pure: no I/O. An incident says which tickets it is about (its scope), what requesters are
told (public text in every requester language), and collects its events like a ticket
does. Which tickets match is decided here too, for the ticket-opening path and the sweep
alike, so both link exactly the same tickets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from services.intake.domain import DomainError
from shared.events import (
    Contract,
    IncidentDeclared,
    IncidentResolved,
    IncidentScope,
    IncidentText,
    IncidentUpdated,
    Status,
)

if TYPE_CHECKING:
    from datetime import datetime

    from shared.events import Category, CryptoContext

# A ticket is linked only while someone still waits on it.
LINKABLE = frozenset({Status.new, Status.open, Status.pending, Status.on_hold})
MAX_UPDATES = 200  # public updates one incident keeps (each is sent to every requester)
TicketOutcome = Literal["solved", "pending"]


class IncidentStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class IncidentNotFound(DomainError):
    code = "incident_not_found"

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"no incident {incident_id!r}")


class IncidentResolvedAlready(DomainError):
    code = "incident_resolved"

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id} is resolved; declare a new one")


class IncidentUpdateLimit(DomainError):
    code = "incident_update_limit"

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id} holds {MAX_UPDATES} updates already")


@dataclass(frozen=True)
class TicketFacts:
    """What matching looks at in a ticket."""

    category: Category
    crypto: CryptoContext | None
    subject: str
    description: str
    created_at: datetime
    status: Status
    incident_id: str | None = None


def _same(wanted: str | None, actual: str | None) -> bool:
    return wanted is None or (actual is not None and wanted.casefold() == actual.casefold())


def matches(scope: IncidentScope, ticket: TicketFacts) -> bool:
    """Every fact the scope names holds for the ticket; any one keyword is enough."""
    if scope.category is not None and ticket.category != scope.category:
        return False
    crypto = ticket.crypto
    if not _same(scope.asset, crypto.asset if crypto else None):
        return False
    if not _same(scope.network, crypto.network if crypto else None):
        return False
    if scope.opened_from is not None and ticket.created_at < scope.opened_from:
        return False
    if scope.opened_until is not None and ticket.created_at >= scope.opened_until:
        return False
    if scope.keywords:
        text = f"{ticket.subject}\n{ticket.description}".casefold()
        return any(word.casefold() in text for word in scope.keywords)
    return True


def linkable(scope: IncidentScope, ticket: TicketFacts) -> bool:
    """A ticket the scope links: still waiting on support, not linked elsewhere, matching."""
    return ticket.status in LINKABLE and ticket.incident_id is None and matches(scope, ticket)


@dataclass(frozen=True)
class IncidentUpdate:
    id: str
    text: IncidentText
    posted_at: datetime


@dataclass
class Incident:
    id: str
    title: IncidentText
    scope: IncidentScope
    status_text: IncidentText
    declared_at: datetime
    declared_by: str
    status: IncidentStatus = IncidentStatus.open
    updates: list[IncidentUpdate] = field(default_factory=list)
    resolution: IncidentText | None = None
    ticket_outcome: TicketOutcome = "solved"
    resolved_at: datetime | None = None
    version: int = 0
    pending_events: list[Contract] = field(default_factory=list)

    @classmethod
    def declare(
        cls,
        *,
        incident_id: str,
        title: IncidentText,
        scope: IncidentScope,
        status_text: IncidentText,
        by: str,
        now: datetime,
    ) -> Incident:
        incident = cls(incident_id, title, scope, status_text, now, by)
        incident.pending_events.append(
            IncidentDeclared(
                incident_id=incident_id,
                title=title,
                scope=scope,
                status_text=status_text,
                declared_by=by,
            )
        )
        return incident

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.open

    def accepts(self, ticket: TicketFacts) -> bool:
        """A new or swept ticket joins while the incident is open and the ticket matches."""
        return self.is_open and linkable(self.scope, ticket)

    def post_update(
        self, *, update_id: str, text: IncidentText, now: datetime, linked: int
    ) -> IncidentUpdate | None:
        """The update, or None when this update id was posted before (a redelivery)."""
        if any(u.id == update_id for u in self.updates):
            return None
        if not self.is_open:
            raise IncidentResolvedAlready(self.id)
        if len(self.updates) >= MAX_UPDATES:
            raise IncidentUpdateLimit(self.id)
        update = IncidentUpdate(update_id, text, now)
        self.updates.append(update)
        self.status_text = text
        self.pending_events.append(
            IncidentUpdated(incident_id=self.id, update_id=update_id, text=text, linked=linked)
        )
        return update

    def resolve(
        self, *, text: IncidentText, outcome: TicketOutcome, now: datetime, linked: int
    ) -> bool:
        """False when already resolved: resolving twice changes nothing."""
        if not self.is_open:
            return False
        self.status = IncidentStatus.resolved
        self.resolution, self.ticket_outcome, self.resolved_at = text, outcome, now
        self.status_text = text
        self.pending_events.append(
            IncidentResolved(incident_id=self.id, text=text, ticket_status=outcome, linked=linked)
        )
        return True

    def take_events(self) -> list[Contract]:
        events, self.pending_events = self.pending_events, []
        return events
