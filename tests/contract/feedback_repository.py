"""The behaviour every `FeedbackRepository` promises, run against each implementation.

A test module subclasses `FeedbackRepositoryContract` and gives it a `harness` fixture:
a fresh, empty repository, and a way to read the events its writes left pending for
publication (what a relay would send next).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from services.feedback.domain import CsatCounts, GroupBy, Rating, SurveyStatus
from services.feedback.ports import (
    Cancellation,
    NewSurvey,
    RatingRecord,
    Survey,
    TicketFacts,
)
from shared.events import (
    Contract,
    FeedbackCancelled,
    FeedbackRequested,
    FeedbackSubmitted,
    make_event,
)

if TYPE_CHECKING:
    from services.feedback.ports import FeedbackRepository
    from shared.events import Outgoing

TOPIC = "helpstream.feedback"
SOLVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REQUESTED = SOLVED + timedelta(seconds=5)
EXPIRES = SOLVED + timedelta(days=7)


class Harness(Protocol):
    @property
    def repository(self) -> FeedbackRepository: ...

    async def pending(self) -> list[Outgoing]:
        """The events written with changes and not yet published, as (topic, event)."""
        ...


def outgoing(data: Contract, event_id: str, at: datetime = REQUESTED) -> Outgoing:
    return TOPIC, make_event(
        data, source="/helpstream/feedback", time=at, correlationid="corr-1", event_id=event_id
    )


def new_survey(
    survey_id: str,
    ticket_id: str = "T-1",
    *,
    solved_at: datetime = SOLVED,
    group: str = "payments",
    agent: str | None = "agent-7",
    article_id: str | None = None,
) -> NewSurvey:
    requested = FeedbackRequested(
        ticket_id=ticket_id,
        survey_id=survey_id,
        requester_id="u-42",
        locale="zh-CN",
        survey_url=f"https://help.example.com/v1/surveys/{survey_id}",
        expires_at=EXPIRES,
    )
    return NewSurvey(
        id=survey_id,
        ticket_id=ticket_id,
        solve_event_id=f"solve-{survey_id}",
        correlation_id="corr-1",
        solved_at=solved_at,
        requested_at=REQUESTED,
        expires_at=EXPIRES,
        requester_id="u-42",
        locale="zh-CN",
        timezone="Asia/Shanghai",
        subject="提现未到账",
        agent=agent,
        group=group,
        category="withdrawal_delay",
        channel="app",
        article_id=article_id,
        events=(outgoing(requested, f"{survey_id}/requested"),),
    )


def cancellation(survey_id: str, ticket_id: str = "T-1") -> Cancellation:
    at = REQUESTED + timedelta(hours=1)
    cancelled = FeedbackCancelled(ticket_id=ticket_id, survey_id=survey_id)
    return Cancellation(
        survey_id, "ticket_reopened", at, (outgoing(cancelled, f"{survey_id}/c", at),)
    )


def record(
    score: int, *dims: int | None, at: datetime = REQUESTED + timedelta(hours=2)
) -> RatingRecord:
    attitude, speed, clarity = (*dims, None, None, None)[:3]
    return RatingRecord(
        rating=Rating(score, attitude, speed, clarity),
        reasons=("fast",),
        comment="thanks",
        comment_redacted=(),
        needs_follow_up=score <= 2,
        submitted_at=at,
    )


def submitted(survey: Survey, score: int, event_id: str) -> Outgoing:
    at = REQUESTED + timedelta(hours=2)
    return outgoing(
        FeedbackSubmitted(ticket_id=survey.ticket_id, survey_id=survey.id, score=score),
        event_id,
        at,
    )


def ids(events: list[Outgoing]) -> list[tuple[str, str, str]]:
    return [(topic, event.type, event.id) for topic, event in events]


class FeedbackRepositoryContract:
    async def test_facts_are_read_back_and_the_latest_wins(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.save_facts([TicketFacts("T-1", "en", "UTC", "first")])
        await repo.save_facts([TicketFacts("T-1", "zh-CN", "Asia/Shanghai", "提现未到账")])
        await repo.save_facts([TicketFacts("T-2", "en", "Europe/Berlin", None)])

        facts = await repo.facts(["T-1", "T-2", "T-unknown"])

        assert facts == {
            "T-1": TicketFacts("T-1", "zh-CN", "Asia/Shanghai", "提现未到账"),
            "T-2": TicketFacts("T-2", "en", "Europe/Berlin", None),
        }
        assert await repo.facts([]) == {}

    async def test_a_solve_by_article_is_kept_with_the_facts(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.save_solved_by_article({"T-1": ("kb-1", SOLVED)})  # before ticket.created
        await repo.save_facts([TicketFacts("T-1", "zh-CN", "Asia/Shanghai", "s")])
        await repo.save_solved_by_article({"T-2": ("kb-2", SOLVED)})

        facts = await repo.facts(["T-1", "T-2"])

        assert facts["T-1"] == TicketFacts("T-1", "zh-CN", "Asia/Shanghai", "s", ("kb-1", SOLVED))
        assert facts["T-2"] == TicketFacts("T-2", solved_by_article=("kb-2", SOLVED))

    async def test_a_written_survey_is_readable_and_its_event_pending_once(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        survey = new_survey("S-1")

        first = await repo.write_surveys([survey], [])
        again = await repo.write_surveys([survey], [])  # a redelivered solve

        assert (first.inserted, again.inserted) == ([0], [])
        stored = await repo.get("S-1")
        assert stored is not None
        assert (stored.ticket_id, stored.status, stored.revision, stored.rating) == (
            "T-1",
            SurveyStatus.requested,
            0,
            None,
        )
        assert (stored.solved_at, stored.expires_at, stored.correlation_id) == (
            SOLVED,
            EXPIRES,
            "corr-1",
        )
        assert (stored.requester_id, stored.locale, stored.timezone, stored.subject) == (
            "u-42",
            "zh-CN",
            "Asia/Shanghai",
            "提现未到账",
        )
        assert (stored.agent, stored.group, stored.category, stored.channel) == (
            "agent-7",
            "payments",
            "withdrawal_delay",
            "app",
        )
        assert [s.id for s in await repo.open_surveys(["T-1"])] == ["S-1"]
        pending = await harness.pending()
        assert ids(pending) == [(TOPIC, "helpstream.feedback.requested", "S-1/requested")]
        assert pending[0][1].data == survey.events[0][1].data
        assert await repo.get("S-unknown") is None

    async def test_a_cancelled_survey_is_not_open(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.write_surveys([new_survey("S-1"), new_survey("S-2", "T-2")], [])

        first = await repo.write_surveys([], [cancellation("S-1")])
        again = await repo.write_surveys([], [cancellation("S-1")])  # a redelivered reopen

        assert (first.cancelled, again.cancelled) == (1, 0)
        stored = await repo.get("S-1")
        assert stored is not None
        assert stored.status == SurveyStatus.cancelled
        assert await repo.open_surveys(["T-1"]) == []
        assert [s.id for s in await repo.open_surveys(["T-1", "T-2"])] == ["S-2"]
        assert sorted(ids(await harness.pending())) == [  # ordered per ticket, not across
            (TOPIC, "helpstream.feedback.cancelled", "S-1/c"),
            (TOPIC, "helpstream.feedback.requested", "S-1/requested"),
            (TOPIC, "helpstream.feedback.requested", "S-2/requested"),
        ]
        in_order = [event_id for _, _, event_id in ids(await harness.pending())]
        assert [i for i in in_order if i.startswith("S-1")] == ["S-1/requested", "S-1/c"]

    async def test_a_survey_created_and_cancelled_in_one_write_ends_cancelled(
        self, harness: Harness
    ) -> None:
        repo = harness.repository

        written = await repo.write_surveys([new_survey("S-1")], [cancellation("S-1")])

        assert (written.inserted, written.cancelled) == ([0], 1)
        stored = await repo.get("S-1")
        assert stored is not None
        assert stored.status == SurveyStatus.cancelled

    async def test_a_rating_is_saved_once_per_reading_of_the_survey(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.write_surveys([new_survey("S-1")], [])
        read = await repo.get("S-1")
        assert read is not None

        saved = await repo.save_rating(read, record(2, 1, 2, 3), [submitted(read, 2, "r-1")])
        stale = await repo.save_rating(read, record(5), [submitted(read, 5, "r-2")])

        assert (saved, stale) == (True, False)
        answered = await repo.get("S-1")
        assert answered is not None
        assert (answered.status, answered.revision) == (SurveyStatus.answered, 1)
        assert answered.rating == Rating(2, 1, 2, 3)
        assert (answered.reasons, answered.comment) == (("fast",), "thanks")
        assert answered.submitted_at == REQUESTED + timedelta(hours=2)
        assert answered.follow_up_requested is True
        assert await repo.open_surveys(["T-1"]) == []
        # read again, the survey takes the change; it remembers the follow-up
        assert await repo.save_rating(answered, record(5), [submitted(answered, 5, "r-3")])
        changed = await repo.get("S-1")
        assert changed is not None
        assert (changed.revision, changed.rating, changed.follow_up_requested) == (
            2,
            Rating(5),
            True,
        )
        assert [event_id for _, _, event_id in ids(await harness.pending())] == [
            "S-1/requested",
            "r-1",
            "r-3",
        ]

    async def test_a_cancelled_or_expired_survey_takes_no_rating(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.write_surveys([new_survey("S-1"), new_survey("S-2", "T-2")], [])
        cancelled, expiring = await repo.get("S-1"), await repo.get("S-2")
        assert cancelled is not None
        assert expiring is not None
        await repo.write_surveys([], [cancellation("S-1")])

        late = record(4, at=EXPIRES + timedelta(seconds=1))
        assert not await repo.save_rating(cancelled, record(4), [submitted(cancelled, 4, "r-1")])
        assert not await repo.save_rating(expiring, late, [submitted(expiring, 4, "r-2")])
        assert await repo.save_rating(expiring, record(4, at=EXPIRES), [])  # to the last second

        stored = await repo.get("S-1")
        assert stored is not None
        assert (stored.status, stored.rating) == (SurveyStatus.cancelled, None)
        assert "r-1" not in [i for _, _, i in ids(await harness.pending())]
        assert "r-2" not in [i for _, _, i in ids(await harness.pending())]

    async def test_csat_counts_the_ratings_of_the_surveys_solved_in_the_period(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        earlier = SOLVED - timedelta(days=40)
        surveys = [
            new_survey("S-1", "T-1", agent="a1", article_id="kb-1"),
            new_survey("S-2", "T-2", agent="a1"),
            new_survey("S-3", "T-3", agent="a2"),  # never answered
            new_survey("S-4", "T-4", group="kyc", agent=None),
            new_survey("S-5", "T-5", group="kyc"),  # cancelled: not a solve
            new_survey("S-6", "T-6", group="kyc", solved_at=earlier),  # outside the period
        ]
        await repo.write_surveys(surveys, [cancellation("S-5", "T-5")])
        for survey_id, rating in (
            ("S-1", record(5, 5, 4)),
            ("S-2", record(2, 2, 2, 2)),
            ("S-4", record(4)),
            ("S-6", record(1, 1, 1, 1)),
        ):
            survey = await repo.get(survey_id)
            assert survey is not None
            assert await repo.save_rating(survey, rating, [])
        start, end = SOLVED - timedelta(days=1), SOLVED + timedelta(days=1)

        by_group = await repo.csat(GroupBy.group, start, end)
        by_agent = await repo.csat(GroupBy.agent, start, end)

        assert by_group == [
            ("kyc", CsatCounts(1, 1, 1, 4, (0, 0, 0), (0, 0, 0), 0)),
            ("payments", CsatCounts(3, 2, 1, 7, (7, 6, 2), (2, 2, 1), 1)),
        ]
        assert [(key, counts.surveys, counts.responses) for key, counts in by_agent] == [
            (None, 1, 1),
            ("a1", 2, 2),
            ("a2", 1, 0),
        ]
        assert await repo.csat(GroupBy.day, start, end) == [
            ("2026-11-23", CsatCounts(4, 3, 2, 11, (7, 6, 2), (2, 2, 1), 1))
        ]
        assert await repo.csat(GroupBy.group, end, end + timedelta(days=1)) == []
