"""feedback in MongoDB: per-ticket facts, and one survey document per solve.

`tickets` keeps what only `ticket.created` carries (locale, time zone, subject), and the
last `ticket.solved_by_article`, keyed by ticket id. `surveys` holds one document per
solve, keyed by an id derived from the solve event (with the help article that solved
it, if one did), with its last rating and its pending events (outbox) in the same
document: a survey and the event announcing it, or a rating and `feedback.submitted`,
are one write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, UpdateOne

from services.feedback.domain import (
    DIMENSIONS,
    SATISFIED_MIN,
    CsatCounts,
    GroupBy,
    Rating,
    SurveyStatus,
)
from shared.mongo import find_in, insert_new
from shared.outbox import OUTBOX, OUTBOX_SINCE, new_document_outbox, outbox_update

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.mongo import Document

HIDDEN = {OUTBOX: 0, OUTBOX_SINCE: 0}
COUNTED = [SurveyStatus.requested.value, SurveyStatus.answered.value]  # cancelled: not a solve


@dataclass(frozen=True)
class TicketFacts:
    ticket_id: str
    locale: str = "en"
    timezone: str = "UTC"
    subject: str | None = None
    # the last `ticket.solved_by_article`: the article and the solve it came with
    solved_by_article: tuple[str, datetime] | None = None


@dataclass(frozen=True)
class Written:
    inserted: list[int]  # positions of the surveys that were new
    cancelled: int


@dataclass(frozen=True)
class Survey:
    id: str
    ticket_id: str
    status: SurveyStatus
    solved_at: datetime
    expires_at: datetime
    correlation_id: str
    requester_id: str
    locale: str
    timezone: str
    subject: str | None
    agent: str | None
    group: str
    category: str
    channel: str
    revision: int
    rating: Rating | None
    reasons: tuple[str, ...]
    comment: str | None
    submitted_at: datetime | None
    follow_up_requested: bool = False  # a lead was asked already; never again for it


def survey_from_document(doc: Document) -> Survey:
    rating = doc.get("rating")
    return Survey(
        id=doc["_id"],
        ticket_id=doc["ticket_id"],
        status=SurveyStatus(doc["status"]),
        solved_at=doc["solved_at"],
        expires_at=doc["expires_at"],
        correlation_id=doc["correlation_id"],
        requester_id=doc["requester_id"],
        locale=doc.get("locale", "en"),
        timezone=doc.get("timezone", "UTC"),
        subject=doc.get("subject"),
        agent=doc.get("agent"),
        group=doc["group"],
        category=doc["category"],
        channel=doc["channel"],
        revision=doc.get("revision", 0),
        rating=(
            Rating(
                score=rating["score"],
                attitude=rating.get("attitude"),
                speed=rating.get("speed"),
                clarity=rating.get("clarity"),
            )
            if rating
            else None
        ),
        reasons=tuple(rating.get("reasons", ())) if rating else (),
        comment=rating.get("comment") if rating else None,
        submitted_at=rating.get("submitted_at") if rating else None,
        # Surveys rated before the flag existed: the last rating's own flag.
        follow_up_requested=doc.get("follow_up_requested_at") is not None
        or bool(rating and rating.get("needs_follow_up")),
    )


def csat_pipeline(group_by: GroupBy, start: datetime, end: datetime) -> list[Document]:
    """Sums per group (not averages), so the total row is the exact sum of the groups."""
    answered = {"$eq": ["$status", SurveyStatus.answered.value]}
    group: Document = {
        "_id": f"${group_by.value}",
        "surveys": {"$sum": 1},
        "responses": {"$sum": {"$cond": [answered, 1, 0]}},
        "satisfied": {"$sum": {"$cond": [{"$gte": ["$rating.score", SATISFIED_MIN]}, 1, 0]}},
        "score_sum": {"$sum": "$rating.score"},
        "deflected": {"$sum": {"$cond": [{"$ifNull": ["$article_id", False]}, 1, 0]}},
    }
    for name in DIMENSIONS:
        group[f"{name}_sum"] = {"$sum": f"$rating.{name}"}
        group[f"{name}_n"] = {"$sum": {"$cond": [{"$gte": [f"$rating.{name}", 1]}, 1, 0]}}
    return [
        {"$match": {"solved_at": {"$gte": start, "$lt": end}, "status": {"$in": COUNTED}}},
        {"$group": group},
        {"$sort": {"_id": ASCENDING}},
    ]


def counts_from_row(row: Document) -> CsatCounts:
    return CsatCounts(
        surveys=int(row["surveys"]),
        responses=int(row["responses"]),
        satisfied=int(row["satisfied"]),
        score_sum=int(row.get("score_sum") or 0),
        deflected=int(row.get("deflected") or 0),
        dimension_sums=tuple(int(row.get(f"{d}_sum") or 0) for d in DIMENSIONS),  # type: ignore[arg-type]
        dimension_counts=tuple(int(row.get(f"{d}_n") or 0) for d in DIMENSIONS),  # type: ignore[arg-type]
    )


class FeedbackStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets: AsyncCollection[Document] = db["tickets"]
        self.surveys: AsyncCollection[Document] = db["surveys"]

    async def ensure_indexes(self) -> None:
        # reopen: the open surveys of a ticket; CSAT: a solve-time range of counted surveys
        await self.surveys.create_index([("ticket_id", ASCENDING), ("status", ASCENDING)])
        await self.surveys.create_index([("solved_at", ASCENDING), ("status", ASCENDING)])

    # --- ticket events ----------------------------------------------------------------

    async def save_facts(self, facts: Iterable[TicketFacts]) -> None:
        ops = [
            UpdateOne(
                {"_id": f.ticket_id},
                {"$set": {"locale": f.locale, "timezone": f.timezone, "subject": f.subject}},
                upsert=True,
            )
            for f in facts
        ]
        if ops:
            await self.tickets.bulk_write(ops, ordered=False)

    async def save_solved_by_article(self, solves: Mapping[str, tuple[str, datetime]]) -> None:
        """Kept with the ticket's facts: the solve that follows may come in a later batch."""
        ops = [
            UpdateOne(
                {"_id": ticket_id},
                {"$set": {"solved_by_article": {"article_id": article_id, "at": at}}},
                upsert=True,
            )
            for ticket_id, (article_id, at) in solves.items()
        ]
        if ops:
            await self.tickets.bulk_write(ops, ordered=False)

    async def facts(self, ticket_ids: Iterable[str]) -> dict[str, TicketFacts]:
        ids = list(ticket_ids)
        if not ids:
            return {}
        docs = await find_in(self.tickets, "_id", ids)
        return {
            d["_id"]: TicketFacts(
                d["_id"],
                d.get("locale", "en"),
                d.get("timezone", "UTC"),
                d.get("subject"),
                (by["article_id"], by["at"]) if (by := d.get("solved_by_article")) else None,
            )
            for d in docs
        }

    async def open_surveys(self, ticket_ids: Iterable[str]) -> list[Survey]:
        ids = list(ticket_ids)
        if not ids:
            return []
        docs = await find_in(
            self.surveys,
            "ticket_id",
            ids,
            where={"status": SurveyStatus.requested.value},
            projection=HIDDEN,
        )
        return [survey_from_document(d) for d in docs]

    @staticmethod
    def new_survey(survey: Document, outbox: Sequence[Document], now: datetime) -> Document:
        """A survey document with its first events, for `write_surveys`."""
        return {**survey, **new_document_outbox(outbox, now)}

    @staticmethod
    def cancel_op(
        survey_id: str, reason: str, outbox: Sequence[Document], now: datetime
    ) -> UpdateOne:
        """Only while still unanswered; an answered or already cancelled survey stays."""
        return UpdateOne(
            {"_id": survey_id, "status": SurveyStatus.requested.value},
            {
                "$set": {
                    "status": SurveyStatus.cancelled.value,
                    "cancelled_at": now,
                    "cancel_reason": reason,
                },
                **outbox_update(outbox, now),
            },
        )

    async def write_surveys(
        self, created: Sequence[Document], cancels: Sequence[UpdateOne]
    ) -> Written:
        """New surveys first, then cancellations in order, so a survey created and
        cancelled in one batch ends cancelled.

        Surveys are inserted, not upserted (an insert costs SecantusDB about half as much):
        a survey that exists already (a redelivered solve event) fails on its `_id` and
        is left as it is, exactly what `$setOnInsert` did.
        """
        inserted = await insert_new(self.surveys, created)
        cancelled = 0
        if cancels:
            result = await self.surveys.bulk_write(list(cancels), ordered=True)
            cancelled = result.modified_count
        return Written(inserted, cancelled)

    # --- ratings ------------------------------------------------------------------------

    async def get(self, survey_id: str) -> Survey | None:
        doc = await self.surveys.find_one({"_id": survey_id}, HIDDEN)
        return survey_from_document(doc) if doc is not None else None

    async def save_rating(
        self,
        survey: Survey,
        rating: Document,
        outbox: Sequence[Document],
        now: datetime,
    ) -> bool:
        """False when the survey changed since it was read (another rating, a reopen) or
        expired meanwhile: the caller reads it again. The revision check also makes the
        follow-up flag exact: two racing low ratings cannot both ask for one."""
        pending = outbox_update(outbox, now)
        changes: Document = {
            "status": SurveyStatus.answered.value,
            "rating": rating,
            "revision": survey.revision + 1,
        }
        if rating.get("needs_follow_up"):
            changes["follow_up_requested_at"] = now
        update: dict[str, Any] = {
            "$set": changes,
            "$push": pending["$push"],
            "$min": {**pending["$min"], "answered_at": now},
        }
        result = await self.surveys.update_one(
            {
                "_id": survey.id,
                "revision": survey.revision,
                "status": {"$in": COUNTED},
                "expires_at": {"$gte": now},
            },
            update,
        )
        return result.matched_count == 1

    # --- CSAT ---------------------------------------------------------------------------

    async def csat(
        self, group_by: GroupBy, start: datetime, end: datetime
    ) -> list[tuple[str | None, CsatCounts]]:
        cursor = await self.surveys.aggregate(csat_pipeline(group_by, start, end))
        rows = await cursor.to_list()
        return [(row["_id"], counts_from_row(row)) for row in rows]
