"""The in-memory feedback repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

import pytest

from services.feedback.memory_store import MemoryFeedbackRepository
from tests.contract.feedback_repository import FeedbackRepositoryContract, Harness
from tests.contract.harnesses import MemoryHarness


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemoryFeedbackRepository())


class TestMemoryFeedbackRepository(FeedbackRepositoryContract):
    pass
