"""Use cases: ask for a rating when a ticket is solved, take ratings, report CSAT.

Ticket events come in batches: one read of what the batch needs, then the events are
folded in order in memory (a survey created and cancelled in the same batch ends
cancelled) and written back with one `bulk_write` per collection. Every write is
idempotent: surveys are keyed by the solve event, cancellations only touch unanswered
surveys, so a redelivered batch changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from services.feedback.domain import (
    GroupBy,
    Rating,
    SurveyRefused,
    check_can_change,
    check_open,
    clean_comment,
    issue_token,
    needs_follow_up,
    survey_of_token,
)
from services.feedback.ports import Cancellation, NewSurvey, RatingRecord, TicketFacts
from shared.events import (
    Category,
    Channel,
    DimensionScores,
    FeedbackCancelled,
    FeedbackRequested,
    FeedbackSubmitted,
    Status,
    TicketCreated,
    TicketReopened,
    TicketSolvedByArticle,
    TicketStatusChanged,
    make_event,
)
from shared.ids import new_id, stable_id
from shared.kafka import decode_events
from shared.redaction import redact
from shared.tasks import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aiokafka.structs import ConsumerRecord
    from prometheus_client import Gauge

    from services.feedback.domain import CsatCounts, ReasonCode
    from services.feedback.metrics import FeedbackMetrics
    from services.feedback.ports import FeedbackRepository, Survey
    from shared.clock import Clock
    from shared.events import CloudEvent, Contract, Outgoing
    from shared.kafka import Rejected
    from shared.tokens import SigningKeys
    from shared.topics import Topics

log = structlog.get_logger(__name__)

SOURCE = "/helpstream/feedback"
SAVE_ATTEMPTS = 5
REOPENED_FROM_SOLVED = frozenset({Status.new, Status.open, Status.pending, Status.on_hold})


@dataclass(frozen=True)
class SurveyConfig:
    secret: bytes | SigningKeys
    expiry: timedelta
    public_base_url: str
    follow_up_threshold: int


@dataclass(frozen=True)
class Submission:
    score: int
    dimensions: DimensionScores
    reasons: tuple[ReasonCode, ...]
    comment: str | None


@dataclass(frozen=True)
class Submitted:
    survey: Survey
    needs_follow_up: bool
    redacted_kinds: tuple[str, ...]
    first: bool  # False: a later submission replaced an earlier rating
    changed: bool = True  # False: equal to the recorded rating, nothing written


def is_solve(data: Contract) -> bool:
    return isinstance(data, TicketStatusChanged) and data.new == Status.solved != data.old


def is_reopen(data: Contract) -> bool:
    """intake sends `ticket.reopened` and a status change away from solved; either counts."""
    if isinstance(data, TicketReopened):
        return True
    return (
        isinstance(data, TicketStatusChanged)
        and data.old == Status.solved
        and data.new in REOPENED_FROM_SOLVED
    )


class FeedbackService:
    def __init__(
        self,
        *,
        store: FeedbackRepository,
        clock: Clock,
        topics: Topics,
        config: SurveyConfig,
        metrics: FeedbackMetrics,
        on_events: Callable[[int], None] = lambda _: None,
        on_rating: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._topics = topics
        self._config = config
        self._metrics = metrics
        self._on_events = on_events
        self._on_rating = on_rating

    # --- Kafka: helpstream.tickets --------------------------------------------------------

    async def on_ticket_events(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Sequence[Rejected]:
        accepted, rejected = decode_events(records)
        for item in rejected:
            self._metrics.rejected.labels("ticket_events", item.error.reason).inc()
        events = [item.value for item in accepted]
        created: dict[str, TicketFacts] = {}
        solved: set[str] = set()
        reopened: set[str] = set()
        by_article: dict[str, tuple[str, datetime]] = {}
        for event in events:
            data = event.data
            if isinstance(data, TicketCreated):
                created[data.ticket_id] = _facts(data)
            elif isinstance(data, TicketSolvedByArticle):
                by_article[event.subject] = (data.article_id, event.time)
            elif is_solve(data):
                solved.add(event.subject)
            elif is_reopen(data):
                reopened.add(event.subject)
        if not (created or solved or reopened or by_article):
            return rejected
        facts = await self._store.facts(solved - created.keys())
        facts.update(created)
        for ticket_id, solve in by_article.items():
            facts[ticket_id] = replace(
                facts.get(ticket_id) or TicketFacts(ticket_id), solved_by_article=solve
            )
        open_surveys: dict[str, dict[str, datetime]] = {}
        for survey in await self._store.open_surveys(reopened):
            open_surveys.setdefault(survey.ticket_id, {})[survey.id] = survey.solved_at
        surveys, groups, cancels = self._fold(events, facts, open_surveys)
        await self._store.save_facts(created.values())
        await self._store.save_solved_by_article(by_article)
        written = await self._store.write_surveys(surveys, cancels)
        for index in written.inserted:
            self._metrics.surveys_requested.labels(groups[index]).inc()
        self._metrics.surveys_cancelled.inc(written.cancelled)
        if surveys or cancels:
            self._on_events(len(surveys) + len(cancels))
        return rejected

    def _fold(
        self,
        events: Sequence[CloudEvent[Contract]],
        facts: dict[str, TicketFacts],
        open_surveys: dict[str, dict[str, datetime]],
    ) -> tuple[list[NewSurvey], list[str], list[Cancellation]]:
        """New surveys, their groups (for the metrics) and the cancellations, in event
        order."""
        now = self._clock.now()
        surveys: list[NewSurvey] = []
        groups: list[str] = []
        ops: list[Cancellation] = []
        for event in events:
            data = event.data
            if is_solve(data):
                assert isinstance(data, TicketStatusChanged)
                survey = self._new_survey(event, data, facts.get(data.ticket_id), now)
                surveys.append(survey)
                groups.append(data.ticket.group)
                open_surveys.setdefault(data.ticket_id, {})[survey.id] = event.time
            elif is_reopen(data):
                still_open = open_surveys.get(event.subject, {})
                # Only surveys of earlier solves: a redelivered reopen never cancels the
                # survey of the solve that followed it.
                for survey_id, solved_at in list(still_open.items()):
                    if solved_at <= event.time:
                        ops.append(self._cancel(event, survey_id, now))
                        del still_open[survey_id]
        return surveys, groups, ops

    def _new_survey(
        self,
        event: CloudEvent[Contract],
        data: TicketStatusChanged,
        facts: TicketFacts | None,
        now: datetime,
    ) -> NewSurvey:
        survey_id = stable_id(event.id, "survey")
        token, expires_at = issue_token(self._config.secret, survey_id, now, self._config.expiry)
        locale = facts.locale if facts else "en"
        ticket = data.ticket
        requested = FeedbackRequested(
            ticket_id=data.ticket_id,
            survey_id=survey_id,
            requester_id=ticket.requester_id,
            locale=locale,
            survey_url=f"{self._config.public_base_url.rstrip('/')}/v1/surveys/{token}",
            expires_at=expires_at,
        )
        return NewSurvey(
            id=survey_id,
            ticket_id=data.ticket_id,
            solve_event_id=event.id,
            correlation_id=event.correlationid,
            solved_at=event.time,
            requested_at=now,
            expires_at=expires_at,
            requester_id=ticket.requester_id,
            locale=locale,
            timezone=facts.timezone if facts else "UTC",
            subject=facts.subject if facts else None,
            agent=ticket.assignee,
            group=ticket.group,
            category=ticket.category.value,
            channel=ticket.channel.value,
            article_id=_solving_article(facts, event.time),
            events=(self._outgoing(requested, event.correlationid, now, f"{survey_id}/requested"),),
        )

    def _cancel(self, event: CloudEvent[Contract], survey_id: str, now: datetime) -> Cancellation:
        reason = "ticket_reopened"
        cancelled = FeedbackCancelled(ticket_id=event.subject, survey_id=survey_id, reason=reason)
        outgoing = self._outgoing(cancelled, event.correlationid, now, f"{survey_id}/cancelled")
        return Cancellation(survey_id, reason, now, (outgoing,))

    def _outgoing(self, data: Contract, correlation_id: str, now: datetime, key: str) -> Outgoing:
        event = make_event(
            data,
            source=SOURCE,
            time=now,
            correlationid=correlation_id,
            event_id=stable_id(key),
        )
        return self._topics.feedback, event

    # --- HTTP: the requester's survey -------------------------------------------------------

    async def open_survey(self, token: str, handler: str = "view") -> Survey:
        """The survey a token opens while it accepts ratings; `SurveyRefused` otherwise."""
        now = self._clock.now()
        try:
            survey_id = survey_of_token(self._config.secret, token, now)
            survey = await self._store.get(survey_id)
            if survey is None:
                raise SurveyRefused(404, "survey_not_found", "This survey does not exist.")
            check_open(survey.status, survey.expires_at, now)
        except SurveyRefused as exc:
            self._metrics.rejected.labels(handler, exc.code).inc()
            raise
        return survey

    async def submit(self, token: str, submission: Submission, via: str = "api") -> Submitted:
        """Answer the survey, or replace its rating: the last submission counts. A
        submission equal to the recorded rating changes nothing and publishes nothing."""
        redaction = redact(clean_comment(submission.comment) or "")
        reasons = list(dict.fromkeys(r.value for r in submission.reasons))
        dims = submission.dimensions
        comment = redaction.text or None
        for _ in range(SAVE_ATTEMPTS):
            survey = await self.open_survey(token, "submit")
            if _same_rating(survey, submission.score, dims, reasons, comment):
                self._metrics.ratings_unchanged.inc()
                return Submitted(survey, False, redaction.kinds, first=False, changed=False)
            try:
                check_can_change(survey.revision)
            except SurveyRefused as exc:
                self._metrics.rejected.labels("submit", exc.code).inc()
                raise
            now = self._clock.now()
            follow_up = needs_follow_up(
                submission.score, survey.follow_up_requested, self._config.follow_up_threshold
            )
            record = RatingRecord(
                rating=Rating(submission.score, dims.attitude, dims.speed, dims.clarity),
                reasons=tuple(reasons),
                comment=comment,
                comment_redacted=tuple(redaction.kinds),
                needs_follow_up=follow_up,
                submitted_at=now,
            )
            submitted = FeedbackSubmitted(
                ticket_id=survey.ticket_id,
                survey_id=survey.id,
                score=submission.score,
                dimensions=dims,
                reasons=reasons,
                needs_follow_up=follow_up,
                agent=survey.agent,
                group=survey.group,
                category=Category(survey.category),
                channel=Channel(survey.channel),
            )
            outgoing = self._outgoing(submitted, survey.correlation_id, now, new_id())
            if await self._store.save_rating(survey, record, [outgoing]):
                self._count(survey, submission.score, follow_up, via)
                self._on_events(1)
                self._on_rating()
                saved = await self._store.get(survey.id)
                assert saved is not None
                return Submitted(saved, follow_up, redaction.kinds, first=survey.rating is None)
        self._metrics.rejected.labels("submit", "concurrent_change").inc()
        raise SurveyRefused(409, "concurrent_change", "The rating kept changing; try again.")

    def _count(self, survey: Survey, score: int, follow_up: bool, via: str) -> None:
        if survey.rating is None:
            self._metrics.surveys_answered.labels(survey.group).inc()
        else:
            self._metrics.ratings_changed.labels(survey.group).inc()
        self._metrics.ratings_recorded.labels(via).inc()
        self._metrics.score.observe(score)
        if follow_up:
            self._metrics.follow_ups.inc()
        elif score <= self._config.follow_up_threshold:
            self._metrics.follow_ups_withheld.inc()

    # --- HTTP: CSAT -----------------------------------------------------------------------

    async def csat(
        self, group_by: GroupBy, start: datetime, end: datetime
    ) -> list[tuple[str | None, CsatCounts]]:
        return await self._store.csat(group_by, start, end)


def _same_rating(
    survey: Survey,
    score: int,
    dims: DimensionScores,
    reasons: list[str],
    comment: str | None,
) -> bool:
    """The submission says what the survey holds already (a double click, a reload)."""
    rating = survey.rating
    if rating is None:
        return False
    return (
        (rating.score, rating.attitude, rating.speed, rating.clarity)
        == (score, dims.attitude, dims.speed, dims.clarity)
        and list(survey.reasons) == reasons
        and survey.comment == comment
    )


def _solving_article(facts: TicketFacts | None, solved_at: datetime) -> str | None:
    """The help article this solve came with: intake sends `ticket.solved_by_article` and
    its `ticket.status_changed` together, with one time (MongoDB keeps milliseconds)."""
    if facts is None or facts.solved_by_article is None:
        return None
    article_id, at = facts.solved_by_article
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return article_id if abs(at - solved_at) < timedelta(milliseconds=1) else None


def _facts(data: TicketCreated) -> TicketFacts:
    return TicketFacts(
        ticket_id=data.ticket_id,
        locale=data.requester.locale,
        timezone=data.requester.timezone,
        subject=data.subject,
    )


class CsatGauge(BackgroundTask):
    """Keeps the CSAT gauges (by group, channel and category) current: after ratings (woken)
    and at least every `interval_s`. A failed refresh leaves the last values and tries again on
    the next round; it never touches data."""

    def __init__(
        self,
        store: FeedbackRepository,
        clock: Clock,
        metrics: FeedbackMetrics,
        *,
        window: timedelta,
        interval_s: float,
    ) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._window = window
        self._interval = interval_s
        self._wake = asyncio.Event()
        self._shown: dict[tuple[GroupBy, str], set[str]] = {}  # label values set, per gauge

    def wake(self) -> None:
        self._wake.set()

    name = "csat-gauge"

    async def refresh(self) -> None:
        now = self._clock.now()
        m = self._metrics
        gauges = (
            (GroupBy.group, m.csat_ratio, None),
            (GroupBy.channel, m.csat_channel_ratio, m.deflection_channel_ratio),
            (GroupBy.category, m.csat_category_ratio, m.deflection_category_ratio),
        )
        for by, csat, deflection in gauges:
            rows = await self._store.csat(by, now - self._window, now)
            self._show((by, "csat"), csat, rows, lambda c: (c.satisfied, c.responses))
            if deflection is not None:
                self._show((by, "deflection"), deflection, rows, lambda c: (c.deflected, c.surveys))

    def _show(
        self,
        name: tuple[GroupBy, str],
        gauge: Gauge,
        rows: Sequence[tuple[str | None, CsatCounts]],
        ratio: Callable[[CsatCounts], tuple[int, int]],
    ) -> None:
        """Each key's ratio where it has a denominator; keys gone from the window removed."""
        seen: set[str] = set()
        for key, counts in rows:
            part, whole = ratio(counts)
            if key is None or not whole:
                continue
            gauge.labels(key).set(part / whole)
            seen.add(key)
        for gone in self._shown.get(name, set()) - seen:
            gauge.remove(gone)
        self._shown[name] = seen

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("csat_gauge_refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
