"""What the status page shows of a ticket, and the page links notifier puts in emails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.domain import Ticket
from services.intake.pages import progress, promised_reply, timeline
from services.notifier.domain import Recipient
from services.notifier.pages import link_values, survey_page_url
from services.notifier.settings import NotifierSettings
from shared.events import Author, Category, Channel, Priority, Requester, Status
from shared.web.links import verify_ticket_link
from tests.support import secret_settings

LINK_SECRET = "unit-test-link-secret-0123456789abcdef"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def ticket(status: Status = Status.new) -> Ticket:
    opened = Ticket.open(
        ticket_id="T-1",
        requester=Requester(id="u-42"),
        channel=Channel.app,
        subject="Deposit missing",
        description="My deposit did not arrive",
        category=Category.deposit_missing,
        priority=Priority.high,
        group="payments",
        now=NOW,
    )
    opened.status = status
    return opened


def say(t: Ticket, author: Author, body: str, minutes: int, public: bool = True) -> None:
    t.add_message(
        message_id=f"m{minutes}",
        author=author,
        author_id=None,
        body=body,
        public=public,
        now=NOW + timedelta(minutes=minutes),
    )


def test_the_timeline_shows_the_request_and_public_messages_but_never_internal_notes() -> None:
    t = ticket(Status.open)
    say(t, Author.agent, "internal: looks like a scam", 1, public=False)
    say(t, Author.agent, "We are checking", 2)
    say(t, Author.requester, "Thanks", 3)
    entries = timeline(t)
    assert [(e.kind, e.body) for e in entries] == [
        ("received", "My deposit did not arrive"),
        ("agent", "We are checking"),
        ("requester", "Thanks"),
    ]


@pytest.mark.parametrize(
    ("status", "replied", "states"),
    [
        (Status.new, False, ["current", "todo", "todo", "todo", "todo"]),
        (Status.open, False, ["current", "todo", "todo", "todo", "todo"]),
        (Status.open, True, ["done", "current", "todo", "todo", "todo"]),
        (Status.pending, True, ["done", "done", "current", "todo", "todo"]),
        (Status.on_hold, True, ["done", "done", "todo", "current", "todo"]),
        (Status.solved, True, ["done", "done", "todo", "todo", "done"]),
        (Status.closed, False, ["done", "todo", "todo", "todo", "done"]),
    ],
)
def test_progress_marks_where_the_ticket_is(
    status: Status, replied: bool, states: list[str]
) -> None:
    t = ticket()
    if replied:
        say(t, Author.agent, "hello", 1)
    t.status = status
    assert [s.state for s in progress(t)] == states


def clock(metric: str, state: str, deadline: str | None) -> dict[str, Any]:
    return {"metric": metric, "state": state, "deadline": deadline}


def test_the_promised_reply_is_the_earliest_running_reply_clock() -> None:
    sla = {
        "clocks": [
            clock("resolution", "running", "2026-11-23T13:00:00+00:00"),
            clock("first_reply", "stopped", "2026-11-23T12:10:00+00:00"),
            clock("next_reply", "running", "2026-11-23T14:00:00+00:00"),
            clock("next_reply", "paused", "2026-11-23T12:30:00+00:00"),
            clock("first_reply", "running", None),
            clock("first_reply", "running", "not a time"),
        ]
    }
    assert promised_reply(sla) == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert promised_reply({"clocks": []}) is None
    assert promised_reply({}) is None


def test_the_survey_page_url_comes_from_the_survey_api_url() -> None:
    api = "https://help.example.com/v1/surveys/abc.def"
    assert survey_page_url(api) == "https://help.example.com/s/abc.def"
    assert survey_page_url("https://help.example.com/s/abc") is None


def recipient(kind: str = "requester") -> Recipient:
    return Recipient(kind, "email", "a@example.com", "u-42", "zh-CN", "Asia/Shanghai")  # type: ignore[arg-type]


def test_requester_messages_get_a_status_link_for_their_ticket_only() -> None:
    cfg = NotifierSettings(
        **{
            **secret_settings(NotifierSettings),
            "requester_link_secret": LINK_SECRET,
            "status_page_base_url": "https://help.example.com/",
        }
    )
    values = {"ticket_id": "T-1", "survey_url": "https://f.example.com/v1/surveys/tok.sig"}
    links = link_values(cfg, recipient(), values, NOW)
    assert links["survey_page_url"] == "https://f.example.com/s/tok.sig"
    token = links["status_url"].removeprefix("https://help.example.com/t/")
    claims = verify_ticket_link(LINK_SECRET.encode(), token, NOW + timedelta(days=29))
    assert (claims.requester_id, claims.ticket_id, claims.locale, claims.tz) == (
        "u-42",
        "T-1",
        "zh-CN",
        "Asia/Shanghai",
    )
    assert link_values(cfg, recipient("lead"), values, NOW) == {
        "status_url": None,
        "survey_page_url": None,
        "articles": [],
    }
    off = cfg.model_copy(update={"status_page_base_url": None})
    assert link_values(off, recipient(), {"ticket_id": "T-1"}, NOW)["status_url"] is None
