"""The in-memory feedback repository keeps the port's contract (as the MongoDB one does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from services.feedback.memory_store import MemoryFeedbackRepository
from tests.contract.feedback_repository import FeedbackRepositoryContract, Harness

if TYPE_CHECKING:
    from shared.events import Outgoing


@dataclass(frozen=True)
class MemoryHarness:
    repository: MemoryFeedbackRepository

    async def pending(self) -> list[Outgoing]:
        return list(self.repository.published)


@pytest.fixture
def harness() -> Harness:
    return MemoryHarness(MemoryFeedbackRepository())


class TestMemoryFeedbackRepository(FeedbackRepositoryContract):
    pass
