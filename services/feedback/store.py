"""feedback in MongoDB (`FeedbackRepository`): per-ticket facts, one survey document per
solve. Documents and outbox entries are built here and nowhere else.

`tickets` keeps what only `ticket.created` carries (locale, time zone, subject), and the
last `ticket.solved_by_article`, keyed by ticket id. `surveys` holds one document per
solve, keyed by an id derived from the solve event (with the help article that solved
it, if one did), with its last rating and its pending events (outbox) in the same
document: a survey and the event announcing it, or a rating and `feedback.submitted`,
are one write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, UpdateOne

from services.feedback.domain import (
    DIMENSIONS,
    SATISFIED_MIN,
    CsatCounts,
    GroupBy,
    Rating,
    SurveyStatus,
    period_keys,
)
from services.feedback.ports import Survey, TicketFacts, Written
from shared.mongo import find_in, insert_new
from shared.unit_of_work import PENDING, append_events, with_events

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.feedback.ports import Cancellation, NewSurvey, RatingRecord
    from shared.events import Outgoing
    from shared.mongo import Document

HIDDEN = PENDING
COUNTED = [SurveyStatus.requested.value, SurveyStatus.answered.value]  # cancelled: not a solve


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


def survey_document(survey: NewSurvey) -> Document:
    """A new survey with its first events; `day` and `week` stored for grouping."""
    day, week = period_keys(survey.solved_at)
    doc: Document = {
        "_id": survey.id,
        "ticket_id": survey.ticket_id,
        "solve_event_id": survey.solve_event_id,
        "correlation_id": survey.correlation_id,
        "status": SurveyStatus.requested.value,
        "solved_at": survey.solved_at,
        "day": day,
        "week": week,
        "requested_at": survey.requested_at,
        "expires_at": survey.expires_at,
        "requester_id": survey.requester_id,
        "locale": survey.locale,
        "timezone": survey.timezone,
        "subject": survey.subject,
        "agent": survey.agent,
        "group": survey.group,
        "category": survey.category,
        "channel": survey.channel,
        "article_id": survey.article_id,
        "revision": 0,
    }
    return with_events(doc, survey.events, survey.requested_at)


def cancel_operation(cancel: Cancellation) -> UpdateOne:
    """Only while still unanswered; an answered or already cancelled survey stays."""
    return UpdateOne(
        {"_id": cancel.survey_id, "status": SurveyStatus.requested.value},
        {
            "$set": {
                "status": SurveyStatus.cancelled.value,
                "cancelled_at": cancel.at,
                "cancel_reason": cancel.reason,
            },
            **append_events(cancel.events, cancel.at),
        },
    )


def rating_document(record: RatingRecord) -> Document:
    rating = record.rating
    return {
        "score": rating.score,
        "attitude": rating.attitude,
        "speed": rating.speed,
        "clarity": rating.clarity,
        "reasons": list(record.reasons),
        "comment": record.comment,
        "comment_redacted": list(record.comment_redacted),
        "needs_follow_up": record.needs_follow_up,
        "submitted_at": record.submitted_at,
    }


class FeedbackStore:
    """`FeedbackRepository` on MongoDB; `surveys` carries the outbox the relay drains."""

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

    async def write_surveys(
        self, created: Sequence[NewSurvey], cancels: Sequence[Cancellation]
    ) -> Written:
        """New surveys first, then cancellations in order, so a survey created and
        cancelled in one batch ends cancelled.

        Surveys are inserted, not upserted (an insert costs SecantusDB about half as much):
        a survey that exists already (a redelivered solve event) fails on its `_id` and
        is left as it is, exactly what `$setOnInsert` did.
        """
        inserted = await insert_new(self.surveys, [survey_document(s) for s in created])
        cancelled = 0
        if cancels:
            result = await self.surveys.bulk_write(
                [cancel_operation(c) for c in cancels], ordered=True
            )
            cancelled = result.modified_count
        return Written(inserted, cancelled)

    # --- ratings ------------------------------------------------------------------------

    async def get(self, survey_id: str) -> Survey | None:
        doc = await self.surveys.find_one({"_id": survey_id}, HIDDEN)
        return survey_from_document(doc) if doc is not None else None

    async def save_rating(
        self, survey: Survey, record: RatingRecord, events: Sequence[Outgoing]
    ) -> bool:
        """False when the survey changed since it was read (another rating, a reopen) or
        expired meanwhile: the caller reads it again. The revision check also makes the
        follow-up flag exact: two racing low ratings cannot both ask for one."""
        now = record.submitted_at
        pending = append_events(events, now)
        changes: Document = {
            "status": SurveyStatus.answered.value,
            "rating": rating_document(record),
            "revision": survey.revision + 1,
        }
        if record.needs_follow_up:
            changes["follow_up_requested_at"] = now
        update: dict[str, Any] = {
            **pending,
            "$set": changes,
            "$min": {**pending.get("$min", {}), "answered_at": now},
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
