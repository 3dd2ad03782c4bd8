"""Requester pages in a real headless Chromium, on the four real services.

Each test walks a page as a requester would (from the email where there is one), checks
the event the services publish, and leaves screenshots of the page in both languages in
`test-output/screenshots/`. The access tests change ids, tokens and forms by hand and
check that no page ever shows another requester's data.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from services.feedback.domain import issue_token
from shared.events import FeedbackSubmitted, TicketMessageAdded
from tests.browser.conftest import (
    SLA_READ_KEY,
    SURVEY_SECRET,
    Stack,
    eventually_true,
    html_of,
    links_in,
    screenshot,
)
from tests.support import Tap

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.async_api import Page

    from shared.events import CloudEvent, Contract

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEED = "abandon ability able about above absent absorb abstract absurd abuse access accident"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
# Smallest WCAG contrast ratio of the text of the main elements of a page.
CONTRAST_JS = """
() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const ratios = [...document.querySelectorAll(
    'h1, h2, p, dt, dd, a, button, label, legend, .badge, .steps li')]
    .filter((el) => el.offsetParent !== null && el.textContent.trim())
    .map((el) => {
      const a = lum(rgb(getComputedStyle(el).color).slice(0, 3)), b = lum(background(el));
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    });
  return Math.min(...ratios);
}
"""
UNLABELLED_JS = """
() => [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
  .filter((el) => !el.labels || el.labels.length === 0).length
"""


def requester_id() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


async def event_where(
    tap: Tap, check: Callable[[CloudEvent[Contract]], bool], timeout: float = 20.0
) -> CloudEvent[Contract]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await tap.collect(len(tap.records) + 1, timeout=0.5)
        for event in tap.events():
            if check(event):
                return event
    raise AssertionError(f"no matching event on {tap.topic} within {timeout}s")


async def solved_with_survey(stack: Stack, requester: str, locale: str, tz: str) -> tuple[str, str]:
    """A ticket opened, answered and solved: (ticket id, HTML of the survey email)."""
    zh = locale.startswith("zh")
    ticket = await stack.open_ticket(
        requester=requester,
        locale=locale,
        timezone=tz,
        subject="提现未到账" if zh else "Withdrawal still pending",
        description="我的 USDT 提现已经 3 小时还没到账" if zh else "My USDT withdrawal is stuck",
    )
    await stack.agent_reply(ticket["id"], "已为您加急处理。" if zh else "We sped it up.")
    await stack.set_status(ticket["id"], "solved")
    survey_mail = await stack.mail_to(requester, "评分" if zh else "How did we do")
    return ticket["id"], html_of(survey_mail)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def with_claims(token: str, **changes: Any) -> str:
    """The token with its payload changed and its old signature kept (a forgery)."""
    body, _, signature = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + signature


def is_friendly_page(response: httpx.Response) -> bool:
    text = response.text
    return (
        response.headers["content-type"].startswith("text/html")
        and "<html lang=" in text
        and "Traceback" not in text
        and '"detail"' not in text
    )


# --- survey ---------------------------------------------------------------------------------


async def test_a_score_clicked_in_the_survey_email_is_saved_with_one_click_and_details_can_follow(
    stack: Stack, page: Page
) -> None:
    requester = requester_id()
    ticket_id, email_html = await solved_with_survey(stack, requester, "zh-CN", "Asia/Shanghai")
    async with Tap(stack.bootstrap, stack.topics.feedback) as tap:
        await page.set_content(email_html)
        await screenshot(page, "survey-email-zh-CN")
        await page.get_by_role("link", name="4", exact=True).click()
        await page.wait_for_url(re.compile(r"/s/[^/?]+/score/4"))
        assert await page.locator('input[name="score"]:checked').get_attribute("value") == "4"
        await page.get_by_role("button", name="保存评分").click()
        await page.wait_for_url(re.compile(r"/s/[^/?]+\?saved=score"))
        assert "已保存 4 分" in await page.get_by_role("status").inner_text()
        first = await event_where(
            tap, lambda e: isinstance(e.data, FeedbackSubmitted) and e.subject == ticket_id
        )
        assert isinstance(first.data, FeedbackSubmitted)
        assert first.data.score == 4
        await screenshot(page, "survey-zh-CN")

        await page.get_by_role("group", name="服务态度").get_by_label("5", exact=True).check()
        await page.get_by_role("group", name="解决速度").get_by_label("3", exact=True).check()
        await page.get_by_label("速度快").check()
        await page.locator("#comment").fill("客服很耐心，谢谢！")
        await page.get_by_role("button", name="提交").click()
        await page.wait_for_url(re.compile(r"saved=details"))
        assert "已保存" in await page.get_by_role("status").inner_text()
        details = await event_where(
            tap,
            lambda e: (
                isinstance(e.data, FeedbackSubmitted)
                and e.subject == ticket_id
                and e.data.dimensions.attitude == 5
            ),
        )
    assert isinstance(details.data, FeedbackSubmitted)
    assert (details.data.score, details.data.dimensions.speed) == (4, 3)
    assert details.data.reasons == ["fast"]
    assert await page.locator("#comment").input_value() == "客服很耐心，谢谢！"

    await page.get_by_role("link", name="English").click()
    assert await page.locator("html").get_attribute("lang") == "en"
    assert "Your answers are saved" in await page.get_by_role("status").inner_text()
    await screenshot(page, "survey-en")


async def test_the_first_score_link_works_from_the_keyboard_and_the_page_is_accessible(
    stack: Stack, page: Page
) -> None:
    requester = requester_id()
    _, email_html = await solved_with_survey(stack, requester, "en", "Europe/London")
    page_link = links_in(email_html, r"/s/[^/]+$")[0]
    await page.goto(page_link)
    assert await page.locator("html").get_attribute("lang") == "en"
    viewport = await page.locator('meta[name="viewport"]').get_attribute("content")
    assert viewport is not None
    assert "width=device-width" in viewport
    await screenshot(page, "survey-unanswered-en")

    focused = ""
    for _ in range(10):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.getAttribute('name') || ''")
        if focused == "score":
            break
    assert focused == "score"
    await page.keyboard.press("Space")  # chooses the first score, 1
    await page.keyboard.press("Tab")  # to "Save score"
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"saved=score"))
    chosen = page.locator('.score-choices input[name="score"]:checked')
    assert await chosen.get_attribute("value") == "1"
    assert await page.evaluate(UNLABELLED_JS) == 0
    assert await page.evaluate(CONTRAST_JS) >= 4.5


# --- ticket status ----------------------------------------------------------------------------


async def test_a_reply_from_the_status_page_adds_a_redacted_requester_message(
    stack: Stack, page: Page
) -> None:
    requester = requester_id()
    ticket = await stack.open_ticket(
        requester=requester,
        locale="zh-CN",
        timezone="Asia/Shanghai",
        subject="充值未到账",
        description="昨天充值的 2500 USDT (TRC20) 还没有到账。",
    )
    ticket_id = ticket["id"]
    acknowledgement = await stack.mail_to(requester, "我们已收到您的请求")
    status_url = links_in(html_of(acknowledgement), r"/t/[^/]+$")[0]

    async def clock_running() -> bool:
        sla = await stack.http.get(
            f"{stack.urls['sla_monitor']}/v1/tickets/{ticket_id}/sla",
            headers={"Authorization": f"Bearer {SLA_READ_KEY}"},
        )
        return sla.status_code == 200 and any(
            c["metric"] == "first_reply" and c["state"] == "running" for c in sla.json()["clocks"]
        )

    await eventually_true(clock_running)
    await page.goto(status_url)
    promised = page.locator("section.notice p").first
    assert "我们将在此时间前回复" in await promised.inner_text()
    assert "Asia/Shanghai" in await promised.inner_text()

    await stack.agent_reply(ticket_id, "您好，请提供充值的交易哈希，我们马上为您核查。")
    await stack.set_status(ticket_id, "pending")
    await page.reload()
    assert "请提供充值的交易哈希" in await page.locator(".timeline").inner_text()
    current = page.locator('.steps li[aria-current="step"]')
    assert await current.inner_text() == "3\n等待您的回复"
    await screenshot(page, "status-zh-CN")

    async with Tap(stack.bootstrap, stack.topics.tickets, stack.settings) as tap:
        await page.get_by_label("您的留言").fill(f"交易已确认。我的助记词是 {SEED}")
        await page.get_by_role("button", name="发送").click()
        await page.wait_for_url(re.compile(r"sent=1"))
        added = await event_where(
            tap,
            lambda e: (
                isinstance(e.data, TicketMessageAdded)
                and e.subject == ticket_id
                and e.data.author.value == "requester"
            ),
        )
    assert isinstance(added.data, TicketMessageAdded)
    assert added.data.secret_redacted
    assert added.data.body is not None
    assert "[REDACTED:bip39_mnemonic]" in added.data.body
    assert "abandon" not in added.data.body
    assert "助记词或私钥" in await page.get_by_role("alert").inner_text()
    timeline = await page.locator(".timeline").inner_text()
    assert "[REDACTED:bip39_mnemonic]" in timeline
    assert "abandon" not in timeline
    assert "安全提醒" in timeline

    await page.get_by_role("link", name="English").click()
    assert await page.locator("html").get_attribute("lang") == "en"
    assert "An agent is working on your request." in await page.locator("#now").inner_text()
    await screenshot(page, "status-en")


# --- inbox ----------------------------------------------------------------------------------


async def test_a_new_notification_appears_in_the_open_inbox_without_a_reload(
    stack: Stack, page: Page
) -> None:
    requester = requester_id()
    ticket = await stack.open_ticket(
        requester=requester,
        locale="zh-CN",
        timezone="Asia/Shanghai",
        subject="提币卡住",
        description="提币一直显示处理中。",
    )
    await stack.mail_to(requester, "我们已收到您的请求")
    inbox_url = f"{stack.urls['notifier']}/inbox?token="
    inbox_url += stack.inbox_token(requester, "zh-CN", "Asia/Shanghai")

    async def listed() -> bool:
        await page.goto(inbox_url)
        return await page.locator("#items li").count() == 1

    await eventually_true(listed)
    await page.wait_for_selector('#items[data-live="connected"]')
    await page.evaluate("window.stillTheSamePage = true")

    await stack.agent_reply(ticket["id"], "您好，您的提币已在链上确认，请查收。")
    await page.locator("#items li", has_text="您的提币已在链上确认").wait_for(timeout=20_000)
    assert await page.evaluate("window.stillTheSamePage === true")
    assert await page.locator("#items li").count() == 2
    assert await page.locator("#unread-count").inner_text() == "2 条未读"
    await screenshot(page, "inbox-zh-CN")

    newest = page.locator("#items li").first
    item_id = await newest.get_attribute("data-id")
    await newest.get_by_role("button").click()
    await page.wait_for_url(re.compile(r"/inbox\?token="))
    marked = page.locator(f'#items li[data-id="{item_id}"]')
    assert await marked.get_attribute("class") == "read"
    assert await page.locator("#unread-count").inner_text() == "1 条未读"

    await page.get_by_role("link", name="English").click()
    assert await page.locator("#unread-count").inner_text() == "1 unread"
    await screenshot(page, "inbox-en")


# --- access ---------------------------------------------------------------------------------


async def test_status_links_and_forms_never_reach_another_requesters_ticket(
    stack: Stack,
) -> None:
    mine, theirs = requester_id(), requester_id()
    own = await stack.open_ticket(
        requester=mine, locale="en", timezone="UTC", subject="My deposit", description="x"
    )
    other = await stack.open_ticket(
        requester=theirs,
        locale="en",
        timezone="UTC",
        subject="THEIR-PRIVATE-SUBJECT",
        description="THEIR-PRIVATE-DESCRIPTION",
    )
    own_link = stack.status_link(mine, own["id"])
    token = own_link.rsplit("/", 1)[1]
    refused = {
        "a link for another requester's ticket": stack.status_link(mine, other["id"]),
        "a link naming the right requester of another ticket": stack.status_link(theirs, own["id"]),
        "a link whose ticket id was edited": own_link.replace(
            token, with_claims(token, ticket_id=other["id"])
        ),
        "a link whose requester was edited": own_link.replace(
            token, with_claims(token, requester_id=theirs)
        ),
        "an expired link": stack.status_link(mine, own["id"], ttl=timedelta(seconds=-5)),
        "garbage": f"{stack.urls['intake']}/t/not-a-token",
    }
    async with httpx.AsyncClient(timeout=10) as browser_like:
        for why, url in refused.items():
            response = await browser_like.get(url)
            assert response.status_code in (404, 410), why
            assert is_friendly_page(response), why
            assert "THEIR-PRIVATE" not in response.text, why
            assert "My deposit" not in response.text, why

        page = await browser_like.get(own_link)
        assert page.status_code == 200
        assert "My deposit" in page.text
        assert "THEIR-PRIVATE" not in page.text
        csrf = csrf_of(page.text)
        reply = f"{own_link}/reply"
        form = {"csrf_token": csrf, "ticket_id": own["id"], "message": "hello"}
        attempts = {
            "another ticket in the form": {**form, "ticket_id": other["id"]},
            "no CSRF field": {k: v for k, v in form.items() if k != "csrf_token"},
            "a wrong CSRF field": {**form, "csrf_token": "0" * 64},
        }
        for why, data in attempts.items():
            response = await browser_like.post(reply, data=data)
            assert response.status_code == 403, why
            assert is_friendly_page(response), why
        async with httpx.AsyncClient(timeout=10) as without_cookie:
            assert (await without_cookie.post(reply, data=form)).status_code == 403
        sent = await browser_like.post(reply, data=form)
        assert sent.status_code == 303

    def requester_messages(ticket: dict[str, Any]) -> list[str]:
        return [m["body"] for m in ticket["messages"] if m["author"] == "requester"]

    assert requester_messages(await stack.ticket(own["id"])) == ["hello"]
    assert requester_messages(await stack.ticket(other["id"])) == []


async def test_the_inbox_page_shows_and_marks_only_the_tokens_own_items(stack: Stack) -> None:
    mine, theirs = requester_id(), requester_id()
    await stack.open_ticket(
        requester=mine, locale="en", timezone="UTC", subject="Mine", description="x"
    )
    other = await stack.open_ticket(
        requester=theirs, locale="en", timezone="UTC", subject="THEIR-SUBJECT", description="x"
    )
    notifier = stack.urls["notifier"]
    my_token = stack.inbox_token(mine, "en", "UTC")
    their_token = stack.inbox_token(theirs, "en", "UTC")

    async def their_items() -> list[dict[str, Any]]:
        response = await stack.http.get(
            f"{notifier}/v1/inbox", headers={"Authorization": f"Bearer {their_token}"}
        )
        return list(response.json()["items"])

    async def both_delivered() -> bool:
        mine_page = await stack.http.get(f"{notifier}/inbox", params={"token": my_token})
        return "Mine" in mine_page.text and bool(await their_items())

    await eventually_true(both_delivered)
    their_item = (await their_items())[0]["id"]
    async with httpx.AsyncClient(timeout=10) as browser_like:
        page = await browser_like.get(f"{notifier}/inbox", params={"token": my_token})
        assert other["id"] not in page.text
        assert "THEIR-SUBJECT" not in page.text
        csrf = csrf_of(page.text)
        foreign = await browser_like.post(
            f"{notifier}/inbox/{their_item}/read",
            params={"token": my_token},
            data={"csrf_token": csrf},
        )
        assert foreign.status_code == 404
        assert is_friendly_page(foreign)
        no_csrf = await browser_like.post(
            f"{notifier}/inbox/{their_item}/read", params={"token": their_token}, data={}
        )
        assert no_csrf.status_code == 403
        forged = await browser_like.get(
            f"{notifier}/inbox", params={"token": with_claims(my_token, requester_id=theirs)}
        )
        assert forged.status_code == 404
        assert "THEIR-SUBJECT" not in forged.text
    assert (await their_items())[0]["read_at"] is None


async def test_survey_links_that_cannot_be_used_explain_why_on_a_page(
    stack: Stack, page: Page
) -> None:
    requester = requester_id()
    _, email_html = await solved_with_survey(stack, requester, "en", "UTC")
    survey_link = links_in(email_html, r"/s/[^/]+$")[0]
    feedback = stack.urls["feedback"]
    expired, _ = issue_token(
        SURVEY_SECRET.encode(), "any-survey", datetime.now(UTC) - timedelta(days=9), timedelta(1)
    )
    async with httpx.AsyncClient(timeout=10) as browser_like:
        forged = await browser_like.get(f"{feedback}/s/abc.def")
        assert forged.status_code == 404
        assert is_friendly_page(forged)
        gone = await browser_like.get(f"{feedback}/s/{expired}")
        assert gone.status_code == 410
        assert is_friendly_page(gone)
        no_score = await browser_like.get(f"{survey_link}/score/9")
        assert no_score.status_code == 404
        assert is_friendly_page(no_score)
        await browser_like.get(survey_link)
        no_csrf = await browser_like.post(survey_link, data={"score": "5"})
        assert no_csrf.status_code == 403
        assert is_friendly_page(no_csrf)

    await page.goto(f"{feedback}/s/{expired}")
    assert "Link expired" in await page.locator("h1").inner_text()
    await screenshot(page, "error-en")
    await page.get_by_role("link", name="中文").click()
    assert await page.locator("html").get_attribute("lang") == "zh-CN"
    assert "链接已过期" in await page.locator("h1").inner_text()
    await screenshot(page, "error-zh-CN")
