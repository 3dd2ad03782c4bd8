"""The four services (real uvicorn servers in this event loop, on the real broker and
MongoDB), a mail catcher, and a headless Debian Chromium driven by Playwright.

The stack and the browser are started once per test session (xdist: per worker) in the
session event loop, so every browser test in `tests/browser` must run in that loop:
`pytestmark = pytest.mark.asyncio(loop_scope="session")`. Screenshots go to
`test-output/screenshots/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.sla_monitor.app import create_app as sla_app
from services.sla_monitor.settings import SlaSettings
from shared.infra.mailcatcher import CaughtMail, MailCatcher
from shared.infra.processes import free_port
from shared.runtime import ServiceRuntime
from shared.tokens import sign
from shared.topics import Topics
from shared.web.links import TicketLink, sign_ticket_link
from tests.support import create_topic, secret_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from fastapi import FastAPI
    from playwright.async_api import ViewportSize

    from shared.infra.modes import Infra

API_KEY = "hs_browser_0123456789abcdefghijklmnopqrstuvwxyz"
SURVEY_SECRET = "browser-survey-secret-0123456789"
INBOX_SECRET = "browser-inbox-secret-0123456789abcdef"
LINK_SECRET = "browser-link-secret-0123456789abcdef"
SLA_READ_KEY = "browser-sla-read-key-0123456789abcdef"
OPERATOR_KEY = "browser-operator-key-0123456789abcdef"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
MOBILE: ViewportSize = {"width": 412, "height": 915}


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[str]:
    """uvicorn on 127.0.0.1:port in this event loop, the app's lifespan included."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped while starting")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            server.force_exit = True


@dataclass
class Stack:
    urls: dict[str, str]
    mail: MailCatcher
    bootstrap: str
    topics: Topics
    http: httpx.AsyncClient
    settings: IntakeSettings  # where the keys that open sealed fields are

    async def open_ticket(
        self, *, requester: str, locale: str, timezone: str, subject: str, description: str
    ) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.urls['intake']}/v1/tickets",
            json={
                "requester": {
                    "id": requester,
                    "email": f"{requester}@example.com",
                    "locale": locale,
                    "timezone": timezone,
                },
                "channel": "app",
                "subject": subject,
                "description": description,
                "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
            },
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def agent_reply(self, ticket_id: str, body: str) -> None:
        response = await self.http.post(
            f"{self.urls['intake']}/v1/tickets/{ticket_id}/messages",
            json={"author": "agent", "author_id": "agent-7", "body": body},
        )
        assert response.status_code == 201, response.text

    async def set_status(self, ticket_id: str, status: str) -> None:
        response = await self.http.patch(
            f"{self.urls['intake']}/v1/tickets/{ticket_id}", json={"status": status}
        )
        assert response.status_code == 200, response.text

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.urls['intake']}/v1/tickets/{ticket_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def mail_to(
        self, requester: str, subject_has: str, *, timeout: float = 30.0
    ) -> CaughtMail:
        """The first email to this requester whose subject contains `subject_has`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for caught in list(self.mail.messages):
                if f"{requester}@example.com" in caught.rcpt_tos and subject_has in caught.subject:
                    return caught
            await asyncio.sleep(0.1)
        raise AssertionError(f"no mail to {requester} with {subject_has!r} in {timeout}s")

    def inbox_token(self, requester: str, locale: str, tz: str) -> str:
        claims = {"requester_id": requester, "locale": locale, "tz": tz}
        return sign(INBOX_SECRET.encode(), "inbox", claims, datetime.now(UTC), timedelta(hours=1))

    def status_link(
        self, requester: str, ticket_id: str, *, ttl: timedelta = timedelta(hours=1)
    ) -> str:
        link = TicketLink(requester, ticket_id, "en", "UTC")
        token = sign_ticket_link(LINK_SECRET.encode(), link, datetime.now(UTC), ttl)
        return f"{self.urls['intake']}/t/{token}"


def html_of(caught: CaughtMail) -> str:
    part = caught.message.get_body(preferencelist=("html",))
    assert part is not None, "the email has no HTML part"
    return str(part.get_content())


def links_in(html: str, pattern: str) -> list[str]:
    return [m for m in re.findall(r'href="([^"]+)"', html) if re.search(pattern, m)]


async def eventually_true(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll an async check until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    uid = uuid.uuid4().hex[:10]
    common: dict[str, Any] = {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongo_url": infra.mongo_url,
        "topic_prefix": f"b{uid}.",
        "mongo_db_prefix": f"b{uid}",
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "log_json": False,
        "log_level": "WARNING",
        "retry_backoff_max_s": 0.5,
    }
    topics = Topics(common["topic_prefix"])
    for topic in (topics.commands, topics.tickets, topics.sla, topics.feedback):
        await create_topic(infra.kafka_bootstrap, topic, 4)
    ports = {name: free_port() for name in ("intake", "sla_monitor", "feedback", "notifier")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    mail = MailCatcher(port=free_port())
    mail.start()

    def make(cls: type[Any], **values: Any) -> Any:
        """Every secret the class requires (test values), then this stack's own."""
        return cls(**{**secret_settings(cls), **common, **values})

    settings: dict[str, Any] = {
        "intake": make(
            IntakeSettings,
            bootstrap_api_key=API_KEY,
            requester_link_secret=LINK_SECRET,
            sla_monitor_url=urls["sla_monitor"],
            sla_read_api_key=SLA_READ_KEY,
        ),
        "sla_monitor": make(
            SlaSettings, sla_read_api_key=SLA_READ_KEY, operator_api_key=OPERATOR_KEY
        ),
        "feedback": make(
            FeedbackSettings,
            survey_secret=SURVEY_SECRET,
            public_base_url=urls["feedback"],
            reports_api_key=OPERATOR_KEY,
        ),
        "notifier": make(
            NotifierSettings,
            smtp_port=mail.port,
            smtp_timeout_s=2.0,
            inbox_secret=INBOX_SECRET,
            inbox_poll_s=0.2,
            digest_window_s=0,
            requester_link_secret=LINK_SECRET,
            status_page_base_url=urls["intake"],
        ),
    }
    factories: dict[str, Callable[[Any, ServiceRuntime], FastAPI]] = {
        "intake": intake_app,
        "sla_monitor": sla_app,
        "feedback": feedback_app,
        "notifier": notifier_app,
    }
    async with contextlib.AsyncExitStack() as servers:
        for name, factory in factories.items():
            runtime = ServiceRuntime(name, settings[name])
            await servers.enter_async_context(serve(factory(settings[name], runtime), ports[name]))
        async with httpx.AsyncClient(
            timeout=10, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as http:

            async def ready() -> bool:
                answers = [await http.get(f"{url}/readyz") for url in urls.values()]
                return all(a.status_code == 200 for a in answers)

            await eventually_true(ready, timeout=60)
            yield Stack(urls, mail, infra.kafka_bootstrap, topics, http, settings["intake"])
    mail.stop()


def chromium_installed() -> bool:
    return Path(CHROMIUM).exists()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not chromium_installed():
        pytest.fail("Debian's chromium is missing: run `make install`")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh phone-sized browser context (own cookies) per test."""
    context = await browser.new_context(viewport=MOBILE, locale="en-US")
    context.set_default_timeout(15_000)
    opened = await context.new_page()
    yield opened
    await context.close()


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
