"""A running feedback (in this event loop) on the real broker and MongoDB, a fixed clock,
and builders for the ticket events intake would send."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.feedback.app import create_app
from services.feedback.settings import FeedbackSettings
from shared.clock import FixedClock
from shared.events import (
    CloudEvent,
    Contract,
    FeedbackRequested,
    Requester,
    Status,
    TicketCreated,
    TicketReopened,
    TicketStatusChanged,
    TicketSummary,
    make_event,
)
from shared.infra.modes import Infra
from shared.runtime import ServiceRuntime
from shared.topics import Topics
from tests.support import Tap, create_topic, eventually, produce, running

SECRET = "test-survey-secret-0123456789-abcdefghijkl"
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def summary(status: Status = Status.solved, **overrides: Any) -> TicketSummary:
    values: dict[str, Any] = {
        "status": status,
        "priority": "normal",
        "category": "withdrawal_delay",
        "channel": "app",
        "group": "payments",
        "assignee": "agent-7",
        "requester_id": "u-42",
        "created_at": START - timedelta(hours=3),
    }
    values.update(overrides)
    return TicketSummary.model_validate(values)


def event(data: Contract, at: datetime = START) -> CloudEvent[Contract]:
    return make_event(data, source="/helpstream/intake", time=at, correlationid="corr-test")


def created(
    ticket_id: str, locale: str = "zh-CN", timezone: str = "Asia/Shanghai"
) -> CloudEvent[Contract]:
    return event(
        TicketCreated(
            ticket_id=ticket_id,
            ticket=summary(Status.new),
            requester=Requester(id="u-42", locale=locale, timezone=timezone),
            subject="提现未到账",
        ),
        START - timedelta(hours=3),
    )


def solved(ticket_id: str, at: datetime = START, **ticket: Any) -> CloudEvent[Contract]:
    return event(
        TicketStatusChanged(
            ticket_id=ticket_id,
            ticket=summary(Status.solved, **ticket),
            old=Status.open,
            new=Status.solved,
        ),
        at,
    )


def reopened(ticket_id: str, at: datetime) -> CloudEvent[Contract]:
    return event(TicketReopened(ticket_id=ticket_id, ticket=summary(Status.open)), at)


def token_of(requested: CloudEvent[Contract]) -> str:
    assert isinstance(requested.data, FeedbackRequested)
    return requested.data.survey_url.rsplit("/", 1)[1]


@dataclass
class Feedback:
    http: httpx.AsyncClient
    settings: FeedbackSettings
    runtime: ServiceRuntime
    clock: FixedClock
    bootstrap: str

    async def send(self, *events: CloudEvent[Contract] | bytes) -> None:
        messages: list[tuple[bytes | None, bytes]] = [
            (e.subject.encode(), e.to_bytes()) if isinstance(e, CloudEvent) else (b"junk", e)
            for e in events
        ]
        await produce(self.bootstrap, self.runtime.topics.tickets, messages)

    def feedback_events(self) -> Tap:
        return Tap(self.bootstrap, self.runtime.topics.feedback)

    async def requested(self, tap: Tap, count: int) -> dict[str, CloudEvent[Contract]]:
        """The feedback.requested events by ticket id, once `count` of them arrived."""

        async def arrived() -> bool:
            await tap.collect(len(tap.records) + 1, timeout=0.3)
            return len(_of_type(tap, "requested")) >= count

        await eventually(arrived)
        return {e.subject: e for e in _of_type(tap, "requested")}

    async def rate(self, token: str, **body: Any) -> httpx.Response:
        return await self.http.post(f"/v1/surveys/{token}", json=body)

    def metric(self, name: str, **labels: str) -> float:
        value = self.runtime.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def _of_type(tap: Tap, verb: str) -> list[CloudEvent[Contract]]:
    return [e for e in tap.events() if e.type == f"helpstream.feedback.{verb}"]


def of_type(tap: Tap, verb: str) -> list[CloudEvent[Contract]]:
    return _of_type(tap, verb)


def problem_code(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.status_code, str(json.loads(response.text).get("code"))


@pytest.fixture
async def feedback(make_settings: Any, infra: Infra) -> AsyncIterator[Feedback]:
    settings: FeedbackSettings = make_settings(
        FeedbackSettings, survey_secret=SECRET, public_base_url="https://help.example.com/"
    )
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    runtime = ServiceRuntime("feedback", settings, clock=clock)
    tickets = runtime.topics.tickets
    for topic in (tickets, Topics.dlq(tickets), runtime.topics.feedback):
        await create_topic(infra.kafka_bootstrap, topic, 4)
    async with running(create_app(settings, runtime)) as http:
        if settings.reports_api_key is not None:  # CSAT reports need the reports key
            http.headers["Authorization"] = f"Bearer {settings.reports_api_key.get_secret_value()}"

        async def consuming() -> bool:
            return all(bool(c.assigned) for c in runtime.consumers)

        await eventually(consuming)
        yield Feedback(http, settings, runtime, clock, infra.kafka_bootstrap)
