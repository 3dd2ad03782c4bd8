"""sla_monitor on the real broker and MongoDB, with a clock the test moves."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sla_monitor.app import create_app
from services.sla_monitor.settings import SlaSettings
from shared.clock import FixedClock
from shared.events import (
    Author,
    Category,
    Channel,
    Contract,
    Priority,
    Requester,
    Status,
    TicketCreated,
    TicketMessageAdded,
    TicketPriorityChanged,
    TicketStatusChanged,
    TicketSummary,
    make_event,
)
from shared.ids import new_id
from shared.infra.modes import Infra
from shared.runtime import ServiceRuntime
from tests.support import Tap, eventually, produce, running

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai

POLICIES = """
warnings: [0.75, 0.9]
calendars:
  - name: shanghai_office
    timezone: Asia/Shanghai
    holiday_dates: [2026-12-25]
    schedules:
      - weekly:
          mon: ["09:00-18:00"]
          tue: ["09:00-18:00"]
          wed: ["09:00-18:00"]
          thu: ["09:00-18:00"]
          fri: ["09:00-18:00"]
policies:
  - name: kyc-office-hours
    match: {category: kyc}
    targets:
      first_reply: {target: 2h, calendar: shanghai_office}
  - name: urgent
    match: {priority: urgent}
    targets:
      first_reply: {target: 15m}
      next_reply: {target: 30m}
      resolution: {target: 4h}
  - name: standard
    targets:
      first_reply: {target: 1h}
      next_reply: {target: 2h}
      resolution: {target: 8h}
"""


@dataclass
class TicketStory:
    """Builds one ticket's events with chosen event times."""

    ticket_id: str = field(default_factory=new_id)
    priority: Priority = Priority.normal
    category: Category = Category.other
    status: Status = Status.new
    created_at: datetime = T0

    def _summary(self) -> TicketSummary:
        return TicketSummary(
            status=self.status,
            priority=self.priority,
            category=self.category,
            channel=Channel.web,
            group="general",
            requester_id="u-1",
            created_at=self.created_at,
        )

    def _event(self, data: Contract, at: datetime) -> tuple[bytes, bytes]:
        event = make_event(data, source="/helpstream/intake", time=at, correlationid="corr")
        return self.ticket_id.encode(), event.to_bytes()

    def created(self) -> tuple[bytes, bytes]:
        return self._event(
            TicketCreated(
                ticket_id=self.ticket_id,
                ticket=self._summary(),
                requester=Requester(id="u-1"),
                subject="help",
            ),
            self.created_at,
        )

    def message(self, author: Author, at: datetime, public: bool = True) -> tuple[bytes, bytes]:
        return self._event(
            TicketMessageAdded(
                ticket_id=self.ticket_id,
                ticket=self._summary(),
                message_id=new_id(),
                author=author,
                public=public,
                body="…" if public else None,
            ),
            at,
        )

    def status_to(self, new: Status, at: datetime) -> tuple[bytes, bytes]:
        old, self.status = self.status, new
        return self._event(
            TicketStatusChanged(ticket_id=self.ticket_id, ticket=self._summary(), old=old, new=new),
            at,
        )

    def priority_to(self, new: Priority, at: datetime) -> tuple[bytes, bytes]:
        old, self.priority = self.priority, new
        return self._event(
            TicketPriorityChanged(
                ticket_id=self.ticket_id, ticket=self._summary(), old=old, new=new
            ),
            at,
        )


@dataclass
class Sla:
    http: httpx.AsyncClient
    clock: FixedClock
    settings: SlaSettings
    infra: Infra
    runtime: ServiceRuntime

    async def send(self, *messages: tuple[bytes, bytes]) -> None:
        await produce(
            self.infra.kafka_bootstrap,
            self.settings.topic_prefix + "helpstream.tickets",
            list(messages),
        )

    async def clocks(self, ticket_id: str) -> dict[str, Any]:
        key = self.settings.sla_read_api_key
        auth = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        response = await self.http.get(f"/v1/tickets/{ticket_id}/sla", headers=auth)
        return dict(response.json()) if response.status_code == 200 else {}

    async def wait_for(self, ticket_id: str, check: Callable[[dict[str, Any]], bool]) -> None:
        async def holds() -> bool:
            view = await self.clocks(ticket_id)
            return bool(view) and check(view)

        await eventually(holds, timeout=30)


def sla_events(records: list[Any], ticket_id: str) -> list[tuple[str, str, Any]]:
    """(type suffix, metric, threshold/cycle) of each SLA event for one ticket, in order."""
    out = []
    for record in records:
        event = json.loads(record.value)
        if event["subject"] == ticket_id:
            data = event["data"]
            kind = event["type"].removeprefix("helpstream.sla.")
            out.append((kind, data["metric"], data.get("threshold", data["cycle"])))
    return out


@pytest.fixture
def policies_file(tmp_path: Path) -> Path:
    path = tmp_path / "sla_policies.yaml"
    path.write_text(POLICIES)
    return path


@pytest.fixture
def make_sla(
    make_settings: Any, policies_file: Path, infra: Infra
) -> Callable[..., contextlib.AbstractAsyncContextManager[Sla]]:
    """Start an instance; several may share the clock (and the group, so they split work)."""

    @contextlib.asynccontextmanager
    async def start(clock: FixedClock, **overrides: Any) -> AsyncIterator[Sla]:
        chosen = {"sla_policies": policies_file, "timer_interval_s": 0.05, **overrides}
        settings = make_settings(SlaSettings, **chosen)
        runtime = ServiceRuntime("sla_monitor", settings, clock=clock)
        async with running(create_app(settings, runtime)) as http:
            yield Sla(http, clock, settings, infra, runtime)

    return start


@pytest.fixture
async def sla(make_sla: Any) -> AsyncIterator[Sla]:
    async with make_sla(FixedClock(T0)) as instance:
        yield instance


@pytest.fixture
async def sla_tap(sla: Sla) -> AsyncIterator[Tap]:
    async with Tap(sla.infra.kafka_bootstrap, sla.settings.topic_prefix + "helpstream.sla") as tap:
        yield tap


__all__ = ["T0", "Sla", "TicketStory", "sla_events", "timedelta"]
