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
    # follow-ups requested (needs_follow_up published): at most one per survey
    follow_ups: Counter
    # low ratings that asked nothing because their survey had asked for a follow-up already
    follow_ups_withheld: Counter
    # ratings recorded (first or changed), by how they came: page (form POST) or api
    ratings_recorded: Counter
    # submissions equal to the recorded rating: nothing written, no event
    ratings_unchanged: Counter
    # survey pages shown, by view: page (the link) or score_link (a score preselected)
    survey_pages: Counter
    # time to answer a survey page request, by route (view, score_link, post)
    page_seconds: Histogram
    # overall score of every accepted submission (changes included)
    score: Histogram
    # share of 4–5 ratings among responses over the trailing window, by group
    csat_ratio: Gauge
    # the same share by the ticket's channel and by its category (dashboard: CSAT by channel)
    csat_channel_ratio: Gauge
    csat_category_ratio: Gauge
    # share of solves the requester made with a help article (deflection) over the
    # trailing window, by the ticket's channel and by its category
    deflection_channel_ratio: Gauge
    deflection_category_ratio: Gauge
    # input refused, by handler (ticket_events, view, page, page_post, submit) and reason code
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
            "Follow-ups requested from a lead (at most one per survey).",
            registry=registry,
        ),
        follow_ups_withheld=Counter(
            "helpstream_feedback_follow_ups_withheld",
            "Low ratings on surveys that had requested a follow-up already.",
            registry=registry,
        ),
        ratings_recorded=Counter(
            "helpstream_feedback_ratings_recorded",
            "Ratings recorded (first or changed), by page or api.",
            ("via",),
            registry=registry,
        ),
        ratings_unchanged=Counter(
            "helpstream_feedback_ratings_unchanged",
            "Submissions equal to the recorded rating, ignored.",
            registry=registry,
        ),
        survey_pages=Counter(
            "helpstream_feedback_survey_pages",
            "Survey pages shown, by view (page, score_link).",
            ("view",),
            registry=registry,
        ),
        page_seconds=Histogram(
            "helpstream_feedback_page_seconds",
            "Time to answer a survey page request, by route.",
            ("route",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
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
        csat_channel_ratio=Gauge(
            "helpstream_feedback_csat_channel_ratio",
            "Share of 4-5 ratings among responses by channel, trailing window.",
            ("channel",),
            registry=registry,
        ),
        csat_category_ratio=Gauge(
            "helpstream_feedback_csat_category_ratio",
            "Share of 4-5 ratings among responses by category, trailing window.",
            ("category",),
            registry=registry,
        ),
        deflection_channel_ratio=Gauge(
            "helpstream_feedback_deflection_channel_ratio",
            "Share of solves made with a help article by channel, trailing window.",
            ("channel",),
            registry=registry,
        ),
        deflection_category_ratio=Gauge(
            "helpstream_feedback_deflection_category_ratio",
            "Share of solves made with a help article by category, trailing window.",
            ("category",),
            registry=registry,
        ),
        rejected=Counter(
            "helpstream_feedback_rejected",
            "Input refused, by handler and reason.",
            ("handler", "reason"),
            registry=registry,
        ),
    )
