"""The in-memory SLA repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

import pytest

from services.sla_monitor.memory_store import MemorySlaRepository
from tests.contract.harnesses import MemoryHarness
from tests.contract.sla_repository import Harness, SlaRepositoryContract


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemorySlaRepository())


class TestMemorySlaRepository(SlaRepositoryContract):
    pass
