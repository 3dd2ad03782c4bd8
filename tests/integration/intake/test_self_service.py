"""Self-service answers on the real broker and MongoDB: suggested articles on the status
page and in ticket.created, article pages, and "this solved my problem" (with its attacks)."""

from __future__ import annotations

import re
from typing import Any

from shared.events import Status, TicketCreated, TicketSolvedByArticle, TicketStatusChanged
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_http_api import get_ticket, of_ticket, patch, tickets_tap
from tests.integration.intake.test_ticket_numbers import status_path

STUCK_TRC20 = {
    "subject": "提现未到账",
    "description": "我的USDT提现已经3小时还没到账，TRC20网络",
    "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
}
FIRST_ARTICLE = "usdt-trc20-withdrawal-pending-zh"
FORM = re.compile(r'<form method="post" action="(/t/[^"]+/solved[^"]*)">(.*?)</form>', re.S)
FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def solve_forms(html: str) -> list[tuple[str, dict[str, str]]]:
    """Each "this solved my problem" form: its action and hidden fields, as a browser sends."""
    return [(action, dict(FIELD.findall(body))) for action, body in FORM.findall(html)]


async def status_page(intake: Intake, ticket: dict[str, Any]) -> tuple[str, str]:
    path = status_path(intake, ticket)
    page = await intake.http.get(path)
    assert page.status_code == 200
    return path, page.text


async def test_the_ticket_created_event_and_the_status_page_suggest_three_articles(
    intake: Intake, uid: str
) -> None:
    async with tickets_tap(intake) as tap:
        ticket = await intake.open(requester={"id": f"u-{uid}", "locale": "zh-CN"}, **STUCK_TRC20)
        await tap.collect(1)
    created = [e.data for e in of_ticket(tap, ticket["id"]) if isinstance(e.data, TicketCreated)]
    suggested = [a.id for a in created[0].suggested_articles]
    assert len(suggested) == 3
    assert suggested[0] == FIRST_ARTICLE

    _, html = await status_page(intake, ticket)
    for article_id in suggested:
        assert f'href="/help/articles/{article_id}"' in html
    assert len(solve_forms(html)) == 3


async def test_an_article_page_shows_the_article_in_its_language_without_raw_html(
    intake: Intake,
) -> None:
    page = await intake.http.get(f"/help/articles/{FIRST_ARTICLE}")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text
    assert "USDT（TRC20）提现" in page.text
    assert 'href="https://tronscan.org"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    english = await intake.http.get("/help/articles/usdt-trc20-withdrawal-pending-en")
    assert '<html lang="en">' in english.text


async def test_unknown_or_traversing_article_ids_get_the_friendly_404(intake: Intake) -> None:
    for path in (
        "/help/articles/no-such-article",
        "/help/articles/..%2F..%2Fetc%2Fpasswd",
        "/help/articles/%2E%2E",
        "/help/articles/UPPER",
    ):
        page = await intake.http.get(path)
        assert page.status_code == 404, path
        assert "root:" not in page.text


async def test_this_solved_my_problem_solves_the_ticket_once_with_its_event(
    intake: Intake, uid: str
) -> None:
    ticket = await intake.open(requester={"id": f"u-{uid}", "locale": "zh-CN"}, **STUCK_TRC20)
    _path, html = await status_page(intake, ticket)
    action, fields = solve_forms(html)[0]
    async with tickets_tap(intake) as tap:
        sent = await intake.http.post(action, data=fields)
        assert sent.status_code == 303
        await tap.collect(3)

    assert (await get_ticket(intake, ticket["id"]))["status"] == "solved"
    events = [e.data for e in of_ticket(tap, ticket["id"])]
    solved = [e for e in events if isinstance(e, TicketSolvedByArticle)]
    assert [(e.article_id, e.language, e.old) for e in solved] == [
        (fields["article_id"], "zh-CN", Status.new)
    ]
    changes = [(e.old, e.new) for e in events if isinstance(e, TicketStatusChanged)]
    assert changes == [(Status.new, Status.solved)]

    after = await intake.http.get(sent.headers["location"])
    assert "Glad that helped" in after.text
    assert solve_forms(after.text) == []  # a solved ticket offers no second solve
    again = await intake.http.post(action, data={**fields, "request_id": ""})
    assert again.status_code == 409
    metrics = (await intake.http.get("/metrics")).text
    assert (
        'helpstream_intake_tickets_deflected_total{category="withdrawal_delay",channel="app"}'
        in metrics
    )


async def test_a_solve_without_or_with_a_forged_csrf_field_is_refused(
    intake: Intake, uid: str
) -> None:
    ticket = await intake.open(requester={"id": f"u-{uid}", "locale": "en"}, **STUCK_TRC20)
    _, html = await status_page(intake, ticket)
    action, fields = solve_forms(html)[0]
    missing = {k: v for k, v in fields.items() if k != "csrf_token"}
    assert (await intake.http.post(action, data=missing)).status_code == 403
    forged = {**fields, "csrf_token": "0" * 64}
    assert (await intake.http.post(action, data=forged)).status_code == 403
    intake.http.cookies.clear()  # the field without the cookie it is bound to
    assert (await intake.http.post(action, data=fields)).status_code == 403
    assert (await get_ticket(intake, ticket["id"]))["status"] == "new"


async def test_one_tickets_link_cannot_solve_another_ticket(intake: Intake, uid: str) -> None:
    mine = await intake.open(requester={"id": f"u-{uid}", "locale": "en"}, **STUCK_TRC20)
    other = await intake.open(requester={"id": f"v-{uid}", "locale": "en"}, **STUCK_TRC20)
    _, html = await status_page(intake, mine)
    action, fields = solve_forms(html)[0]
    sent = await intake.http.post(action, data={**fields, "ticket_id": other["id"]})
    assert sent.status_code == 403
    assert (await get_ticket(intake, other["id"]))["status"] == "new"
    assert (await get_ticket(intake, mine["id"]))["status"] == "new"


async def test_a_closed_ticket_cannot_be_solved_again(intake: Intake, uid: str) -> None:
    ticket = await intake.open(requester={"id": f"u-{uid}", "locale": "en"}, **STUCK_TRC20)
    _, html = await status_page(intake, ticket)
    action, fields = solve_forms(html)[0]
    await patch(intake, ticket["id"], status="solved")
    await patch(intake, ticket["id"], status="closed")
    sent = await intake.http.post(action, data=fields)
    assert sent.status_code == 409
    assert (await get_ticket(intake, ticket["id"]))["status"] == "closed"


async def test_article_ids_in_the_form_are_validated(intake: Intake, uid: str) -> None:
    ticket = await intake.open(requester={"id": f"u-{uid}", "locale": "en"}, **STUCK_TRC20)
    _, html = await status_page(intake, ticket)
    action, fields = solve_forms(html)[0]
    for bad in ("../../etc/passwd", "no-such-article", "", "x" * 500):
        sent = await intake.http.post(action, data={**fields, "article_id": bad})
        assert sent.status_code == 422, bad
    assert (await get_ticket(intake, ticket["id"]))["status"] == "new"
