"""What feedback needs from its storage, in its own terms.

Handlers speak these types only; how they are kept (MongoDB documents with an outbox
in `store.py`, dicts in `memory_store.py`) stays behind `FeedbackRepository`. Both
implementations pass one contract suite (`tests/contract/feedback_repository.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from services.feedback.domain import CsatCounts, GroupBy, Rating, SurveyStatus
    from shared.events import Outgoing


@dataclass(frozen=True)
class TicketFacts:
    ticket_id: str
    locale: str = "en"
    timezone: str = "UTC"
    subject: str | None = None
    # the last `ticket.solved_by_article`: the article and the solve it came with
    solved_by_article: tuple[str, datetime] | None = None


@dataclass(frozen=True)
class NewSurvey:
    """A survey asked for by one solve, with the events announcing it."""

    id: str  # derived from the solve event: a redelivered solve writes nothing new
    ticket_id: str
    solve_event_id: str
    correlation_id: str
    solved_at: datetime
    requested_at: datetime
    expires_at: datetime
    requester_id: str
    locale: str
    timezone: str
    subject: str | None
    agent: str | None
    group: str
    category: str
    channel: str
    article_id: str | None  # the help article the requester solved it with, if any
    events: tuple[Outgoing, ...] = ()


@dataclass(frozen=True)
class Cancellation:
    """Cancel a survey while it is unanswered (an answered or cancelled one stays)."""

    survey_id: str
    reason: str
    at: datetime
    events: tuple[Outgoing, ...] = ()


@dataclass(frozen=True)
class Written:
    inserted: list[int]  # positions of the surveys that were new
    cancelled: int


@dataclass(frozen=True)
class RatingRecord:
    """One submission as recorded: the last one of a survey counts."""

    rating: Rating
    reasons: tuple[str, ...]
    comment: str | None  # redacted already
    comment_redacted: tuple[str, ...]  # kinds of secret taken out of the comment
    needs_follow_up: bool
    submitted_at: datetime


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


class FeedbackRepository(Protocol):
    """Per-ticket facts and one survey per solve, each change written together with the
    events it causes (nothing can separate a survey from its `feedback.requested`, or a
    rating from its `feedback.submitted`)."""

    async def save_facts(self, facts: Iterable[TicketFacts]) -> None:
        """Locale, time zone and subject of each ticket (the latest wins); a solve by
        article saved earlier is kept."""
        ...

    async def save_solved_by_article(self, solves: Mapping[str, tuple[str, datetime]]) -> None:
        """Per ticket id, the article and the time of its last solve by article: kept
        with the ticket's facts, as the solve that follows may come in a later batch."""
        ...

    async def facts(self, ticket_ids: Iterable[str]) -> dict[str, TicketFacts]:
        """The facts known of these tickets (tickets never seen are left out)."""
        ...

    async def open_surveys(self, ticket_ids: Iterable[str]) -> list[Survey]:
        """The unanswered, uncancelled surveys of these tickets."""
        ...

    async def write_surveys(
        self, created: Sequence[NewSurvey], cancels: Sequence[Cancellation]
    ) -> Written:
        """New surveys first, then cancellations in order (a survey created and cancelled
        in one batch ends cancelled), each with its events. A survey whose id exists is
        left as it is and its events are not stored again."""
        ...

    async def get(self, survey_id: str) -> Survey | None: ...

    async def save_rating(
        self, survey: Survey, record: RatingRecord, events: Sequence[Outgoing]
    ) -> bool:
        """Record a rating of `survey` as it was read, with its events; the survey is
        answered from then on. False (and nothing written) when the survey changed since
        it was read (another rating, a reopen), is cancelled, or expired before
        `record.submitted_at`: the caller reads it again."""
        ...

    async def csat(
        self, group_by: GroupBy, start: datetime, end: datetime
    ) -> list[tuple[str | None, CsatCounts]]:
        """CSAT counts per value of `group_by` (sorted, `None` first) over the surveys
        solved in [start, end), cancelled ones excluded."""
        ...
