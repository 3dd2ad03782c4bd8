"""The MongoDB feedback repository keeps the port's contract (as the in-memory one does);
pending events are read from the outboxes, as the relay reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from services.feedback.settings import FeedbackSettings
from services.feedback.store import FeedbackStore
from tests.contract.feedback_repository import FeedbackRepositoryContract, Harness
from tests.contract.harnesses import MongoHarness, fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def harness(make_settings: Any) -> AsyncIterator[Harness]:
    async with fresh_database(make_settings(FeedbackSettings), "feedback") as db:
        store = FeedbackStore(db)
        await store.ensure_indexes()
        yield MongoHarness(store, store.surveys)


class TestMongoFeedbackRepository(FeedbackRepositoryContract):
    pass
