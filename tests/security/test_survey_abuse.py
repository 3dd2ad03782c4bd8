"""Survey abuse: link scanners must not rate tickets, and a flipped score must not page
the leads or escalate the ticket again and again.

Before the fix, a GET on a one-click score link recorded the score, and every time a
survey's score went from high back to low feedback asked for a new follow-up: flipping
1 ↔ 5 nine times escalated the ticket to level 3 / urgent and mailed the leads on every
low score. These tests run the attacks on the real broker and MongoDB.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.notifier.config import load_rules
from services.notifier.domain import Incoming, Preferences, TicketFacts, plan
from shared.events import FeedbackSubmitted, make_event
from tests.integration.feedback import conftest as feedback_fixtures
from tests.integration.feedback.conftest import Feedback, of_type, solved, token_of
from tests.integration.intake import conftest as intake_fixtures
from tests.integration.intake.conftest import Intake
from tests.support import Tap, eventually, produce

if TYPE_CHECKING:
    import httpx

    from shared.events import CloudEvent, Contract

# The services under attack, run as in their own integration tests (pytest registers a
# fixture under the name it is bound to here).
survey_service = feedback_fixtures.feedback
ticket_service = intake_fixtures.intake
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
SCANNER_HEADERS = {"user-agent": "Mozilla/5.0 (compatible; SafeLinks-Scanner/1.0)"}


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def survey_token(feedback: Feedback, tap: Tap, ticket_id: str) -> str:
    await feedback.send(solved(ticket_id))
    return token_of((await feedback.requested(tap, 1))[ticket_id])


async def submitted(tap: Tap, count: int) -> list[CloudEvent[Contract]]:
    async def arrived() -> bool:
        await tap.collect(len(tap.records) + 1, timeout=0.3)
        return len(of_type(tap, "submitted")) >= count

    await eventually(arrived, timeout=30)
    return of_type(tap, "submitted")


async def post_score(feedback: Feedback, token: str, score: int, csrf: str) -> httpx.Response:
    return await feedback.http.post(
        f"/s/{token}", data={"csrf_token": csrf, "part": "score", "score": str(score)}
    )


async def test_a_mail_scanner_fetching_every_score_link_records_no_rating(
    survey_service: Feedback,
) -> None:
    feedback = survey_service
    async with feedback.feedback_events() as tap:
        token = await survey_token(feedback, tap, "T-scan")
        for n in (1, 2, 3, 4, 5, 1):
            opened = await feedback.http.get(f"/s/{token}/score/{n}", headers=SCANNER_HEADERS)
            assert opened.status_code == 200, opened.text
            assert f'value="{n}" required checked' in opened.text  # shown chosen, not saved
        assert (await feedback.http.get(f"/s/{token}")).status_code == 200
        await tap.settle(1.5)
    assert of_type(tap, "submitted") == []
    view = (await feedback.http.get(f"/v1/surveys/{token}")).json()
    assert (view["status"], view["rating"]) == ("requested", None)
    assert feedback.metric("helpstream_feedback_survey_pages_total", view="score_link") == 6
    assert feedback.metric("helpstream_feedback_ratings_recorded_total", via="page") == 0


async def test_a_score_posted_without_the_pages_csrf_token_is_refused(
    survey_service: Feedback,
) -> None:
    feedback = survey_service
    async with feedback.feedback_events() as tap:
        token = await survey_token(feedback, tap, "T-csrf")
        other = await survey_token(feedback, tap, "T-csrf-other")
        other_field = csrf_of(await feedback.http.get(f"/s/{other}"))
        page = await feedback.http.get(f"/s/{token}/score/1")
        field = csrf_of(page)
        attempts = {
            "no field": {"part": "score", "score": "1"},
            "wrong field": {"part": "score", "score": "1", "csrf_token": "0" * 64},
            "another survey's field": {"part": "score", "score": "1", "csrf_token": other_field},
        }
        for name, form in attempts.items():
            refused = await feedback.http.post(f"/s/{token}", data=form)
            assert refused.status_code == 403, name
            assert refused.headers["content-type"].startswith("text/html"), name
        cookies = dict(feedback.http.cookies)
        feedback.http.cookies.clear()  # a cross-site form: the field, not the cookie
        no_cookie = await post_score(feedback, token, 1, field)
        assert no_cookie.status_code == 403
        # A cross-site "simple" POST to the JSON API cannot carry JSON either.
        plain = await feedback.http.post(
            f"/v1/surveys/{token}",
            content=json.dumps({"score": 1}),
            headers={"content-type": "text/plain"},
        )
        assert plain.status_code == 422
        await tap.settle(1.5)
        assert of_type(tap, "submitted") == []
        feedback.http.cookies.update(cookies)
        saved = await post_score(feedback, token, 1, field)
        assert saved.status_code == 303, saved.text
        (event,) = await submitted(tap, 1)
    assert isinstance(event.data, FeedbackSubmitted)
    assert event.data.score == 1
    assert (
        feedback.metric("helpstream_feedback_rejected_total", handler="page_post", reason="csrf")
        == 4
    )


def follow_up(ticket_id: str, survey_id: str) -> bytes:
    """A `feedback.submitted` asking for a follow-up (a new event id every time)."""
    data = FeedbackSubmitted(
        ticket_id=ticket_id, survey_id=survey_id, score=1, needs_follow_up=True
    )
    now = datetime.now(UTC)
    return make_event(data, source="/helpstream/feedback", time=now, correlationid="c").to_bytes()


def sentinel(ticket_id: str) -> bytes:
    """A follow-up for another survey of the same ticket, sent last: intake handles a
    ticket's events in order, so once it escalated for this one it has seen all before."""
    return follow_up(ticket_id, "s-sentinel")


async def escalations(intake: Intake, ticket_id: str, expected: int) -> list[tuple[int, str]]:
    """The ticket's escalations (level, reason) once intake has handled a sentinel sent
    after everything else: it raises the level to `expected + 1` only when the events
    before it escalated `expected` times (more would only show as more escalations)."""
    await produce(
        intake.settings.kafka_bootstrap,
        intake.runtime.topics.feedback,
        [(ticket_id.encode(), sentinel(ticket_id))],
    )

    async def sentinel_handled() -> bool:
        ticket = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())
        return int(ticket.json()["escalation_level"]) > expected

    await eventually(sentinel_handled, timeout=30)
    async with Tap(
        intake.settings.kafka_bootstrap, intake.runtime.topics.tickets, intake.settings
    ) as tickets:
        await tickets.settle()
    return [
        (e.data.level, e.data.reason)  # type: ignore[attr-defined]
        for e in tickets.events()
        if e.type == "helpstream.ticket.escalated" and e.subject == ticket_id
    ]


async def intake_consuming(intake: Intake) -> None:
    async def assigned() -> bool:
        return all(bool(c.assigned) for c in intake.runtime.consumers)

    await eventually(assigned)


async def test_flipping_a_score_nine_times_asks_one_follow_up_and_escalates_once(
    survey_service: Feedback, ticket_service: Intake
) -> None:
    feedback, intake = survey_service, ticket_service

    await intake_consuming(intake)
    ticket_id = str((await intake.open())["id"])
    solve = await intake.http.patch(
        f"/v1/tickets/{ticket_id}", json={"status": "solved"}, headers=intake.auth()
    )
    assert solve.status_code == 200, solve.text
    scores = [1] + [5, 1] * 9
    async with feedback.feedback_events() as tap:
        token = token_of((await feedback.requested(tap, 1))[ticket_id])
        field = csrf_of(await feedback.http.get(f"/s/{token}/score/1"))
        for score in scores:
            response = await post_score(feedback, token, score, field)
            assert response.status_code == 303, response.text
        events = await submitted(tap, len(scores))
    ratings = [e.data for e in events if isinstance(e.data, FeedbackSubmitted)]
    assert [r.score for r in ratings] == scores
    assert [r.needs_follow_up for r in ratings].count(True) == 1
    assert ratings[0].needs_follow_up  # the first low score asked; no flip asked again

    this_survey_then_sentinel = [(1, "low_rating"), (2, "low_rating")]
    assert await escalations(intake, ticket_id, expected=1) == this_survey_then_sentinel

    # What the leads are mailed: the notifier's real rules on the events feedback published.
    rules = load_rules()
    lead_mails = [
        delivery
        for event in events
        for delivery in plan(
            rules,
            Incoming(event.id, event.type, event.time, event.correlationid, event.data),
            TicketFacts(ticket_id=ticket_id, group="payments"),
            Preferences(),
            requester_webhook=False,
        ).deliveries
        if delivery.recipient.kind == "lead" and delivery.recipient.channel == "email"
    ]
    assert len(lead_mails) == 1
    assert feedback.metric("helpstream_feedback_follow_ups_total") == 1
    assert feedback.metric("helpstream_feedback_follow_ups_withheld_total") == 9


async def test_repeated_follow_up_requests_for_one_survey_escalate_its_ticket_once(
    ticket_service: Intake,
) -> None:
    """Intake's own guard, for follow-ups that arrive anyway (an older feedback, a replay
    with new event ids): one escalation per survey, not one per event."""
    intake = ticket_service
    await intake_consuming(intake)
    ticket_id = str((await intake.open())["id"])
    key = ticket_id.encode()
    repeated: list[tuple[bytes | None, bytes]] = [
        (key, follow_up(ticket_id, "s-flipped")) for _ in range(5)
    ]
    await produce(intake.settings.kafka_bootstrap, intake.runtime.topics.feedback, repeated)
    assert await escalations(intake, ticket_id, expected=1) == [
        (1, "low_rating"),
        (2, "low_rating"),  # the sentinel: another survey
    ]
