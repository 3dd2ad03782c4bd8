"""What the HTTP API accepts and returns (the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.feedback.domain import (
    COMMENT_MAX_CHARS,
    DIMENSIONS,
    REASON_LABELS,
    SURVEY_TEXTS,
    CsatFigures,
    GroupBy,
    ReasonCode,
    category_label,
    local_time,
    survey_language,
)
from shared.events import DimensionScores
from shared.redaction import REDACTION_WARNING

if TYPE_CHECKING:
    from services.feedback.ports import Survey


class RatingIn(BaseModel):
    """A requester's rating. Sending it again with the same link replaces the last one."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, description="Overall satisfaction, 1 (worst) to 5 (best).")
    dimensions: DimensionScores = Field(
        default_factory=DimensionScores,
        description="Optional 1–5 scores for service attitude, resolution speed, clarity.",
    )
    reasons: list[ReasonCode] = Field(default_factory=list, max_length=10)
    comment: str | None = Field(
        None,
        max_length=COMMENT_MAX_CHARS,
        description="Free text; seed phrases and private keys are removed before storing.",
    )


class Choice(BaseModel):
    code: str
    label: str


class TicketAbout(BaseModel):
    ticket_id: str
    subject: str | None
    category: str
    category_label: str
    channel: str
    solved_at: datetime
    solved_at_local: datetime = Field(description="In the requester's time zone.")


class RatingView(BaseModel):
    score: int
    dimensions: DimensionScores
    reasons: list[str]
    comment: str | None
    submitted_at: datetime | None


class SurveyView(BaseModel):
    survey_id: str
    status: Literal["requested", "answered"]
    language: str = Field(examples=["zh-CN", "en"])
    texts: dict[str, str] = Field(description="Title, question and labels in `language`.")
    dimensions: list[Choice]
    reasons: list[Choice]
    ticket: TicketAbout
    expires_at: datetime
    expires_at_local: datetime
    rating: RatingView | None = Field(None, description="The current rating, if answered.")

    @classmethod
    def of(cls, survey: Survey) -> SurveyView:
        language = survey_language(survey.locale)
        texts = SURVEY_TEXTS[language]
        return cls(
            survey_id=survey.id,
            status="answered" if survey.rating is not None else "requested",
            language=language,
            texts=texts,
            dimensions=[Choice(code=d, label=texts[d]) for d in DIMENSIONS],
            reasons=[Choice(code=c.value, label=t) for c, t in REASON_LABELS[language].items()],
            ticket=TicketAbout(
                ticket_id=survey.ticket_id,
                subject=survey.subject,
                category=survey.category,
                category_label=category_label(survey.category, language),
                channel=survey.channel,
                solved_at=survey.solved_at,
                solved_at_local=local_time(survey.solved_at, survey.timezone),
            ),
            expires_at=survey.expires_at,
            expires_at_local=local_time(survey.expires_at, survey.timezone),
            rating=rating_view(survey),
        )


def rating_view(survey: Survey) -> RatingView | None:
    if survey.rating is None:
        return None
    rating = survey.rating
    return RatingView(
        score=rating.score,
        dimensions=DimensionScores(
            attitude=rating.attitude, speed=rating.speed, clarity=rating.clarity
        ),
        reasons=list(survey.reasons),
        comment=survey.comment,
        submitted_at=survey.submitted_at,
    )


class RatingAccepted(BaseModel):
    survey_id: str
    ticket_id: str
    revision: int = Field(description="1 for the first rating, then one more per change.")
    replaced: bool = Field(description="True when this rating replaced an earlier one.")
    needs_follow_up: bool
    rating: RatingView
    secret_redacted: bool = False
    warning: str | None = Field(
        None, description="Shown to the requester when a secret was removed from the comment."
    )

    @classmethod
    def of(
        cls, survey: Survey, *, replaced: bool, needs_follow_up: bool, redacted: bool
    ) -> RatingAccepted:
        rating = rating_view(survey)
        assert rating is not None
        return cls(
            survey_id=survey.id,
            ticket_id=survey.ticket_id,
            revision=survey.revision,
            replaced=replaced,
            needs_follow_up=needs_follow_up,
            rating=rating,
            secret_redacted=redacted,
            warning=REDACTION_WARNING[survey_language(survey.locale)] if redacted else None,
        )


class Averages(BaseModel):
    overall: float | None
    attitude: float | None
    speed: float | None
    clarity: float | None


class CsatRow(BaseModel):
    key: str | None = Field(description="The agent, group, category, channel, day or week.")
    surveys: int = Field(description="Surveys requested (one per solve; cancelled excluded).")
    responses: int
    satisfied: int = Field(description="Responses whose last score is 4 or 5.")
    csat_pct: float | None = Field(description="satisfied / responses × 100.")
    response_rate_pct: float | None = Field(description="responses / surveys × 100.")
    averages: Averages
    deflected: int = Field(
        description="Solves where the requester said a help article solved the problem."
    )
    deflection_pct: float | None = Field(description="deflected / surveys × 100.")

    @classmethod
    def of(cls, key: str | None, figures: CsatFigures) -> CsatRow:
        return cls(
            key=key,
            surveys=figures.surveys,
            responses=figures.responses,
            satisfied=figures.satisfied,
            csat_pct=figures.csat_pct,
            response_rate_pct=figures.response_rate_pct,
            averages=Averages.model_validate(figures.averages),
            deflected=figures.deflected,
            deflection_pct=figures.deflection_pct,
        )


class CsatReport(BaseModel):
    group_by: GroupBy
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    groups: list[CsatRow]
    total: CsatRow

    model_config = ConfigDict(populate_by_name=True)
