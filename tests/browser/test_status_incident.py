"""The status page of a ticket in an incident storm, in a real headless Chromium: the three
suggested articles and the incident (status text, updates newest first) in the requester's
language, reached from the acknowledgement email; "this solved my problem" solves it.

Screenshots at a desktop width: `test-output/screenshots/status-incident-<language>.png`
(copied to docs/screenshots for the README).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from shared.events import TicketSolvedByArticle
from tests.browser.conftest import Stack, html_of, links_in, screenshot
from tests.browser.test_requester_pages import event_where, requester_id
from tests.support import Tap

if TYPE_CHECKING:
    from playwright.async_api import Browser, ViewportSize

pytestmark = pytest.mark.asyncio(loop_scope="session")

DESKTOP: ViewportSize = {"width": 800, "height": 768}
TEXTS: dict[str, dict[str, Any]] = {
    "zh-CN": {
        "subject": "USDT 提现未到账",
        "description": "我的 USDT 提现（TRC20）已经 3 小时还没到账，tronscan 上查不到",
        "ack": "我们已收到您的请求",
        "articles": "以下文章或许能解答您的问题",
        "incident": "您的工单涉及一个已知问题",
        "solve": "问题已解决",
        "solved": "很高兴能帮到您",
    },
    "en": {
        "subject": "USDT withdrawal not received",
        "description": "My USDT withdrawal (TRC20) has been pending for 3 hours, not on tronscan",
        "ack": "We received your request",
        "articles": "These articles may answer your question",
        "incident": "A known issue affects your request",
        "solve": "This solved my problem",
        "solved": "Glad that helped",
    },
}
TITLE = {"en": "TRC20 USDT withdrawals delayed", "zh-CN": "TRC20 USDT 提现延迟"}
STATUS = {
    "en": "Withdrawals are queued and safe; we post an update every 30 minutes.",
    "zh-CN": "提现已排队，资金安全；我们每 30 分钟更新一次进展。",
}
UPDATES = [
    {
        "en": "TRON nodes are resyncing after the network upgrade.",
        "zh-CN": "网络升级后 TRON 节点正在重新同步。",
    },
    {
        "en": "Withdrawals resume at 14:00 UTC today.",
        "zh-CN": "提现将于今天 UTC 14:00 恢复。",
    },
]


async def incident_for(stack: Stack, ticket_id: str) -> None:
    """An incident only this ticket is in (its keyword matches nothing), with two updates."""
    intake = stack.urls["intake"]
    declared = await stack.http.post(
        f"{intake}/v1/incidents",
        json={
            "title": TITLE,
            "scope": {"category": "withdrawal_delay", "keywords": [f"k{uuid.uuid4().hex}"]},
            "status_text": STATUS,
        },
    )
    assert declared.status_code == 201, declared.text
    incident_id = declared.json()["id"]
    linked = await stack.http.post(
        f"{intake}/v1/incidents/{incident_id}/tickets", json={"ticket": ticket_id}
    )
    assert linked.status_code == 200, linked.text
    for text in UPDATES:
        posted = await stack.http.post(
            f"{intake}/v1/incidents/{incident_id}/updates", json={"text": text}
        )
        assert posted.status_code == 201, posted.text


@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_the_status_page_shows_three_suggestions_and_the_incident_in_the_requesters_language(
    stack: Stack, browser: Browser, language: str
) -> None:
    texts = TEXTS[language]
    other = "en" if language == "zh-CN" else "zh-CN"
    requester = requester_id()
    ticket = await stack.open_ticket(
        requester=requester,
        locale=language,
        timezone="Asia/Shanghai" if language == "zh-CN" else "Europe/London",
        subject=texts["subject"],
        description=texts["description"],
    )
    acknowledgement = html_of(await stack.mail_to(requester, texts["ack"]))
    assert len(links_in(acknowledgement, r"/help/articles/")) == 3
    status_url = links_in(acknowledgement, r"/t/[^/]+$")[0]
    await incident_for(stack, ticket["id"])

    context = await browser.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        await page.goto(status_url)
        assert await page.locator("html").get_attribute("lang") == language

        articles = page.locator("ul.articles li a")
        assert await page.locator("#articles").inner_text() == texts["articles"]
        assert await articles.count() == 3
        for i in range(3):
            href = await articles.nth(i).get_attribute("href") or ""
            assert re.fullmatch(r"/help/articles/[a-z0-9-]+-(zh|en)", href)
            assert href.endswith("-zh" if language == "zh-CN" else "-en")

        incident = page.locator("section.incident")
        assert await incident.locator("h2").inner_text() == texts["incident"]
        assert await incident.locator(".incident-title").inner_text() == TITLE[language]
        newest = UPDATES[-1][language]
        assert await incident.locator(".incident-status").inner_text() == newest
        shown = await incident.locator(".incident-updates p").all_inner_texts()
        assert shown == [UPDATES[1][language], UPDATES[0][language]]  # newest first
        assert TITLE[other] not in await incident.inner_text()
        await screenshot(page, f"status-incident-{language}")

        async with Tap(stack.bootstrap, stack.topics.tickets, stack.settings) as tap:
            await page.get_by_role("button", name=texts["solve"]).first.click()
            await page.wait_for_url(re.compile(r"solved=1"))
            solved = await event_where(
                tap,
                lambda e: isinstance(e.data, TicketSolvedByArticle) and e.subject == ticket["id"],
            )
        assert isinstance(solved.data, TicketSolvedByArticle)
        assert solved.data.language == language
        assert texts["solved"] in await page.get_by_role("status").inner_text()
        assert await page.get_by_role("button", name=texts["solve"]).count() == 0
    finally:
        await context.close()
