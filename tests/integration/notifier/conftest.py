"""A running notifier (in this event loop) on the real broker and MongoDB, a real SMTP
server (aiosmtpd) and a real HTTP webhook receiver (uvicorn) that can fail on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.notifier.app import create_app
from services.notifier.config import DEFAULT_RULES_PATH
from services.notifier.settings import NotifierSettings
from shared.events import Contract, TicketSummary, make_event
from shared.ids import new_id
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from shared.infra.processes import free_port
from shared.runtime import ServiceRuntime
from shared.tokens import sign
from shared.topics import owner_of
from tests.support import produce, running

WEBHOOK_SECRET = "whsec-test-0123456789abcdefghijklmnop"
INBOX_SECRET = "inbox-test-0123456789abcdefghijklmnop"
NOW = datetime.now(UTC)


@contextlib.asynccontextmanager
async def served(app: Any, port: int) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:port in this event loop."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            server.force_exit = True


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The exchange's push service: records every request; answers as told."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    mode: str = "ok"  # ok | fail (500) | hang (never answers in time)
    fail_first: int = 0

    async def endpoint(self, request: Request) -> JSONResponse:
        self.calls.append(Call(request.url.path, dict(request.headers), await request.body()))
        if self.fail_first > 0:
            self.fail_first -= 1
            return JSONResponse({"error": "try later"}, status_code=500)
        if self.mode == "fail":
            return JSONResponse({"error": "down"}, status_code=500)
        if self.mode == "hang":
            await asyncio.sleep(3)
        return JSONResponse({"ok": True})

    def to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rec.endpoint, methods=["POST"])])
    async with served(app, free_port()) as url:
        rec.url = url
        yield rec


@pytest.fixture
def rules_file(tmp_path: Path, receiver: Receiver) -> Path:
    """The shipped rules, with the payments group also paged by webhook."""
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    raw["recipients"]["groups"]["payments"]["webhook"] = f"{receiver.url}/agents"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Notifier:
    http: httpx.AsyncClient
    app: FastAPI
    settings: NotifierSettings
    runtime: ServiceRuntime
    infra: Infra

    async def publish(
        self,
        *items: tuple[str, Contract] | tuple[str, Contract, str],
        source: str | None = None,
    ) -> list[str]:
        """(topic attribute, data[, event id]) → the event ids, produced in order; each
        from the topic's owner unless `source` says otherwise."""
        messages: dict[str, list[tuple[bytes | None, bytes]]] = {}
        ids = []
        for item in items:
            topic, data = item[0], item[1]
            event_id = item[2] if len(item) > 2 else new_id()
            name = getattr(self.runtime.topics, topic)
            event = make_event(
                data,
                source=source or owner_of(name) or "/helpstream/test",
                time=datetime.now(UTC),
                correlationid="corr-test",
                event_id=event_id,
                subject=getattr(data, "ticket_id", None) or new_id(),
            )
            messages.setdefault(name, []).append((event.subject.encode(), event.to_bytes()))
            ids.append(event.id)
        for name, batch in messages.items():
            await produce(self.infra.kafka_bootstrap, name, batch)
        return ids

    def token(self, requester_id: str) -> dict[str, str]:
        token = sign(
            INBOX_SECRET.encode(),
            "inbox",
            {"requester_id": requester_id},
            datetime.now(UTC),
            timedelta(hours=1),
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def notifier_settings(
    make_settings: Callable[..., Any], mail: MailCatcher, receiver: Receiver, rules_file: Path
) -> Callable[..., NotifierSettings]:
    def make(**overrides: Any) -> NotifierSettings:
        values: dict[str, Any] = {
            "smtp_port": mail.port,
            "smtp_timeout_s": 2.0,
            "webhook_url": f"{receiver.url}/push",
            "webhook_secret": WEBHOOK_SECRET,
            "webhook_timeout_s": 0.5,
            "webhook_max_attempts": 3,
            "webhook_backoff_base_s": 0.05,
            "webhook_backoff_max_s": 0.2,
            "inbox_secret": INBOX_SECRET,
            "inbox_poll_s": 0.2,
            "digest_window_s": 0,
            "digest_poll_s": 0.1,
            "rules_file": rules_file,
        }
        values.update(overrides)
        settings: NotifierSettings = make_settings(NotifierSettings, **values)
        return settings

    return make


@contextlib.asynccontextmanager
async def start(settings: NotifierSettings, infra: Infra) -> AsyncIterator[Notifier]:
    runtime = ServiceRuntime("notifier", settings)
    app = create_app(settings, runtime)
    async with running(app) as http:
        yield Notifier(http, app, settings, runtime, infra)


@pytest.fixture
async def notifier(
    notifier_settings: Callable[..., NotifierSettings], infra: Infra
) -> AsyncIterator[Notifier]:
    async with start(notifier_settings(), infra) as running_notifier:
        yield running_notifier


def summary(**overrides: Any) -> TicketSummary:
    values: dict[str, Any] = {
        "status": "open",
        "priority": "high",
        "category": "withdrawal_delay",
        "channel": "app",
        "group": "payments",
        "requester_id": "u-42",
        "created_at": NOW,
    }
    values.update(overrides)
    return TicketSummary.model_validate(values)


async def mails(catcher: MailCatcher, count: int, timeout: float = 20.0) -> list[Any]:
    """Wait for mail without blocking the event loop the notifier runs in."""
    return await asyncio.to_thread(catcher.wait_for, count, timeout)


async def settle_mail(catcher: MailCatcher, quiet: float = 1.5) -> list[Any]:
    """Wait until no new mail arrived for `quiet` seconds (to prove nothing more comes)."""
    last = -1
    while last != len(catcher.messages):
        last = len(catcher.messages)
        await asyncio.sleep(quiet)
    return list(catcher.messages)


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
