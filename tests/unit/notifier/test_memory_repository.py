"""The in-memory notifier repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

import pytest

from services.notifier.memory_store import MemoryNotifierRepository
from tests.contract.harnesses import MemoryHarness
from tests.contract.notifier_repository import Harness, NotifierRepositoryContract


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemoryNotifierRepository())


class TestMemoryNotifierRepository(NotifierRepositoryContract):
    pass
