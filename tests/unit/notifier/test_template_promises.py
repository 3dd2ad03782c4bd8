"""No template promises what the configuration does not provide.

Every template, in every language it exists in, every block, rendered with and without
inbound mail and with and without a status page link: without inbound mail no text may
tell the reader to reply by email (nothing would read the reply). Every promised time
names its zone, and the short ticket number is shown when the ticket has one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notifier.config import DEFAULT_TEMPLATES_DIR
from services.notifier.domain import BLOCKS, ticket_ref
from services.notifier.templates import Templates

DUE = datetime(2026, 11, 29, 10, 56, 33, tzinfo=UTC)
ALL_BLOCKS = tuple(dict.fromkeys(b for blocks in BLOCKS.values() for b in blocks))
TEMPLATE_FILES = sorted(DEFAULT_TEMPLATES_DIR.glob("*.j2"))

# Ways a text tells its reader that answering the email itself works.
REPLY_BY_EMAIL = {
    "en": re.compile(
        r"reply\s+to\s+(this|our|the)\s+(e-?mail|message)|just\s+reply|reply\s+by\s+e-?mail"
        r"|hit\s+reply|answer\s+this\s+e-?mail|respond\s+to\s+this\s+e-?mail",
        re.IGNORECASE,
    ),
    "zh-CN": re.compile(r"回复(此|本|这封|我们的)?邮件|直接回复|回信"),
}


def values(*, status_url: str | None, inbound: bool, number: int | None = None) -> dict[str, Any]:
    """Every value any template may print (as the handler gives them)."""
    return {
        "ticket_id": "3f1c2b7e-0d7a-4f7e-9f59-2a1f0c9d4e11",
        **ticket_ref("3f1c2b7e-0d7a-4f7e-9f59-2a1f0c9d4e11", number),
        "subject": "Withdrawal not received",
        "first_reply_due": DUE,
        "status": "open",
        "priority": "high",
        "category": "withdrawal_delay",
        "group": "payments",
        "assignee": None,
        "body": "We are checking the chain.",
        "old": "open",
        "new": "solved",
        "level": 1,
        "reason": "sla_breach",
        "metric": "first_reply",
        "deadline": DUE,
        "remaining_s": 900.0,
        "policy": "default",
        "threshold": 0.75,
        "breached_at": DUE,
        "survey_url": "http://127.0.0.1:8003/v1/surveys/tok",
        "survey_page_url": "http://127.0.0.1:8003/s/tok",
        "expires_at": DUE,
        "score": 2,
        "reasons": ["slow"],
        "agent": "agent-7",
        "attitude": 2,
        "speed": 1,
        "clarity": 3,
        "items": [{"title": "New reply", "body": "We are checking.", "time": DUE}],
        "status_url": status_url,
        "reply_by_email": inbound,
    }


def render_all(
    name: str, lang: str, *, status_url: str | None, inbound: bool, number: int | None = None
) -> dict[str, str]:
    rendered = Templates(DEFAULT_TEMPLATES_DIR).render(
        name,
        lang,
        "Asia/Shanghai",
        ALL_BLOCKS,
        values(status_url=status_url, inbound=inbound, number=number),
    )
    return {block: getattr(rendered, block) for block in ALL_BLOCKS}


def split(path_name: str) -> tuple[str, str]:
    template, lang, _ = path_name.rsplit(".", 2)
    return template, lang


CASES = [
    pytest.param(*split(p.name), link, id=f"{p.name}-{'link' if link else 'nolink'}")
    for p in TEMPLATE_FILES
    for link in ("http://127.0.0.1:8001/t/tok", None)
]


def test_both_languages_are_checked() -> None:
    langs = {split(p.name)[1] for p in TEMPLATE_FILES}
    assert langs == set(REPLY_BY_EMAIL)


@pytest.mark.parametrize(("template", "lang", "status_url"), CASES)
def test_no_text_promises_replying_by_email_without_inbound_mail(
    template: str, lang: str, status_url: str | None
) -> None:
    blocks = render_all(template, lang, status_url=status_url, inbound=False)
    promises = {b: REPLY_BY_EMAIL[lang].findall(text) for b, text in blocks.items()}
    assert not any(promises.values()), f"{template}.{lang} promises email replies: {promises}"


@pytest.mark.parametrize(("template", "lang", "status_url"), CASES)
def test_every_template_renders_with_inbound_mail_too(
    template: str, lang: str, status_url: str | None
) -> None:
    blocks = render_all(template, lang, status_url=status_url, inbound=True)
    assert all(blocks[b] for b in ("subject", "text", "title", "body"))


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@pytest.mark.parametrize("template", ["ticket_acknowledged", "agent_reply", "status_solved"])
def test_with_inbound_mail_the_requester_is_told_replying_works(template: str, lang: str) -> None:
    text = render_all(template, lang, status_url=None, inbound=True)["text"]
    assert REPLY_BY_EMAIL[lang].search(text)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_without_inbound_mail_a_solved_ticket_points_to_the_status_page(lang: str) -> None:
    link = "http://127.0.0.1:8001/t/tok"
    blocks = render_all("status_solved", lang, status_url=link, inbound=False)
    assert link in blocks["text"]
    assert f'href="{link}"' in blocks["html"]


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("zh-CN", "2026年11月29日 18:56 (北京时间 / Asia/Shanghai)"),
        ("en", "Nov 29, 2026, 6:56 PM (Asia/Shanghai)"),
    ],
)
def test_the_promised_first_reply_time_names_its_zone(lang: str, expected: str) -> None:
    blocks = render_all("ticket_acknowledged", lang, status_url=None, inbound=False)
    for block in ("text", "html", "body"):
        assert expected in blocks[block]


@pytest.mark.parametrize(("template", "lang", "status_url"), CASES)
def test_every_time_a_template_prints_names_its_zone(
    template: str, lang: str, status_url: str | None
) -> None:
    """18:56 is 10:56 UTC in Asia/Shanghai; wherever it is printed, the zone follows."""
    for block, text in render_all(template, lang, status_url=status_url, inbound=False).items():
        for match in re.finditer(r"18:56|6:56\s?PM", text):
            tail = text[match.end() : match.end() + 40]
            if template == "digest":  # an update's own time stamp, not a promise
                continue
            assert "Asia/Shanghai" in tail, f"{template}.{lang} {block}: {text!r}"


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_short_ticket_number_is_in_the_subject_and_beside_the_id(lang: str) -> None:
    blocks = render_all("ticket_acknowledged", lang, status_url=None, inbound=False, number=482913)
    assert blocks["subject"].startswith("[#482913]")
    assert "#482913" in blocks["text"]
    assert "3f1c2b7e-0d7a-4f7e-9f59-2a1f0c9d4e11" in blocks["text"]
    without = render_all("ticket_acknowledged", lang, status_url=None, inbound=False)
    assert without["subject"].startswith("[3f1c2b7e-0d7a-4f7e-9f59-2a1f0c9d4e11]")
