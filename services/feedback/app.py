"""feedback wiring: the ticket-event consumer, the outbox relay, the survey and CSAT API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Header, Path, Query, Request, Response

from services.feedback.domain import GroupBy, SurveyRefused, figures, total
from services.feedback.handlers import CsatGauge, FeedbackService, Submission, SurveyConfig
from services.feedback.metrics import feedback_metrics
from services.feedback.pages import install_pages
from services.feedback.privacy import FeedbackEraser
from services.feedback.settings import FeedbackSettings
from services.feedback.store import FeedbackStore
from services.feedback.views import CsatReport, CsatRow, RatingAccepted, RatingIn, SurveyView
from shared.clock import as_utc
from shared.events import FeedbackRequesterErased
from shared.http import ProblemError, problem, require_bearer
from shared.privacy import COLLECTION, confirm_erasures, with_erasures
from shared.privacy_export import install_export_route
from shared.runtime import ServiceRuntime, service_app
from shared.tokens import SigningKeys
from shared.web.ratelimit import install_rate_limits, page_limits

SERVICE = "feedback"
MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=30)
log = structlog.get_logger(__name__)

Token = Annotated[str, Path(description="The token from the survey link.")]
REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Forged, malformed or unknown survey link (`code`: token_invalid)"},
    410: {"description": "Expired, or cancelled because the ticket reopened (`code`)"},
}


def create_app(
    settings: FeedbackSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    cfg = settings or FeedbackSettings()
    runtime = runtime or ServiceRuntime(SERVICE, cfg)
    metrics = feedback_metrics(runtime.registry)
    parts: dict[str, Any] = {}

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        if cfg.reports_api_key is None:
            log.warning(
                "reports_open_by_choice",
                setting="HELPSTREAM_REPORTS_OPEN",
                hint="anyone reaching the port can read per-agent CSAT",
            )
        store = FeedbackStore(rt.db)
        await store.ensure_indexes()
        relay = await rt.add_outbox([store.surveys, rt.db[COLLECTION]])
        gauge = CsatGauge(
            store,
            rt.clock,
            metrics,
            window=timedelta(days=cfg.csat_gauge_window_days),
            interval_s=cfg.csat_gauge_interval_s,
        )
        service = FeedbackService(
            store=store,
            clock=rt.clock,
            topics=rt.topics,
            config=SurveyConfig(
                secret=SigningKeys.of(cfg.survey_secret, cfg.survey_previous_secret),
                expiry=cfg.survey_expiry,
                public_base_url=cfg.public_base_url,
                follow_up_threshold=cfg.follow_up_threshold,
            ),
            metrics=metrics,
            on_events=relay.wake,
            on_rating=gauge.wake,
        )
        eraser = FeedbackEraser(rt.db)
        await eraser.ensure_indexes()
        erasures = confirm_erasures(
            rt, eraser, FeedbackRequesterErased, rt.topics.feedback, relay.wake
        )
        rt.add_consumer("tickets", with_erasures(service.on_ticket_events, erasures))
        rt.workers.append(gauge)  # stopped before the runtime closes the database
        parts.update(service=service, gauge=gauge)

    app = service_app(
        runtime,
        title="helpstream feedback",
        description="Satisfaction surveys after a solve (links in `feedback.requested`), "
        "ratings from requesters, CSAT reports. Survey routes are opened by the signed, "
        "expiring token in the link; nothing else.",
        setup=setup,
    )

    async def on_refused(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SurveyRefused)
        return problem(exc.status, _TITLES.get(exc.status, "Refused"), exc.detail, code=exc.code)

    app.add_exception_handler(SurveyRefused, on_refused)

    def service() -> FeedbackService:
        return parts["service"]  # type: ignore[no-any-return]

    @app.get(
        "/v1/surveys/{token}",
        response_model=SurveyView,
        tags=["surveys"],
        summary="What is being rated, in the requester's language",
        responses=REFUSALS,
    )
    async def get_survey(token: Token) -> SurveyView:
        return SurveyView.of(await service().open_survey(token))

    @app.post(
        "/v1/surveys/{token}",
        response_model=RatingAccepted,
        tags=["surveys"],
        summary="Rate the help (again: the last rating counts)",
        responses={
            **REFUSALS,
            409: {"description": "Concurrent submissions, or too many changes (`code`)"},
        },
    )
    async def rate(token: Token, body: RatingIn) -> RatingAccepted:
        """The first rating answers the survey; later ones replace it until the link
        expires (at most 20 changes: 409 `too_many_changes`). The first score at or below
        the follow-up threshold asks a lead to follow up; later ones never ask again."""
        done = await service().submit(
            token,
            Submission(
                score=body.score,
                dimensions=body.dimensions,
                reasons=tuple(body.reasons),
                comment=body.comment,
            ),
            via="api",
        )
        return RatingAccepted.of(
            done.survey,
            replaced=not done.first,
            needs_follow_up=done.needs_follow_up,
            redacted=bool(done.redacted_kinds),
        )

    @app.get(
        "/v1/csat",
        response_model=CsatReport,
        tags=["reports"],
        summary="CSAT, response rate and averages per agent, group, category, channel or period",
        responses={
            400: {"description": "`from` is not before `to`, or the range is too long"},
            401: {"description": "A reports API key is configured and was not sent"},
        },
    )
    async def csat(
        group_by: GroupBy = GroupBy.group,
        start: Annotated[
            datetime | None,
            Query(alias="from", description="Solves from (inclusive); default `to` − 30 days."),
        ] = None,
        end: Annotated[
            datetime | None, Query(alias="to", description="Solves before; default now.")
        ] = None,
        authorization: Annotated[str | None, Header(max_length=512)] = None,
    ) -> CsatReport:
        """Counted once per ticket solve (the last rating of each survey). Periods are UTC
        days and ISO weeks of the solve time."""
        require_bearer(cfg.reports_api_key, authorization, "reports API key")
        end = as_utc(end) if end is not None else runtime.clock.now()
        start = as_utc(start) if start is not None else end - DEFAULT_RANGE
        if start >= end:
            raise ProblemError(400, "Bad range", "`from` must be before `to`.", code="bad_range")
        if end - start > MAX_RANGE:
            raise ProblemError(
                400, "Bad range", "Ask for at most 366 days at a time.", code="range_too_long"
            )
        rows = await service().csat(group_by, start, end)
        return CsatReport(
            group_by=group_by,
            from_=start,
            to=end,
            groups=[CsatRow.of(key, figures(counts)) for key, counts in rows],
            total=CsatRow.of(None, figures(total(counts for _, counts in rows))),
        )

    install_pages(app, cfg, parts, metrics)
    install_export_route(
        app, cfg.privacy_api_key, lambda rid: FeedbackEraser(runtime.db).export(rid)
    )
    install_rate_limits(
        app,
        page_limits(
            cfg,
            "GET /s/{token}",
            "POST /s/{token}",
            "GET /s/{token}/score/{n}",
            "GET /v1/surveys/{token}",
            "POST /v1/surveys/{token}",
        ),
    )
    return app


_TITLES = {404: "Survey not found", 409: "Conflict", 410: "Survey closed"}
