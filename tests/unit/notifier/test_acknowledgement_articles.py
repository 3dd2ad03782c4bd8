"""The acknowledgement lists the three suggested help articles, titles and links to their
public pages on intake, in the requester's language; titles are escaped in HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notifier.config import DEFAULT_TEMPLATES_DIR
from services.notifier.domain import BLOCKS, Recipient, TicketFacts, values_of
from services.notifier.pages import link_values
from services.notifier.settings import NotifierSettings
from services.notifier.templates import Rendered, Templates
from shared.events import ArticleSuggestion, Requester, Status, TicketCreated, TicketSummary
from tests.support import secret_settings

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
BASE = "https://help.example.com"
SUGGESTED = {
    "zh-CN": [
        ("usdt-trc20-withdrawal-pending-zh", "USDT（TRC20）提现处理中或未到账"),
        ("withdrawal-under-review-zh", "提现为什么显示“审核中”或被暂停？"),
        ("transfer-failed-gas-nonce-zh", "转账失败或卡住 <gas 不足>"),
    ],
    "en": [
        ("usdt-trc20-withdrawal-pending-en", "My USDT (TRC20) withdrawal is pending"),
        ("withdrawal-under-review-en", 'Why is my withdrawal "under review"?'),
        ("transfer-failed-gas-nonce-en", "My transfer failed <out of gas>"),
    ],
}
HEADING = {"zh-CN": "以下文章或许能解答您的问题", "en": "Articles that may answer your question"}


def acknowledgement(language: str) -> Rendered:
    """Rendered as notifier does it: the event's values, the requester's links, the email."""
    created = TicketCreated(
        ticket_id="7c0e5a0e-1d1b-4a7e-8a2b-3c2f4d5e6f70",
        ticket=TicketSummary(
            number=482913,
            status=Status.new,
            priority="normal",
            category="withdrawal_delay",
            channel="app",
            group="payments",
            requester_id="u-42",
            created_at=NOW,
        ),
        requester=Requester(id="u-42", locale=language, timezone="Asia/Shanghai"),
        subject="提现未到账" if language == "zh-CN" else "Withdrawal not received",
        suggested_articles=[
            ArticleSuggestion(id=i, title=t, language=language) for i, t in SUGGESTED[language]
        ],
    )
    values: dict[str, Any] = values_of(created, TicketFacts(ticket_id=created.ticket_id))
    cfg = NotifierSettings(status_page_base_url=BASE, **secret_settings(NotifierSettings))
    recipient = Recipient("requester", "email", "li@example.com", "u-42", language, "UTC")
    values.update(link_values(cfg, recipient, values, NOW))
    templates = Templates(DEFAULT_TEMPLATES_DIR)
    return templates.render("ticket_acknowledged", language, "UTC", BLOCKS["email"], values)


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_acknowledgement_lists_three_article_titles_with_their_links(language: str) -> None:
    mail = acknowledgement(language)
    links = [f"{BASE}/help/articles/{article_id}" for article_id, _ in SUGGESTED[language]]

    assert HEADING[language] in mail.text
    for (_, title), link in zip(SUGGESTED[language], links, strict=True):
        assert f"- {title}\n  {link}" in mail.text
    assert re.findall(r"/help/articles/[a-z0-9-]+", mail.text) == [
        link.removeprefix(BASE) for link in links
    ]

    assert HEADING[language] in mail.html
    hrefs = re.findall(r'<li><a href="([^"]+)">([^<]*)</a></li>', mail.html)
    assert [href for href, _ in hrefs] == links
    assert "&lt;" in hrefs[2][1]  # the title is text, never markup
    assert "<gas" not in mail.html
    assert "<out of gas>" not in mail.html


def test_without_a_status_page_the_acknowledgement_lists_no_article_links() -> None:
    templates = Templates(DEFAULT_TEMPLATES_DIR)
    values = {"ticket_id": "T-9", "subject": "s", "first_reply_due": None, "articles": []}
    for language in ("zh-CN", "en"):
        mail = templates.render("ticket_acknowledged", language, "UTC", BLOCKS["email"], values)
        assert HEADING[language] not in mail.text
        assert "/help/articles/" not in mail.html
