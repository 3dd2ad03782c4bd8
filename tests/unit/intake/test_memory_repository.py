"""The in-memory ticket repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from services.intake.memory_store import MemoryTicketRepository
from tests.contract.ticket_repository import Harness, TicketRepositoryContract

if TYPE_CHECKING:
    from shared.events import Outgoing


@dataclass(frozen=True)
class MemoryHarness:
    repository: MemoryTicketRepository

    async def pending(self) -> list[Outgoing]:
        return list(self.repository.published)


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemoryTicketRepository())


class TestMemoryTicketRepository(TicketRepositoryContract):
    pass
