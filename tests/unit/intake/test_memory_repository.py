"""The in-memory ticket repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

import pytest

from services.intake.memory_store import MemoryTicketRepository
from tests.contract.harnesses import MemoryHarness
from tests.contract.ticket_repository import Harness, TicketRepositoryContract


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemoryTicketRepository())


class TestMemoryTicketRepository(TicketRepositoryContract):
    pass
