"""Deflection in the CSAT report: solves that came with `ticket.solved_by_article`, per
category and channel, on the real broker and MongoDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.events import CloudEvent, Contract, Status, TicketSolvedByArticle
from tests.integration.feedback.conftest import (
    START,
    Feedback,
    event,
    reopened,
    solved,
    summary,
    token_of,
)
from tests.support import eventually

WINDOW = {
    "from": (START - timedelta(days=1)).isoformat(),
    "to": (START + timedelta(days=1)).isoformat(),
}
DEFLECTION = "helpstream_feedback_deflection_{}_ratio"


def by_article(ticket_id: str, at: Any, article: str, **ticket: Any) -> CloudEvent[Contract]:
    return event(
        TicketSolvedByArticle(
            ticket_id=ticket_id,
            ticket=summary(Status.solved, **ticket),
            article_id=article,
            language="en",
            old=Status.new,
        ),
        at,
    )


async def report(feedback: Feedback, group_by: str) -> dict[str, Any]:
    response = await feedback.http.get("/v1/csat", params={"group_by": group_by, **WINDOW})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def deflection(body: dict[str, Any]) -> dict[str | None, tuple[int, int, float | None]]:
    rows = [*body["groups"], body["total"]]
    return {r["key"]: (r["surveys"], r["deflected"], r["deflection_pct"]) for r in rows}


async def test_csat_report_counts_solves_by_article_per_category_and_channel(
    feedback: Feedback, uid: str
) -> None:
    t = {name: f"{uid}-{name}" for name in ("a", "b", "c", "d", "e")}
    trc20 = {"category": "withdrawal_delay", "channel": "app"}
    kyc = {"category": "kyc", "channel": "web"}
    at = START - timedelta(hours=2)
    async with feedback.feedback_events() as tap:
        await feedback.send(
            # a and b: solved by an article (the status change comes with it, same time)
            by_article(t["a"], at, "usdt-trc20-withdrawal-pending-en", **trc20),
            solved(t["a"], at, **trc20),
            by_article(t["b"], at, "kyc-verification-rejected-en", **kyc),
            solved(t["b"], at, **kyc),
            # c: solved by an agent
            solved(t["c"], at, **trc20),
            # d: solved by an article, then reopened before rating: not a deflection
            by_article(t["d"], at, "usdt-trc20-withdrawal-pending-en", **trc20),
            solved(t["d"], at, **trc20),
            reopened(t["d"], at + timedelta(minutes=5)),
            # e: its article event in one send, its solve in the next (another batch)
            by_article(t["e"], at + timedelta(minutes=1), "lost-2fa-reset-en", **kyc),
        )
        await feedback.send(solved(t["e"], at + timedelta(minutes=1), **kyc))
        await feedback.requested(tap, 5)

    async def cancelled_counted() -> dict[str, Any]:
        body = await report(feedback, "category")
        return body if body["total"]["surveys"] == 4 else {}  # empty: not yet

    by_category = deflection(await eventually(cancelled_counted))
    assert by_category == {
        "kyc": (2, 2, 100.0),
        "withdrawal_delay": (2, 1, 50.0),
        None: (4, 3, 75.0),
    }
    by_channel = deflection(await report(feedback, "channel"))
    assert by_channel == {"app": (2, 1, 50.0), "web": (2, 2, 100.0), None: (4, 3, 75.0)}


async def test_deflection_gauges_show_the_share_per_channel_and_category(
    feedback: Feedback, uid: str
) -> None:
    """Over the trailing window, so the solves are an hour before the service's clock."""
    at = feedback.clock.now() - timedelta(hours=1)
    chat = {"category": "deposit_missing", "channel": "chat"}
    async with feedback.feedback_events() as tap:
        await feedback.send(
            by_article(f"{uid}-1", at, "deposit-not-credited-en", **chat),
            solved(f"{uid}-1", at, **chat),
            solved(f"{uid}-2", at, **chat),
        )
        requested = await feedback.requested(tap, 2)
    # a rating refreshes the gauges at once (else within csat_gauge_interval_s)
    rated = await feedback.rate(token_of(requested[f"{uid}-2"]), score=5)
    assert rated.status_code == 200, rated.text

    async def shown() -> bool:
        channel = feedback.metric(DEFLECTION.format("channel"), channel="chat")
        category = feedback.metric(DEFLECTION.format("category"), category="deposit_missing")
        return channel == category == 0.5

    await eventually(shown)


async def test_a_later_solve_by_an_agent_is_not_a_deflection(feedback: Feedback, uid: str) -> None:
    ticket = f"{uid}-again"
    first = START - timedelta(hours=3)
    second = START - timedelta(hours=1)
    async with feedback.feedback_events() as tap:
        await feedback.send(
            by_article(ticket, first, "deposit-not-credited-en"),
            solved(ticket, first),
        )
        await feedback.requested(tap, 1)
        await feedback.send(solved(ticket, second))  # solved again, later, by an agent
        await feedback.requested(tap, 2)
    body = await report(feedback, "channel")
    assert deflection(body)[None] == (2, 1, 50.0)
