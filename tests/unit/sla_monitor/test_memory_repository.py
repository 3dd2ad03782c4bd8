"""The in-memory SLA repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from services.sla_monitor.memory_store import MemorySlaRepository
from tests.contract.sla_repository import Harness, SlaRepositoryContract

if TYPE_CHECKING:
    from shared.events import Outgoing


@dataclass(frozen=True)
class MemoryHarness:
    repository: MemorySlaRepository

    async def pending(self) -> list[Outgoing]:
        return list(self.repository.published)


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemorySlaRepository())


class TestMemorySlaRepository(SlaRepositoryContract):
    pass
