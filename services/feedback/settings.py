from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from services.feedback.domain import DEFAULT_FOLLOW_UP_AT
from shared.settings import ServiceSettings

# Named so nobody mistakes it for a real secret; the service warns at start when it is used.
DEV_SURVEY_SECRET = "dev-only-change-me"


class FeedbackSettings(ServiceSettings):
    http_port: int = Field(8003, ge=0, le=65535)
    survey_secret: SecretStr = Field(
        SecretStr(DEV_SURVEY_SECRET),
        description="HMAC key of survey links. Set it in every real deployment.",
    )
    survey_expiry: timedelta = Field(
        timedelta(days=7),
        gt=timedelta(0),
        description="How long a survey link works (ISO 8601 duration or seconds).",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8003",
        description="Where requesters reach this service; survey links start with it.",
    )
    follow_up_threshold: int = Field(
        DEFAULT_FOLLOW_UP_AT, ge=1, le=5, description="Scores at or below ask for a follow-up."
    )
    reports_api_key: SecretStr | None = Field(
        None, description="When set, GET /v1/csat needs `Authorization: Bearer <key>`."
    )
    csat_gauge_window_days: int = Field(
        30, ge=1, le=366, description="Trailing window of the per-group CSAT gauge."
    )
    csat_gauge_interval_s: float = Field(
        30.0, gt=0, description="Longest time between two refreshes of the CSAT gauge."
    )
