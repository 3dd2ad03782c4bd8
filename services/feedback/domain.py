"""Pure rules of feedback: survey tokens, follow-up, periods, CSAT arithmetic, survey texts.

No I/O and no framework: handlers pass `now` in, and the CSAT numbers the API reports
are computed here from counts that MongoDB sums, so the arithmetic is unit-tested
(against a brute-force computation) rather than hidden in a pipeline.

How the survey link behaves (the issue asks for "single-use" tokens that still let a
requester change the rating; this is how both hold at once):

- A token is bound to exactly one survey, and a survey to exactly one solve. It never
  opens another survey, another ticket or a later solve of the same ticket.
- The first POST answers the survey. Later POSTs with the same token, while it has not
  expired, replace the rating: the last one counts, and each publishes a new
  `feedback.submitted` (at most `MAX_RATING_CHANGES` times).
- Opening a link (GET) never records anything: mail scanners fetch every link in a
  message, so a rating needs a POST.
- A low score asks a lead to follow up once per survey, however often it changes:
  flipping 1 → 5 → 1 must not page the leads or escalate the ticket again.
- Expired, or the survey was cancelled because the ticket reopened: 410 Gone with a
  `code` (`survey_expired`, `survey_cancelled`). Forged, malformed, or made for another
  purpose: 404 Not Found (`token_invalid`): to whoever holds a bad link, the survey simply
  does not exist, and we say nothing about why the signature failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.tokens import SigningKeys, TokenError, sign, verify

if TYPE_CHECKING:
    from collections.abc import Iterable

TOKEN_PURPOSE = "survey"
SATISFIED_MIN = 4  # CSAT counts 4 and 5 as satisfied
DEFAULT_FOLLOW_UP_AT = 2  # scores at or below this ask a lead to follow up
COMMENT_MAX_CHARS = 2000
MAX_RATING_CHANGES = 20  # changes after the first rating, per survey
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{1,128}$")


class SurveyStatus(StrEnum):
    requested = "requested"  # sent, not answered yet
    answered = "answered"  # has a rating (the last one counts)
    cancelled = "cancelled"  # the ticket reopened before an answer


class ReasonCode(StrEnum):
    """Why a requester rated as they did (chosen from a list, so they can be counted)."""

    slow_response = "slow_response"
    unclear_answer = "unclear_answer"
    impolite = "impolite"
    not_solved = "not_solved"
    had_to_repeat = "had_to_repeat"
    fast = "fast"
    clear = "clear"
    friendly = "friendly"
    solved = "solved"
    other = "other"


class GroupBy(StrEnum):
    agent = "agent"
    group = "group"
    category = "category"
    channel = "channel"
    day = "day"
    week = "week"


DIMENSIONS = ("attitude", "speed", "clarity")


# --- tokens -------------------------------------------------------------------------------


class SurveyRefused(Exception):
    """Why a survey link cannot be used; `status` is the HTTP answer, `code` the reason."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def issue_token(
    secret: bytes | SigningKeys, survey_id: str, now: datetime, ttl: timedelta
) -> tuple[str, datetime]:
    """The survey link's token and the instant it stops working (whole seconds, as signed)."""
    token = sign(secret, TOKEN_PURPOSE, {"s": survey_id}, now, ttl)
    expires_at = datetime.fromtimestamp(int((now + ttl).timestamp()), UTC)
    return token, expires_at


def survey_of_token(secret: bytes | SigningKeys, token: str, now: datetime) -> str:
    """The survey id a token opens, or `SurveyRefused` (404 for bad tokens, 410 expired)."""
    if not _TOKEN_SHAPE.match(token):  # also keeps non-ASCII away from hmac.compare_digest
        raise SurveyRefused(404, "token_invalid", "This survey link is not valid.")
    try:
        claims = verify(secret, TOKEN_PURPOSE, token, now)
    except TokenError as exc:
        if exc.reason == "expired":
            raise SurveyRefused(410, "survey_expired", "This survey link has expired.") from exc
        raise SurveyRefused(404, "token_invalid", "This survey link is not valid.") from exc
    survey_id = claims.get("s")
    if not isinstance(survey_id, str) or not survey_id:
        raise SurveyRefused(404, "token_invalid", "This survey link is not valid.")
    return survey_id


def check_open(status: SurveyStatus, expires_at: datetime, now: datetime) -> None:
    """A stored survey accepts ratings until it expires, unless its ticket reopened."""
    if status == SurveyStatus.cancelled:
        raise SurveyRefused(
            410, "survey_cancelled", "The ticket was reopened; this survey no longer applies."
        )
    if now > expires_at:
        raise SurveyRefused(410, "survey_expired", "This survey link has expired.")


# --- ratings ------------------------------------------------------------------------------


def needs_follow_up(score: int, already_requested: bool, threshold: int) -> bool:
    """A low score asks a lead to follow up once per survey: the first time it is low,
    never again, whatever the scores in between (each request mails the leads and
    escalates the ticket in intake)."""
    return score <= threshold and not already_requested


def check_can_change(revision: int) -> None:
    """A survey takes its first rating and at most `MAX_RATING_CHANGES` changes; each one
    is an event on the feedback topic, so a link cannot be replayed without end."""
    if revision > MAX_RATING_CHANGES:
        raise SurveyRefused(
            409, "too_many_changes", "This rating was changed too often; it stays as it is."
        )


def clean_comment(comment: str | None) -> str | None:
    if comment is None:
        return None
    stripped = comment.strip()
    return stripped or None


def period_keys(when: datetime) -> tuple[str, str]:
    """(day, ISO week) in UTC, e.g. ("2026-11-23", "2026-W48"): stored, so grouping by
    period is a plain `$group` on a field whatever the server's date operators."""
    utc = when.astimezone(UTC)
    year, week, _ = utc.isocalendar()
    return utc.strftime("%Y-%m-%d"), f"{year}-W{week:02d}"


def local_time(when: datetime, timezone: str) -> datetime:
    """`when` in the requester's time zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return when.astimezone(zone)


# --- CSAT ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    score: int
    attitude: int | None = None
    speed: int | None = None
    clarity: int | None = None


@dataclass(frozen=True)
class CsatCounts:
    """Sums over surveys; adding two gives the counts of their union (so totals are exact)."""

    surveys: int = 0  # surveys requested (cancelled ones excluded)
    responses: int = 0  # of which answered
    satisfied: int = 0  # of which the last score is 4 or 5
    score_sum: int = 0
    dimension_sums: tuple[int, int, int] = (0, 0, 0)  # attitude, speed, clarity
    dimension_counts: tuple[int, int, int] = (0, 0, 0)
    deflected: int = 0  # of which solved by the requester with a help article

    def __add__(self, other: CsatCounts) -> CsatCounts:
        return CsatCounts(
            surveys=self.surveys + other.surveys,
            responses=self.responses + other.responses,
            satisfied=self.satisfied + other.satisfied,
            score_sum=self.score_sum + other.score_sum,
            dimension_sums=_add3(self.dimension_sums, other.dimension_sums),
            dimension_counts=_add3(self.dimension_counts, other.dimension_counts),
            deflected=self.deflected + other.deflected,
        )

    @classmethod
    def of(cls, rating: Rating | None) -> CsatCounts:
        """The counts of one survey: unanswered (`None`) or with its last rating."""
        if rating is None:
            return cls(surveys=1)
        dims = (rating.attitude, rating.speed, rating.clarity)
        return cls(
            surveys=1,
            responses=1,
            satisfied=int(rating.score >= SATISFIED_MIN),
            score_sum=rating.score,
            dimension_sums=tuple(d or 0 for d in dims),  # type: ignore[arg-type]
            dimension_counts=tuple(int(d is not None) for d in dims),  # type: ignore[arg-type]
        )


def _add3(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


@dataclass(frozen=True)
class CsatFigures:
    surveys: int
    responses: int
    satisfied: int
    csat_pct: float | None  # satisfied / responses × 100; None without responses
    response_rate_pct: float | None  # responses / surveys × 100; None without surveys
    averages: dict[str, float | None] = field(default_factory=dict)  # overall + dimensions
    deflected: int = 0  # solves by a help article
    deflection_pct: float | None = None  # deflected / surveys × 100; None without surveys


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def _avg(total: int, count: int) -> float | None:
    return round(total / count, 2) if count else None


def figures(counts: CsatCounts) -> CsatFigures:
    averages: dict[str, float | None] = {"overall": _avg(counts.score_sum, counts.responses)}
    for name, total, count in zip(
        DIMENSIONS, counts.dimension_sums, counts.dimension_counts, strict=True
    ):
        averages[name] = _avg(total, count)
    return CsatFigures(
        surveys=counts.surveys,
        responses=counts.responses,
        satisfied=counts.satisfied,
        csat_pct=_pct(counts.satisfied, counts.responses),
        response_rate_pct=_pct(counts.responses, counts.surveys),
        averages=averages,
        deflected=counts.deflected,
        deflection_pct=_pct(counts.deflected, counts.surveys),
    )


def total(groups: Iterable[CsatCounts]) -> CsatCounts:
    result = CsatCounts()
    for counts in groups:
        result = result + counts
    return result


# --- what the requester sees --------------------------------------------------------------

SURVEY_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "How did we do?",
        "question": "How satisfied are you with the help you got on this ticket?",
        "scale": "1 = very dissatisfied, 5 = very satisfied",
        "attitude": "Service attitude",
        "speed": "Resolution speed",
        "clarity": "Clarity of information",
        "comment": "Anything else you want to tell us? Never share seed phrases or private keys.",
    },
    "zh-CN": {
        "title": "请评价本次服务",
        "question": "您对本工单获得的帮助满意吗？",
        "scale": "1 = 非常不满意，5 = 非常满意",
        "attitude": "服务态度",
        "speed": "解决速度",
        "clarity": "信息清晰度",
        "comment": "还有其他想告诉我们的吗？请勿填写助记词或私钥。",
    },
}

REASON_LABELS: dict[str, dict[ReasonCode, str]] = {
    "en": {
        ReasonCode.slow_response: "Slow response",
        ReasonCode.unclear_answer: "Unclear answer",
        ReasonCode.impolite: "Impolite or impatient",
        ReasonCode.not_solved: "Problem not solved",
        ReasonCode.had_to_repeat: "Had to repeat myself",
        ReasonCode.fast: "Fast",
        ReasonCode.clear: "Clear explanation",
        ReasonCode.friendly: "Friendly",
        ReasonCode.solved: "Problem solved",
        ReasonCode.other: "Other",
    },
    "zh-CN": {
        ReasonCode.slow_response: "回复太慢",
        ReasonCode.unclear_answer: "回答不清楚",
        ReasonCode.impolite: "态度不好或不耐烦",
        ReasonCode.not_solved: "问题没有解决",
        ReasonCode.had_to_repeat: "需要反复说明",
        ReasonCode.fast: "速度快",
        ReasonCode.clear: "解释清楚",
        ReasonCode.friendly: "态度友好",
        ReasonCode.solved: "问题已解决",
        ReasonCode.other: "其他",
    },
}

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "account_security": "账号安全",
        "scam_report": "诈骗举报",
        "withdrawal_delay": "提现延迟",
        "deposit_missing": "充值未到账",
        "transfer_failed": "转账失败",
        "wallet_recovery": "钱包恢复",
        "kyc": "身份认证",
        "trading": "交易",
        "fees": "手续费",
        "complaint": "投诉",
        "other": "其他",
    },
}


def survey_language(locale: str) -> str:
    """The survey texts to show: Chinese for any zh locale, English otherwise."""
    return "zh-CN" if locale.lower().startswith("zh") else "en"


def category_label(category: str, language: str) -> str:
    labels = CATEGORY_LABELS.get(language)
    if labels is None:
        return category.replace("_", " ").capitalize()
    return labels.get(category, category)
