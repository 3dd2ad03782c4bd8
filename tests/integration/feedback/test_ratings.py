"""Ratings in, feedback.submitted out; the last rating counts; CSAT against hand-counted
numbers on a seeded set of solves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.feedback.domain import MAX_RATING_CHANGES
from shared.events import FeedbackSubmitted
from tests.integration.feedback.conftest import (
    Feedback,
    created,
    of_type,
    problem_code,
    reopened,
    solved,
    token_of,
)
from tests.support import eventually

SEED_PHRASE = "abandon ability able about above absent absorb abstract absurd abuse access accident"


async def submitted(feedback: Feedback, tap: Any, count: int) -> list[FeedbackSubmitted]:
    async def arrived() -> bool:
        await tap.collect(len(tap.records) + 1, timeout=0.3)
        return len(of_type(tap, "submitted")) >= count

    await eventually(arrived)
    return [e.data for e in of_type(tap, "submitted")]  # type: ignore[misc]


async def test_a_rating_publishes_feedback_submitted_with_the_ticket_facts(
    feedback: Feedback,
) -> None:
    async with feedback.feedback_events() as tap:
        await feedback.send(created("T-10", locale="en", timezone="UTC"), solved("T-10"))
        token = token_of((await feedback.requested(tap, 1))["T-10"])
        response = await feedback.rate(
            token,
            score=5,
            dimensions={"attitude": 5, "speed": 4, "clarity": 5},
            reasons=["fast", "clear", "fast"],
            comment=f"Thanks! my words were {SEED_PHRASE}",
        )
        assert response.status_code == 200, response.text
        (event,) = await submitted(feedback, tap, 1)
    body = response.json()
    assert body["revision"] == 1
    assert body["replaced"] is False
    assert body["secret_redacted"] is True
    assert body["warning"].startswith("For your safety")
    assert SEED_PHRASE not in body["rating"]["comment"]
    assert "[REDACTED:bip39_mnemonic]" in body["rating"]["comment"]
    assert (event.ticket_id, event.score, event.needs_follow_up) == ("T-10", 5, False)
    assert event.dimensions.model_dump() == {"attitude": 5, "speed": 4, "clarity": 5}
    assert event.reasons == ["fast", "clear"]
    assert (event.agent, event.group, event.category, event.channel) == (
        "agent-7",
        "payments",
        "withdrawal_delay",
        "app",
    )
    view = (await feedback.http.get(f"/v1/surveys/{token}")).json()
    assert view["status"] == "answered"
    assert view["rating"]["score"] == 5
    assert feedback.metric("helpstream_feedback_surveys_answered_total", group="payments") == 1
    assert feedback.metric("helpstream_feedback_score_bucket", le="4.0") == 0
    assert feedback.metric("helpstream_feedback_score_bucket", le="5.0") == 1


async def test_a_low_rating_asks_for_follow_up_once_and_the_last_rating_counts(
    feedback: Feedback,
) -> None:
    async with feedback.feedback_events() as tap:
        await feedback.send(solved("T-11"))
        token = token_of((await feedback.requested(tap, 1))["T-11"])
        revisions = []
        for score in (4, 2, 1):
            response = await feedback.rate(token, score=score, reasons=["slow_response"])
            assert response.status_code == 200, response.text
            revisions.append((response.json()["revision"], response.json()["needs_follow_up"]))
        events = await submitted(feedback, tap, 3)
    assert revisions == [(1, False), (2, True), (3, False)]
    assert [(e.score, e.needs_follow_up) for e in events] == [(4, False), (2, True), (1, False)]
    assert (await feedback.http.get(f"/v1/surveys/{token}")).json()["rating"]["score"] == 1
    csat = (await feedback.http.get("/v1/csat", params={"group_by": "group"})).json()
    assert csat["total"]["surveys"] == 1  # one solve, three submissions: counted once
    assert csat["total"]["responses"] == 1
    assert csat["total"]["averages"]["overall"] == 1.0
    assert feedback.metric("helpstream_feedback_follow_ups_total") == 1
    assert feedback.metric("helpstream_feedback_ratings_changed_total", group="payments") == 2

    async def gauge_current() -> bool:
        return feedback.metric("helpstream_feedback_csat_ratio", group="payments") == 0.0 and (
            feedback.runtime.registry.get_sample_value(
                "helpstream_feedback_csat_ratio", {"group": "payments"}
            )
            is not None
        )

    await eventually(gauge_current, timeout=5)


def at(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


# ticket, agent, group, category, channel, solved at, ratings in order (the last counts)
SEED: list[tuple[str, str, str, str, str, datetime, list[dict[str, Any]]]] = [
    ("A", "alice", "wallet", "deposit_missing", "app", at("2026-11-23", 9),
     [{"score": 5, "dimensions": {"attitude": 5, "speed": 4, "clarity": 5}}]),
    ("B", "alice", "wallet", "deposit_missing", "web", at("2026-11-23", 15),
     [{"score": 4, "dimensions": {"attitude": 4}},
      {"score": 2, "dimensions": {"attitude": 2, "speed": 1}}]),
    ("C", "bob", "wallet", "withdrawal_delay", "app", at("2026-11-24", 10),
     [{"score": 1, "dimensions": {"clarity": 1}}]),
    ("D", "bob", "security", "account_security", "email", at("2026-11-24", 11), []),
    ("E", "carol", "security", "account_security", "app", at("2026-11-30", 8),
     [{"score": 4, "dimensions": {"attitude": 5, "speed": 3, "clarity": 4}}]),
    ("F", "carol", "security", "scam_report", "chat", at("2026-11-30", 9), [{"score": 3}]),
    # reopened before an answer: cancelled, not counted
    ("G", "bob", "wallet", "withdrawal_delay", "app", at("2026-11-25", 9), []),
    # outside the asked range
    ("H", "alice", "wallet", "deposit_missing", "app", at("2026-12-20", 9), [{"score": 5}]),
]  # fmt: skip

# Hand-counted from SEED for solves in [2026-11-23, 2026-12-01):
# (key, surveys, responses, satisfied, csat %, response rate %,
#  (overall, attitude, speed, clarity) averages)
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "agent": [
        ("alice", 2, 2, 1, 50.0, 100.0, (3.5, 3.5, 2.5, 5.0)),
        ("bob", 2, 1, 0, 0.0, 50.0, (1.0, None, None, 1.0)),
        ("carol", 2, 2, 1, 50.0, 100.0, (3.5, 5.0, 3.0, 4.0)),
    ],
    "group": [
        ("security", 3, 2, 1, 50.0, 66.67, (3.5, 5.0, 3.0, 4.0)),
        ("wallet", 3, 3, 1, 33.33, 100.0, (2.67, 3.5, 2.5, 3.0)),
    ],
    "category": [
        ("account_security", 2, 1, 1, 100.0, 50.0, (4.0, 5.0, 3.0, 4.0)),
        ("deposit_missing", 2, 2, 1, 50.0, 100.0, (3.5, 3.5, 2.5, 5.0)),
        ("scam_report", 1, 1, 0, 0.0, 100.0, (3.0, None, None, None)),
        ("withdrawal_delay", 1, 1, 0, 0.0, 100.0, (1.0, None, None, 1.0)),
    ],
    "channel": [
        ("app", 3, 3, 2, 66.67, 100.0, (3.33, 5.0, 3.5, 3.33)),
        ("chat", 1, 1, 0, 0.0, 100.0, (3.0, None, None, None)),
        ("email", 1, 0, 0, None, 0.0, (None, None, None, None)),
        ("web", 1, 1, 0, 0.0, 100.0, (2.0, 2.0, 1.0, None)),
    ],
    "day": [
        ("2026-11-23", 2, 2, 1, 50.0, 100.0, (3.5, 3.5, 2.5, 5.0)),
        ("2026-11-24", 2, 1, 0, 0.0, 50.0, (1.0, None, None, 1.0)),
        ("2026-11-30", 2, 2, 1, 50.0, 100.0, (3.5, 5.0, 3.0, 4.0)),
    ],
    "week": [
        ("2026-W48", 4, 3, 1, 33.33, 75.0, (2.67, 3.5, 2.5, 3.0)),
        ("2026-W49", 2, 2, 1, 50.0, 100.0, (3.5, 5.0, 3.0, 4.0)),
    ],
}
EXPECTED_TOTAL = (None, 6, 5, 2, 40.0, 83.33, (3.0, 4.0, 2.67, 3.33))


def row(got: dict[str, Any]) -> tuple[Any, ...]:
    averages = got["averages"]
    return (
        got["key"],
        got["surveys"],
        got["responses"],
        got["satisfied"],
        got["csat_pct"],
        got["response_rate_pct"],
        tuple(averages[k] for k in ("overall", "attitude", "speed", "clarity")),
    )


async def test_csat_per_agent_group_category_channel_and_period_matches_hand_counts(
    feedback: Feedback,
) -> None:
    solves = [
        solved(t, when, assignee=agent, group=group, category=category, channel=channel)
        for t, agent, group, category, channel, when, _ in SEED
    ]
    async with feedback.feedback_events() as tap:
        await feedback.send(*solves, reopened("G", at("2026-11-25", 10)))
        requested = await feedback.requested(tap, len(SEED))
        for ticket, *_, ratings in SEED:
            for rating in ratings:
                response = await feedback.rate(token_of(requested[ticket]), **rating)
                assert response.status_code == 200, response.text
    window = {"from": "2026-11-23T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    for group_by, expected in EXPECTED.items():
        response = await feedback.http.get("/v1/csat", params={"group_by": group_by, **window})
        assert response.status_code == 200, response.text
        report = response.json()
        assert [row(g) for g in report["groups"]] == expected, group_by
        assert row(report["total"]) == EXPECTED_TOTAL, group_by


async def test_csat_refuses_a_backwards_or_too_long_range(feedback: Feedback) -> None:
    backwards = await feedback.http.get(
        "/v1/csat", params={"from": "2026-11-30T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    )
    too_long = await feedback.http.get(
        "/v1/csat", params={"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    )
    assert (backwards.status_code, backwards.json()["code"]) == (400, "bad_range")
    assert (too_long.status_code, too_long.json()["code"]) == (400, "range_too_long")
    empty = (await feedback.http.get("/v1/csat", params={"group_by": "agent"})).json()
    assert empty["groups"] == []
    assert empty["total"]["csat_pct"] is None
    assert feedback.clock.now() - timedelta(days=30) == datetime.fromisoformat(empty["from"])


async def test_a_resent_rating_publishes_nothing_and_a_survey_takes_at_most_20_changes(
    feedback: Feedback,
) -> None:
    async with feedback.feedback_events() as tap:
        await feedback.send(solved("T-12"))
        token = token_of((await feedback.requested(tap, 1))["T-12"])
        first = await feedback.rate(token, score=2, reasons=["slow_response"])
        again = await feedback.rate(token, score=2, reasons=["slow_response"])
        assert (first.json()["revision"], again.json()["revision"]) == (1, 1)
        for change in range(MAX_RATING_CHANGES):
            response = await feedback.rate(token, score=5 if change % 2 == 0 else 1)
            assert response.status_code == 200, response.text
        refused = await feedback.rate(token, score=3)
        events = await submitted(feedback, tap, 1 + MAX_RATING_CHANGES)
        await tap.settle(1.0)
    assert len(of_type(tap, "submitted")) == 1 + MAX_RATING_CHANGES  # not the resent one
    assert problem_code(refused) == (409, "too_many_changes")
    assert [e.needs_follow_up for e in events].count(True) == 1
    view = (await feedback.http.get(f"/v1/surveys/{token}")).json()
    assert view["rating"]["score"] == 1  # the last accepted change counts
    assert feedback.metric("helpstream_feedback_ratings_unchanged_total") == 1
    assert (
        feedback.metric(
            "helpstream_feedback_rejected_total", handler="submit", reason="too_many_changes"
        )
        == 1
    )
