"""feedback's use cases on the in-memory repository: what a batch of ticket events and a
rating leave stored and queued for publication, without a broker or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from services.feedback.domain import SurveyRefused, SurveyStatus
from services.feedback.handlers import FeedbackService, Submission, SurveyConfig
from services.feedback.memory_store import MemoryFeedbackRepository
from services.feedback.metrics import feedback_metrics
from shared.clock import FixedClock
from shared.events import (
    DimensionScores,
    FeedbackRequested,
    FeedbackSubmitted,
    Requester,
    Status,
    TicketCreated,
    TicketReopened,
    TicketStatusChanged,
    TicketSummary,
    make_event,
)
from shared.topics import Topics

if TYPE_CHECKING:
    from shared.events import Contract

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOPICS = Topics()


def summary(status: Status) -> TicketSummary:
    values: dict[str, Any] = {
        "status": status,
        "priority": "normal",
        "category": "withdrawal_delay",
        "channel": "app",
        "group": "payments",
        "assignee": "agent-7",
        "requester_id": "u-42",
        "created_at": NOW - timedelta(hours=3),
    }
    return TicketSummary.model_validate(values)


def record(offset: int, data: Contract, at: datetime) -> ConsumerRecord[bytes, bytes]:
    value = make_event(data, source="/helpstream/intake", time=at, correlationid="c").to_bytes()
    return ConsumerRecord(TOPICS.tickets, 0, offset, 0, 0, b"T-1", value, None, 0, len(value), ())


CREATED = record(
    0,
    TicketCreated(
        ticket_id="T-1",
        ticket=summary(Status.new),
        requester=Requester(id="u-42", locale="zh-CN", timezone="Asia/Shanghai"),
        subject="提现未到账",
    ),
    NOW - timedelta(hours=3),
)
SOLVED = record(
    1,
    TicketStatusChanged(
        ticket_id="T-1", ticket=summary(Status.solved), old=Status.open, new=Status.solved
    ),
    NOW - timedelta(minutes=1),
)
REOPENED = record(2, TicketReopened(ticket_id="T-1", ticket=summary(Status.open)), NOW)


@pytest.fixture
def repository() -> MemoryFeedbackRepository:
    return MemoryFeedbackRepository()


@pytest.fixture
def service(repository: MemoryFeedbackRepository) -> FeedbackService:
    return FeedbackService(
        store=repository,
        clock=FixedClock(NOW),
        topics=TOPICS,
        config=SurveyConfig(
            secret=b"unit-test-survey-secret-0123456789abcdef",
            expiry=timedelta(days=7),
            public_base_url="https://help.example.com/",
            follow_up_threshold=2,
        ),
        metrics=feedback_metrics(CollectorRegistry()),
    )


def published_types(repository: MemoryFeedbackRepository) -> list[str]:
    return [event.type for _, event in repository.published]


def token(repository: MemoryFeedbackRepository) -> str:
    (requested,) = [e.data for _, e in repository.published if e.type.endswith(".requested")]
    assert isinstance(requested, FeedbackRequested)
    return requested.survey_url.rsplit("/", 1)[1]


async def test_a_solve_asks_for_one_survey_in_the_requesters_language(
    service: FeedbackService, repository: MemoryFeedbackRepository
) -> None:
    await service.on_ticket_events([CREATED, SOLVED])
    await service.on_ticket_events([CREATED, SOLVED])  # redelivered

    assert published_types(repository) == ["helpstream.feedback.requested"]
    topic, event = repository.published[0]
    assert topic == TOPICS.feedback
    assert isinstance(event.data, FeedbackRequested)
    assert (event.data.locale, event.data.requester_id) == ("zh-CN", "u-42")
    (survey,) = await repository.open_surveys(["T-1"])
    assert (survey.subject, survey.timezone, survey.agent) == (
        "提现未到账",
        "Asia/Shanghai",
        "agent-7",
    )


async def test_a_reopen_cancels_the_unanswered_survey(
    service: FeedbackService, repository: MemoryFeedbackRepository
) -> None:
    await service.on_ticket_events([CREATED, SOLVED, REOPENED])

    assert published_types(repository) == [
        "helpstream.feedback.requested",
        "helpstream.feedback.cancelled",
    ]
    assert await repository.open_surveys(["T-1"]) == []


async def test_a_low_rating_is_recorded_and_asks_for_a_follow_up_once(
    service: FeedbackService, repository: MemoryFeedbackRepository
) -> None:
    await service.on_ticket_events([CREATED, SOLVED])
    low = Submission(1, DimensionScores(attitude=1), (), "too slow")

    first = await service.submit(token(repository), low)
    again = await service.submit(token(repository), Submission(2, DimensionScores(), (), None))

    assert (first.first, first.needs_follow_up) == (True, True)
    assert (again.first, again.needs_follow_up) == (False, False)
    assert again.survey.status == SurveyStatus.answered
    submitted = [e.data for _, e in repository.published if isinstance(e.data, FeedbackSubmitted)]
    assert [(s.score, s.needs_follow_up) for s in submitted] == [(1, True), (2, False)]


async def test_a_forged_survey_link_records_and_publishes_nothing(
    service: FeedbackService, repository: MemoryFeedbackRepository
) -> None:
    await service.on_ticket_events([CREATED, SOLVED])
    forged = token(repository)[:-4] + "AAAA"

    with pytest.raises(SurveyRefused) as refused:
        await service.submit(forged, Submission(5, DimensionScores(), (), None))

    assert (refused.value.status, refused.value.code) == (404, "token_invalid")
    assert published_types(repository) == ["helpstream.feedback.requested"]
    (survey,) = await repository.open_surveys(["T-1"])
    assert survey.rating is None
