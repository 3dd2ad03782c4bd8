"""feedback's and notifier's erasers on the real database: a requester's erasure takes
everything of theirs, retention (`tickets_only`) only the named tickets' copies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient

from services.feedback.privacy import FeedbackEraser
from services.notifier.privacy import NotifierEraser
from services.notifier.store import NotifierStore
from shared.events import RequesterErasureRequested

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pymongo.asynchronous.database import AsyncDatabase

    from shared.infra.modes import Infra

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def db(infra: Infra, uid: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url)
    try:
        yield client[f"t{uid}_erasers"]
    finally:
        await client.close()


def request(ticket_ids: list[str], *, tickets_only: bool = False) -> RequesterErasureRequested:
    return RequesterErasureRequested(
        erasure_id="e-1",
        requester_id="u-1",
        pseudonym="erased-1",
        ticket_ids=ticket_ids,
        tickets_only=tickets_only,
    )


def survey(survey_id: str, ticket_id: str, requester_id: str) -> dict[str, Any]:
    return {
        "_id": survey_id,
        "ticket_id": ticket_id,
        "requester_id": requester_id,
        "subject": f"subject of {ticket_id}",
        "rating": {"score": 2, "comment": f"comment on {ticket_id}"},
    }


async def test_feedback_keeps_scores_and_loses_who_and_what_was_said(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    eraser = FeedbackEraser(db)
    await eraser.ensure_indexes()
    await db["surveys"].insert_many(
        [survey("s1", "T-1", "u-1"), survey("s2", "T-2", "u-1"), survey("s3", "T-3", "u-2")]
    )
    await db["surveys"].insert_one({**survey("s4", "T-4", "u-1"), "rating": None})
    await db["tickets"].insert_many([{"_id": f"T-{i}", "subject": f"s{i}"} for i in (1, 2, 3)])

    assert await eraser.erase(request(["T-1"], tickets_only=True)) == {
        "surveys": 1,
        "ticket_facts": 1,
    }
    s1 = await db["surveys"].find_one({"_id": "s1"})
    assert s1 is not None
    assert (s1["requester_id"], s1["subject"], s1["rating"]) == (
        "erased-1",
        None,
        {"score": 2, "comment": None},
    )
    assert (await db["surveys"].find_one({"_id": "s2"}) or {})["requester_id"] == "u-1"

    counts = await eraser.erase(request(["T-1", "T-2", "T-4"]))
    assert counts == {"surveys": 2, "ticket_facts": 1}  # s2, s4 (s1 was done); T-2
    assert await eraser.erase(request(["T-1", "T-2", "T-4"])) == {"surveys": 0, "ticket_facts": 0}
    other = await db["surveys"].find_one({"_id": "s3"})
    assert other == survey("s3", "T-3", "u-2")


async def test_notifier_forgets_the_requester_or_only_the_named_tickets(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    store = NotifierStore(db)
    eraser = NotifierEraser(db)
    await eraser.ensure_indexes()
    for t in ("T-1", "T-2"):
        await store.tickets.insert_one(
            {"_id": t, "requester": {"id": "u-1", "email": "li.wei@example.com"}}
        )
        await store.inbox.insert_one({"_id": f"i-{t}", "requester_id": "u-1", "ticket_id": t})
        await store.digests.insert_one({"_id": f"d-{t}", "ticket_id": t})
    await store.preferences.insert_one({"_id": "u-1", "opt_out": {}})
    await store.bouncing.insert_one({"_id": "li.wei@example.com", "until": NOW})

    retained = await eraser.erase(request(["T-1"], tickets_only=True))
    assert retained["ticket_facts"] == 1
    assert retained["inbox_items"] == 1
    assert retained["preferences"] == 0
    assert await store.preferences.count_documents({}) == 1
    assert await store.inbox.count_documents({}) == 1

    erased = await eraser.erase(request(["T-1", "T-2"]))
    assert erased["ticket_facts"] == 1
    assert erased["inbox_items"] == 1
    assert erased["preferences"] == 1
    assert erased["digests"] == 1
    assert erased["bounce_records"] == 1
    for collection in (store.tickets, store.inbox, store.preferences, store.digests):
        assert await collection.count_documents({}) == 0
