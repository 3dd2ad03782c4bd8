"""Events as the other services publish them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import (
    Author,
    FeedbackRequested,
    FeedbackSubmitted,
    Priority,
    Requester,
    SlaApplied,
    SlaBreached,
    SlaMetric,
    SlaWarning,
    Status,
    TicketCreated,
    TicketEscalated,
    TicketMessageAdded,
    TicketStatusChanged,
)
from tests.integration.notifier.conftest import summary

DUE = datetime(2030, 3, 1, 8, 30, tzinfo=UTC)


def created(ticket_id: str, locale: str = "zh-CN", **requester: Any) -> TicketCreated:
    contact: dict[str, Any] = {
        "id": "u-42",
        "email": "li.wei@example.com",
        "locale": locale,
        "timezone": "Asia/Shanghai",
    }
    contact.update(requester)
    return TicketCreated(
        ticket_id=ticket_id,
        ticket=summary(requester_id=contact["id"]),
        requester=Requester.model_validate(contact),
        subject="提现未到账" if locale.startswith("zh") else "Withdrawal not received",
    )


def reply(
    ticket_id: str, body: str = "We are checking the chain.", author: Author = Author.agent
) -> TicketMessageAdded:
    return TicketMessageAdded(
        ticket_id=ticket_id,
        ticket=summary(),
        message_id=f"m-{body[:8]}",
        author=author,
        public=True,
        body=body,
    )


def status(ticket_id: str, new: Status) -> TicketStatusChanged:
    return TicketStatusChanged(
        ticket_id=ticket_id, ticket=summary(status=new), old=Status.open, new=new
    )


def sla(kind: type[Any], ticket_id: str, **extra: Any) -> Any:
    return kind(
        ticket_id=ticket_id,
        metric=SlaMetric.first_reply,
        target_s=3600,
        elapsed_s=2700,
        remaining_s=900,
        deadline=DUE,
        priority=Priority.high,
        policy="default",
        policy_version="1",
        **extra,
    )


def applied(ticket_id: str) -> SlaApplied:
    return sla(SlaApplied, ticket_id)  # type: ignore[no-any-return]


def warning(ticket_id: str) -> SlaWarning:
    return sla(SlaWarning, ticket_id, threshold=0.75)  # type: ignore[no-any-return]


def breached(ticket_id: str) -> SlaBreached:
    return sla(SlaBreached, ticket_id, breached_at=DUE)  # type: ignore[no-any-return]


def escalated(ticket_id: str) -> TicketEscalated:
    return TicketEscalated(
        ticket_id=ticket_id, ticket=summary(escalation_level=2), level=2, reason="agent"
    )


def survey(ticket_id: str, locale: str = "zh-CN") -> FeedbackRequested:
    return FeedbackRequested(
        ticket_id=ticket_id,
        survey_id=f"s-{ticket_id}",
        requester_id="u-42",
        locale=locale,
        survey_url=f"https://help.example.com/s/{ticket_id}",
        expires_at=DUE + timedelta(days=7),
    )


def rated(ticket_id: str, score: int) -> FeedbackSubmitted:
    return FeedbackSubmitted(
        ticket_id=ticket_id,
        survey_id=f"s-{ticket_id}",
        score=score,
        group="payments",
        needs_follow_up=score <= 2,
    )
