"""feedback's metric names, each with what it counts. Labels are bounded (groups come
from the triage rules; reasons are codes)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class FeedbackMetrics:
    # surveys created for a solve (one per solve; redeliveries not counted), by group
    surveys_requested: Counter
    # surveys answered for the first time, by group
    surveys_answered: Counter
    # ratings replaced by a later submission on the same survey, by group
    ratings_changed: Counter
    # unanswered surveys cancelled because their ticket reopened
    surveys_cancelled: Counter
    # submissions flagged needs_follow_up (a lead is asked to follow up)
    follow_ups: Counter
    # overall score of every accepted submission (changes included)
    score: Histogram
    # share of 4–5 ratings among responses over the trailing window, by group
    csat_ratio: Gauge
    # input refused, by handler (ticket_events, view, submit, csat) and reason code
    rejected: Counter


def feedback_metrics(registry: CollectorRegistry) -> FeedbackMetrics:
    return FeedbackMetrics(
        surveys_requested=Counter(
            "helpstream_feedback_surveys_requested",
            "Surveys requested after a solve.",
            ("group",),
            registry=registry,
        ),
        surveys_answered=Counter(
            "helpstream_feedback_surveys_answered",
            "Surveys answered (first rating).",
            ("group",),
            registry=registry,
        ),
        ratings_changed=Counter(
            "helpstream_feedback_ratings_changed",
            "Ratings replaced by a later submission.",
            ("group",),
            registry=registry,
        ),
        surveys_cancelled=Counter(
            "helpstream_feedback_surveys_cancelled",
            "Unanswered surveys cancelled by a reopen.",
            registry=registry,
        ),
        follow_ups=Counter(
            "helpstream_feedback_follow_ups",
            "Submissions flagged for a lead's follow-up.",
            registry=registry,
        ),
        score=Histogram(
            "helpstream_feedback_score",
            "Overall score of accepted submissions.",
            buckets=(1, 2, 3, 4, 5),
            registry=registry,
        ),
        csat_ratio=Gauge(
            "helpstream_feedback_csat_ratio",
            "Share of 4-5 ratings among responses, trailing window.",
            ("group",),
            registry=registry,
        ),
        rejected=Counter(
            "helpstream_feedback_rejected",
            "Input refused, by handler and reason.",
            ("handler", "reason"),
            registry=registry,
        ),
    )
