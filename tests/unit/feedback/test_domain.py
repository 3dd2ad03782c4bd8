"""Pure feedback rules: tokens, follow-up, periods, CSAT arithmetic, survey language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.feedback.domain import (
    MAX_RATING_CHANGES,
    CsatCounts,
    Rating,
    SurveyRefused,
    SurveyStatus,
    category_label,
    check_can_change,
    check_open,
    figures,
    issue_token,
    local_time,
    needs_follow_up,
    period_keys,
    survey_language,
    survey_of_token,
    total,
)
from shared.tokens import sign

SECRET = b"k" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def refusal(call: object, *args: object) -> tuple[int, str]:
    with pytest.raises(SurveyRefused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.status, caught.value.code


def test_a_survey_token_opens_its_survey_until_it_expires() -> None:
    token, expires_at = issue_token(SECRET, "s-1", NOW, WEEK)
    assert expires_at == NOW + WEEK
    assert survey_of_token(SECRET, token, NOW + WEEK) == "s-1"
    assert refusal(survey_of_token, SECRET, token, NOW + WEEK + timedelta(seconds=1)) == (
        410,
        "survey_expired",
    )


@pytest.mark.parametrize(
    "token",
    ["", "no-dot", "a.b", "ü.ü", "a" * 5000 + ".b", "x.y.z", "eyJ9.%%%"],
)
def test_malformed_tokens_are_not_found_and_never_crash(token: str) -> None:
    assert refusal(survey_of_token, SECRET, token, NOW) == (404, "token_invalid")


def test_forged_or_foreign_tokens_are_not_found() -> None:
    token, _ = issue_token(SECRET, "s-1", NOW, WEEK)
    other_secret, _ = issue_token(b"x" * 32, "s-1", NOW, WEEK)
    inbox = sign(SECRET, "inbox", {"s": "s-1"}, NOW, WEEK)
    no_survey = sign(SECRET, "survey", {"t": "T-1"}, NOW, WEEK)
    for bad in (other_secret, inbox, no_survey, token[:-3] + "AAA"):
        assert refusal(survey_of_token, SECRET, bad, NOW) == (404, "token_invalid")


def test_a_cancelled_or_expired_survey_is_gone_and_an_answered_one_stays_open() -> None:
    check_open(SurveyStatus.answered, NOW + WEEK, NOW)
    check_open(SurveyStatus.requested, NOW, NOW)
    assert refusal(check_open, SurveyStatus.cancelled, NOW + WEEK, NOW) == (
        410,
        "survey_cancelled",
    )
    assert refusal(check_open, SurveyStatus.answered, NOW, NOW + timedelta(seconds=1)) == (
        410,
        "survey_expired",
    )


@pytest.mark.parametrize(
    ("score", "already_requested", "expected"),
    [
        (2, False, True),
        (1, False, True),
        (3, False, False),
        (5, False, False),
        (1, True, False),  # asked once for this survey: never again
        (2, True, False),
    ],
)
def test_a_lead_is_asked_to_follow_up_the_first_time_a_survey_is_rated_low(
    score: int, already_requested: bool, expected: bool
) -> None:
    assert needs_follow_up(score, already_requested, threshold=2) is expected


def test_flipping_a_score_between_low_and_high_asks_for_one_follow_up() -> None:
    requested = False
    asked = 0
    for score in [1, 5] * 9 + [1]:
        if needs_follow_up(score, requested, threshold=2):
            asked += 1
            requested = True
    assert asked == 1


def test_a_survey_takes_a_bounded_number_of_changes() -> None:
    check_can_change(0)  # the first rating
    check_can_change(MAX_RATING_CHANGES)  # the last change allowed
    assert refusal(check_can_change, MAX_RATING_CHANGES + 1) == (409, "too_many_changes")


def test_periods_are_utc_days_and_iso_weeks() -> None:
    shanghai_monday_morning = datetime.fromisoformat("2026-11-30T07:00:00+08:00")
    assert period_keys(shanghai_monday_morning) == ("2026-11-29", "2026-W48")
    assert period_keys(datetime(2027, 1, 1, tzinfo=UTC)) == ("2027-01-01", "2026-W53")


def test_times_show_in_the_requesters_zone_and_unknown_zones_fall_back_to_utc() -> None:
    assert local_time(NOW, "Asia/Shanghai").isoformat() == "2026-11-23T20:00:00+08:00"
    assert local_time(NOW, "Mars/Olympus").utcoffset() == timedelta(0)


def test_chinese_locales_get_chinese_texts_and_others_english() -> None:
    assert [survey_language(x) for x in ("zh-CN", "zh-TW", "zh", "en", "fr")] == [
        "zh-CN",
        "zh-CN",
        "zh-CN",
        "en",
        "en",
    ]
    assert category_label("deposit_missing", "zh-CN") == "充值未到账"
    assert category_label("deposit_missing", "en") == "Deposit missing"


def test_csat_figures_of_a_small_set() -> None:
    counts = total(
        CsatCounts.of(r)
        for r in (Rating(5, attitude=5), Rating(4, speed=2), Rating(2, attitude=1), None)
    )
    got = figures(counts)
    assert (got.surveys, got.responses, got.satisfied) == (4, 3, 2)
    assert (got.csat_pct, got.response_rate_pct) == (66.67, 75.0)
    assert got.averages == {"overall": 3.67, "attitude": 3.0, "speed": 2.0, "clarity": None}
    assert figures(CsatCounts()).csat_pct is None


scores = st.integers(1, 5)
ratings = st.one_of(
    st.none(),
    st.builds(Rating, scores, st.none() | scores, st.none() | scores, st.none() | scores),
)
surveys = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), ratings), max_size=60)


def brute_force(items: list[tuple[str, Rating | None]]) -> dict[str, object]:
    answered = [r for _, r in items if r is not None]

    def mean(values: list[int]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    return {
        "surveys": len(items),
        "responses": len(answered),
        "csat_pct": (
            round(100 * len([r for r in answered if r.score in (4, 5)]) / len(answered), 2)
            if answered
            else None
        ),
        "response_rate_pct": round(100 * len(answered) / len(items), 2) if items else None,
        "overall": mean([r.score for r in answered]),
        "attitude": mean([r.attitude for r in answered if r.attitude is not None]),
        "speed": mean([r.speed for r in answered if r.speed is not None]),
        "clarity": mean([r.clarity for r in answered if r.clarity is not None]),
    }


def as_dict(counts: CsatCounts) -> dict[str, object]:
    got = figures(counts)
    return {
        "surveys": got.surveys,
        "responses": got.responses,
        "csat_pct": got.csat_pct,
        "response_rate_pct": got.response_rate_pct,
        **got.averages,
    }


@given(surveys)
def test_csat_from_summed_counts_equals_a_brute_force_count(
    items: list[tuple[str, Rating | None]],
) -> None:
    by_group: dict[str, CsatCounts] = {}
    for group, rating in items:
        by_group[group] = by_group.get(group, CsatCounts()) + CsatCounts.of(rating)
    for group, counts in by_group.items():
        assert as_dict(counts) == brute_force([i for i in items if i[0] == group])
    # the total row is the sum of the group rows, as the API computes it
    assert as_dict(total(by_group.values())) == brute_force(items)
