"""`FeedbackRepository` in memory, for unit tests: dicts, and the events a change would
publish kept in `published`, in the order they were written."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from services.feedback.domain import CsatCounts, GroupBy, SurveyStatus, period_keys
from services.feedback.ports import Survey, TicketFacts, Written

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from services.feedback.ports import Cancellation, NewSurvey, RatingRecord
    from shared.events import Outgoing

COUNTED = frozenset({SurveyStatus.requested, SurveyStatus.answered})  # cancelled: not a solve


def _survey(new: NewSurvey) -> Survey:
    return Survey(
        id=new.id,
        ticket_id=new.ticket_id,
        status=SurveyStatus.requested,
        solved_at=new.solved_at,
        expires_at=new.expires_at,
        correlation_id=new.correlation_id,
        requester_id=new.requester_id,
        locale=new.locale,
        timezone=new.timezone,
        subject=new.subject,
        agent=new.agent,
        group=new.group,
        category=new.category,
        channel=new.channel,
        revision=0,
        rating=None,
        reasons=(),
        comment=None,
        submitted_at=None,
    )


class MemoryFeedbackRepository:
    def __init__(self) -> None:
        self.tickets: dict[str, TicketFacts] = {}
        self.surveys: dict[str, Survey] = {}
        self.articles: dict[str, str | None] = {}  # survey id → the article that solved it
        self.published: list[Outgoing] = []

    async def save_facts(self, facts: Iterable[TicketFacts]) -> None:
        for f in facts:
            known = self.tickets.get(f.ticket_id)
            by_article = known.solved_by_article if known else None
            self.tickets[f.ticket_id] = replace(f, solved_by_article=by_article)

    async def save_solved_by_article(self, solves: Mapping[str, tuple[str, datetime]]) -> None:
        for ticket_id, solve in solves.items():
            known = self.tickets.get(ticket_id) or TicketFacts(ticket_id)
            self.tickets[ticket_id] = replace(known, solved_by_article=solve)

    async def facts(self, ticket_ids: Iterable[str]) -> dict[str, TicketFacts]:
        return {t: self.tickets[t] for t in ticket_ids if t in self.tickets}

    async def open_surveys(self, ticket_ids: Iterable[str]) -> list[Survey]:
        ids = set(ticket_ids)
        return [
            s
            for s in self.surveys.values()
            if s.ticket_id in ids and s.status == SurveyStatus.requested
        ]

    async def write_surveys(
        self, created: Sequence[NewSurvey], cancels: Sequence[Cancellation]
    ) -> Written:
        inserted: list[int] = []
        for index, new in enumerate(created):
            if new.id in self.surveys:
                continue
            self.surveys[new.id] = _survey(new)
            self.articles[new.id] = new.article_id
            self.published += new.events
            inserted.append(index)
        cancelled = 0
        for cancel in cancels:
            survey = self.surveys.get(cancel.survey_id)
            if survey is None or survey.status != SurveyStatus.requested:
                continue
            self.surveys[survey.id] = replace(survey, status=SurveyStatus.cancelled)
            self.published += cancel.events
            cancelled += 1
        return Written(inserted, cancelled)

    async def get(self, survey_id: str) -> Survey | None:
        return self.surveys.get(survey_id)

    async def save_rating(
        self, survey: Survey, record: RatingRecord, events: Sequence[Outgoing]
    ) -> bool:
        stored = self.surveys.get(survey.id)
        if (
            stored is None
            or stored.revision != survey.revision
            or stored.status not in COUNTED
            or stored.expires_at < record.submitted_at
        ):
            return False
        self.surveys[survey.id] = replace(
            stored,
            status=SurveyStatus.answered,
            revision=stored.revision + 1,
            rating=record.rating,
            reasons=record.reasons,
            comment=record.comment,
            submitted_at=record.submitted_at,
            follow_up_requested=stored.follow_up_requested or record.needs_follow_up,
        )
        self.published += events
        return True

    async def csat(
        self, group_by: GroupBy, start: datetime, end: datetime
    ) -> list[tuple[str | None, CsatCounts]]:
        sums: dict[str | None, CsatCounts] = {}
        for survey in self.surveys.values():
            if survey.status not in COUNTED or not start <= survey.solved_at < end:
                continue
            key = self._key(survey, group_by)
            counts = CsatCounts.of(survey.rating)
            if self.articles.get(survey.id):
                counts = replace(counts, deflected=1)
            sums[key] = sums.get(key, CsatCounts()) + counts
        return sorted(sums.items(), key=lambda row: (row[0] is not None, row[0] or ""))

    @staticmethod
    def _key(survey: Survey, group_by: GroupBy) -> str | None:
        day, week = period_keys(survey.solved_at)
        keys: dict[GroupBy, str | None] = {
            GroupBy.agent: survey.agent,
            GroupBy.group: survey.group,
            GroupBy.category: survey.category,
            GroupBy.channel: survey.channel,
            GroupBy.day: day,
            GroupBy.week: week,
        }
        return keys[group_by]
