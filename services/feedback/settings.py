from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from services.feedback.domain import DEFAULT_FOLLOW_UP_AT
from shared.secrets import Secret, key_or_explicitly_open
from shared.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    http_port: int = Field(8003, ge=0, le=65535)
    survey_secret: Secret = Field(
        description="HMAC key of survey links (required, at least 32 bytes).",
    )
    privacy_api_key: Secret = Field(
        description="Bearer key of requester data exports: intake sends it, feedback and "
        "notifier check it (the same value in all three; required, at least 32 bytes).",
    )
    survey_previous_secret: Secret | None = Field(
        None,
        description="The survey secret before the last rotation: its links keep working.",
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
    reports_api_key: Secret | None = Field(
        None, description="GET /v1/csat needs `Authorization: Bearer <key>` (required)."
    )
    reports_open: bool = Field(
        False, description="Leave GET /v1/csat open without a key (logged at start)."
    )
    csat_gauge_window_days: int = Field(
        30, ge=1, le=366, description="Trailing window of the per-group CSAT gauge."
    )
    csat_gauge_interval_s: float = Field(
        30.0, gt=0, description="Longest time between two refreshes of the CSAT gauge."
    )

    @model_validator(mode="after")
    def _reports_closed_unless_chosen(self) -> FeedbackSettings:
        key_or_explicitly_open(
            self.reports_api_key, self.reports_open, "reports_api_key", "reports_open"
        )
        return self
