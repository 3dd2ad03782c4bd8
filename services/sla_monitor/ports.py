"""What sla_monitor needs from its storage, in its own terms.

Handlers speak these types only; how they are kept (MongoDB documents written through
the shared unit of work in `store.py`, dicts in `memory_store.py`) stays behind
`SlaRepository`. Both implementations pass one contract suite
(`tests/contract/sla_repository.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime

    from services.sla_monitor.domain import TicketSla
    from services.sla_monitor.policy import PolicySet
    from shared.events import Outgoing


@dataclass(frozen=True)
class SlaChange:
    """A ticket's SLA as it is now, to be saved only if nobody changed it since it was
    read at `sla.version` (or, when `new`, only if nobody created it meanwhile)."""

    sla: TicketSla
    next_due: datetime | None  # when its timers next need the timer loop
    events: Sequence[Outgoing] = ()  # published with the change, never without it
    seen: Sequence[str] = ()  # the ticket events it applies, remembered for redeliveries
    new: bool = False
    urgent: bool = False  # timer fires: published before any backlog of ordinary events


class SlaRepository(Protocol):
    """One SLA state per ticket, the policy versions tickets are pinned to, and the
    deployment-wide count of open timers."""

    async def register(self, current: PolicySet) -> dict[str, PolicySet]:
        """Numbers the current policy version if it is new (once, whichever instance is
        first); returns every known version by its label (`v<number>-<hash>`)."""
        ...

    async def find_versions(self, labels: Collection[str]) -> dict[str, PolicySet]:
        """Stored versions by the label tickets pin (or a bare content hash), whichever
        instance registered them; unknown labels are left out."""
        ...

    async def load(self, ticket_ids: Sequence[str]) -> dict[str, tuple[TicketSla, set[str]]]:
        """Each existing ticket's SLA with the ids of the ticket events it applied."""
        ...

    async def get(self, ticket_id: str) -> TicketSla | None: ...

    async def due(self, partition: int, until: datetime, limit: int) -> list[TicketSla]:
        """Tickets of one partition whose next due time is at or before `until`,
        soonest first."""
        ...

    async def save(self, changes: Sequence[SlaChange], now: datetime) -> int:
        """Writes every change that still can; returns how many lost a race (their ticket
        changed, or was created, since it was read). Those are not written at all."""
        ...

    async def applied(self, markers: Mapping[str, str]) -> set[str]:
        """Of these tickets, those that applied their marker (a ticket event id a change
        saved): which changes of a batch that lost some races were written."""
        ...

    async def add_open(self, delta: Mapping[str, int]) -> dict[str, int]:
        """Moves the open-timer counts per metric; returns them after the move."""
        ...

    async def open_counts(self) -> dict[str, int] | None:
        """The kept open-timer counts; None if nobody has counted yet."""
        ...

    async def reconcile_open(self, at: datetime) -> dict[str, int]:
        """Recounts the open timers of every ticket and replaces the kept counts."""
        ...

    async def at_risk_counts(self) -> dict[str, int]:
        """Per metric, tickets with a timer warned and not yet breached or stopped."""
        ...
