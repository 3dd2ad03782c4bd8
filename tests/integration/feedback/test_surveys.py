"""Solve → survey request; reopen → cancellation; tokens that must not work do not."""

from __future__ import annotations

from datetime import timedelta

from shared.events import FeedbackCancelled, FeedbackRequested, Status, TicketMessageAdded
from tests.integration.feedback.conftest import (
    START,
    Feedback,
    created,
    event,
    of_type,
    problem_code,
    reopened,
    solved,
    summary,
    token_of,
)
from tests.support import eventually


async def test_a_solve_asks_once_for_a_rating_with_a_link_in_the_requesters_language(
    feedback: Feedback,
) -> None:
    first_solve = solved("T-1")
    chatter = event(
        TicketMessageAdded(
            ticket_id="T-1", ticket=summary(Status.open), message_id="m-1", author="agent"
        )
    )
    async with feedback.feedback_events() as tap:
        await feedback.send(created("T-1"), chatter, first_solve, first_solve, b"\xff not json")
        requested = await feedback.requested(tap, 1)
        await tap.settle(1.0)
    assert len(of_type(tap, "requested")) == 1  # the redelivered solve asked nothing new
    request = requested["T-1"]
    assert isinstance(request.data, FeedbackRequested)
    assert request.data.locale == "zh-CN"
    assert request.data.requester_id == "u-42"
    assert request.data.survey_url.startswith("https://help.example.com/v1/surveys/")
    assert request.data.expires_at == feedback.clock.now() + timedelta(days=7)
    assert request.correlationid == "corr-test"

    view = await feedback.http.get(f"/v1/surveys/{token_of(request)}")
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["language"] == "zh-CN"
    assert body["texts"]["attitude"] == "服务态度"
    assert body["status"] == "requested"
    assert body["ticket"]["subject"] == "提现未到账"
    assert body["ticket"]["category_label"] == "提现延迟"
    assert body["ticket"]["solved_at_local"].endswith("+08:00")
    assert feedback.metric("helpstream_feedback_surveys_requested_total", group="payments") == 1
    assert (
        feedback.metric(
            "helpstream_feedback_rejected_total", handler="ticket_events", reason="invalid_json"
        )
        == 1
    )


async def test_a_reopen_cancels_the_unanswered_survey_and_the_next_solve_asks_again(
    feedback: Feedback,
) -> None:
    async with feedback.feedback_events() as tap:
        await feedback.send(created("T-2", locale="en", timezone="UTC"), solved("T-2"))
        first = (await feedback.requested(tap, 1))["T-2"]
        await feedback.send(reopened("T-2", START + timedelta(hours=1)))

        async def cancelled() -> bool:
            await tap.collect(2, timeout=0.3)
            return bool(of_type(tap, "cancelled"))

        await eventually(cancelled)
        refused = await feedback.rate(token_of(first), score=5)
        assert problem_code(refused) == (410, "survey_cancelled")

        # The reopen is delivered again after the next solve: the new survey stays.
        await feedback.send(
            solved("T-2", START + timedelta(hours=2)), reopened("T-2", START + timedelta(hours=1))
        )

        async def asked_again() -> bool:
            await tap.collect(3, timeout=0.3)
            return len(of_type(tap, "requested")) == 2

        await eventually(asked_again)
        await tap.settle(1.0)
    cancel = of_type(tap, "cancelled")
    assert len(cancel) == 1
    assert isinstance(cancel[0].data, FeedbackCancelled)
    assert cancel[0].data.survey_id == first.data.survey_id  # type: ignore[attr-defined]
    second = next(e for e in of_type(tap, "requested") if e.id != first.id)
    accepted = await feedback.rate(token_of(second), score=4)
    assert accepted.status_code == 200, accepted.text
    assert feedback.metric("helpstream_feedback_surveys_cancelled_total") == 1


async def test_an_answered_survey_survives_a_reopen(feedback: Feedback) -> None:
    async with feedback.feedback_events() as tap:
        await feedback.send(solved("T-3"))
        token = token_of((await feedback.requested(tap, 1))["T-3"])
        assert (await feedback.rate(token, score=2)).status_code == 200
        await feedback.send(reopened("T-3", START + timedelta(hours=1)))
        await tap.settle(1.5)
    assert not of_type(tap, "cancelled")
    again = await feedback.rate(token, score=3)
    assert again.status_code == 200, again.text


async def test_expired_forged_and_malformed_links_are_refused_with_a_problem_body(
    feedback: Feedback,
) -> None:
    async with feedback.feedback_events() as tap:
        await feedback.send(solved("T-4"))
        token = token_of((await feedback.requested(tap, 1))["T-4"])
    payload, _, signature = token.partition(".")
    forged = f"{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    for bad in (forged, "not-a-token", f"{payload}.ü", "a.b"):
        for method in ("get", "post"):
            response = await feedback.http.request(
                method, f"/v1/surveys/{bad}", json={"score": 5} if method == "post" else None
            )
            assert problem_code(response) == (404, "token_invalid"), (bad, method)
    assert (await feedback.rate(token, score=5)).status_code == 200
    feedback.clock.advance(timedelta(days=7, seconds=1))
    for response in (
        await feedback.rate(token, score=1),
        await feedback.http.get(f"/v1/surveys/{token}"),
    ):
        assert problem_code(response) == (410, "survey_expired")
    assert (
        feedback.metric(
            "helpstream_feedback_rejected_total", handler="submit", reason="survey_expired"
        )
        == 1
    )
