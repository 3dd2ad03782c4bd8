"""The survey page requesters reach from the email (HTML; the JSON API stays as it is).

- `GET /s/{token}/score/{n}`: one of the five one-click links in the email. The click
  records score `n` at once (the same use case as `POST /v1/surveys/{token}`, so it
  publishes `feedback.submitted`), keeping any details given before, then redirects to
  the page. Clicking the score that is already recorded changes nothing, so a double
  click or a reload publishes no second event.
- `GET /s/{token}`: what is rated, the five scores (the recorded one marked), and once a
  score exists, the optional form: dimension scores (attitude, speed, clarity), reasons
  and a comment (secrets are redacted before storing; the page then shows the warning).
- `POST /s/{token}`: that form (URL-encoded, CSRF double-submit cookie bound to the
  token; 403 without it). It replaces the rating as the API does: the last one counts.

Expired, cancelled, forged or unknown links get a friendly page (404/410), never a
problem body. The page speaks the survey's locale; `?lang=` switches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.feedback.domain import (
    COMMENT_MAX_CHARS,
    DIMENSIONS,
    REASON_LABELS,
    SURVEY_TEXTS,
    ReasonCode,
    SurveyRefused,
    category_label,
)
from services.feedback.handlers import Submission
from shared.events import DimensionScores
from shared.redaction import REDACTION_WARNING
from shared.web.csrf import FIELD, Csrf
from shared.web.forms import read_form
from shared.web.i18n import COMMON, LANGUAGES, Catalogue, page_language
from shared.web.render import Pages

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.feedback.handlers import FeedbackService
    from services.feedback.settings import FeedbackSettings
    from services.feedback.store import Survey
    from shared.web.forms import Form

TEMPLATES = Path(__file__).parent / "page_templates"
SCORES = (1, 2, 3, 4, 5)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "score_prompt": "Tap a number: your score is saved at once.",
        "score_words_1": "Very dissatisfied",
        "score_words_2": "Dissatisfied",
        "score_words_3": "Neutral",
        "score_words_4": "Satisfied",
        "score_words_5": "Very satisfied",
        "score_saved": "Thank you! Your score {n} of 5 is saved.",
        "details_saved": "Thank you! Your answers are saved.",
        "change_until": "You can change your answers until {when}.",
        "more_title": "Tell us more (optional)",
        "reasons": "What stood out?",
        "not_rated": "Skip",
        "send": "Send",
        "ticket": "Ticket",
        "subject": "Subject",
        "category": "Category",
        "solved": "Solved",
        "invalid_form": "Some answers were not valid. Please check them and send again.",
        "survey_cancelled": "The ticket was reopened, so this survey no longer applies. "
        "We will ask again when it is solved.",
    },
    "zh-CN": {
        "score_prompt": "点击分数即可，评分会立即保存。",
        "score_words_1": "非常不满意",
        "score_words_2": "不满意",
        "score_words_3": "一般",
        "score_words_4": "满意",
        "score_words_5": "非常满意",
        "score_saved": "感谢您的评价！已保存 {n} 分（满分 5 分）。",
        "details_saved": "感谢您的反馈，已保存！",
        "change_until": "在 {when} 之前，您可以随时修改评价。",
        "more_title": "补充评价（可选）",
        "reasons": "哪些方面让您印象深刻？",
        "not_rated": "跳过",
        "send": "提交",
        "ticket": "工单",
        "subject": "主题",
        "category": "类别",
        "solved": "解决时间",
        "invalid_form": "部分内容无效，请检查后重新提交。",
        "survey_cancelled": "该工单已重新打开，本次评价不再适用。工单解决后我们会再次邀请您评价。",
    },
}


def _score(raw: str | None) -> int | None:
    """A score from a path or form field: 1 to 5, anything else None."""
    if raw is None or raw not in {str(s) for s in SCORES}:
        return None
    return int(raw)


def _carried_over(survey: Survey, score: int) -> Submission:
    """A new score that keeps the dimensions, reasons and comment given before."""
    rating = survey.rating
    reasons = tuple(ReasonCode(r) for r in survey.reasons if r in ReasonCode.__members__)
    return Submission(
        score=score,
        dimensions=DimensionScores(
            attitude=rating.attitude if rating else None,
            speed=rating.speed if rating else None,
            clarity=rating.clarity if rating else None,
        ),
        reasons=reasons,
        comment=survey.comment,
    )


def _details(form: Form) -> Submission | None:
    """The details form as a submission; None when any field is not valid."""
    score = _score(form.get("score"))
    if score is None:
        return None
    dims: dict[str, int | None] = {}
    for name in DIMENSIONS:
        raw = form.get(name) or ""
        value = _score(raw)
        if raw and value is None:
            return None
        dims[name] = value
    raw_reasons = form.all("reasons")
    if any(r not in ReasonCode.__members__ for r in raw_reasons):
        return None
    comment = form.get("comment") or ""
    if len(comment) > COMMENT_MAX_CHARS:
        return None
    return Submission(
        score=score,
        dimensions=DimensionScores(**dims),
        reasons=tuple(ReasonCode(r) for r in dict.fromkeys(raw_reasons)),
        comment=comment,
    )


def install_pages(app: FastAPI, cfg: FeedbackSettings, parts: dict[str, Any]) -> None:
    """Add the survey page routes (not in the OpenAPI schema: they answer HTML)."""
    pages = Pages(TEMPLATES, Catalogue(COMMON).extend(TEXTS))
    csrf = Csrf(cfg.survey_secret.get_secret_value().encode())

    def service() -> FeedbackService:
        return parts["service"]  # type: ignore[no-any-return]

    def language(request: Request, survey: Survey | None) -> str:
        return page_language(
            survey.locale if survey else None,
            request.query_params.get("lang"),
            request.headers.get("accept-language"),
        )

    def refused(request: Request, exc: SurveyRefused) -> HTMLResponse:
        lang = language(request, None)
        if exc.code == "survey_cancelled":
            detail = pages.catalogue.text(lang, "survey_cancelled")
            return pages.error(request, lang=lang, status=410, kind="expired", detail=detail)
        if exc.status == 410:
            return pages.error(request, lang=lang, status=410, kind="expired")
        if exc.status == 404:
            return pages.error(request, lang=lang, status=404, kind="not_found")
        return pages.error(request, lang=lang, status=exc.status, kind="unavailable")

    def page(
        request: Request, token: str, survey: Survey, *, status: int = 200, error: bool = False
    ) -> HTMLResponse:
        lang = language(request, survey)
        nonce, csrf_value = csrf.issue(request, token)
        saved = request.query_params.get("saved")
        rating = survey.rating
        response = pages.render(
            request,
            "survey.html",
            lang=lang,
            timezone=survey.timezone,
            status=status,
            keep=("saved",),
            context={
                "token": token,
                "survey": survey,
                "texts": SURVEY_TEXTS[lang],
                "category": category_label(survey.category, lang),
                "scores": SCORES,
                "dimensions": DIMENSIONS,
                "reasons": REASON_LABELS[lang],
                "current": rating.score if rating else None,
                "dims": {
                    "attitude": rating.attitude if rating else None,
                    "speed": rating.speed if rating else None,
                    "clarity": rating.clarity if rating else None,
                },
                "chosen": set(survey.reasons),
                "saved": saved if saved in ("score", "details") else None,
                "warning": REDACTION_WARNING[lang]
                if request.query_params.get("redacted") == "1"
                else None,
                "error": error,
                "csrf_field": FIELD,
                "csrf_value": csrf_value,
                "comment_max": COMMENT_MAX_CHARS,
            },
        )
        csrf.set_cookie(request, response, nonce)
        return response

    def back(token: str, request: Request, **query: str) -> RedirectResponse:
        """303 to the page (token checked already), keeping a language the user picked."""
        lang = request.query_params.get("lang")
        if lang in LANGUAGES:
            query["lang"] = lang
        return RedirectResponse(f"/s/{token}?{urlencode(query)}", status_code=303)

    @app.get("/s/{token}", include_in_schema=False, response_class=HTMLResponse)
    async def survey_page(request: Request, token: str) -> Response:
        try:
            survey = await service().open_survey(token, "page")
        except SurveyRefused as exc:
            return refused(request, exc)
        return page(request, token, survey)

    @app.get("/s/{token}/score/{n}", include_in_schema=False, response_class=HTMLResponse)
    async def one_click(request: Request, token: str, n: str) -> Response:
        score = _score(n)
        try:
            survey = await service().open_survey(token, "page")
            if score is None:
                lang = language(request, survey)
                return pages.error(request, lang=lang, status=404, kind="not_found")
            if survey.rating is None or survey.rating.score != score:
                await service().submit(token, _carried_over(survey, score))
        except SurveyRefused as exc:
            return refused(request, exc)
        return back(token, request, saved="score")

    @app.post("/s/{token}", include_in_schema=False, response_class=HTMLResponse)
    async def send_details(request: Request, token: str) -> Response:
        form = await read_form(request)
        try:
            survey = await service().open_survey(token, "page")
        except SurveyRefused as exc:
            return refused(request, exc)
        if form is None or not csrf.valid(request, token, form.get(FIELD)):
            lang = language(request, survey)
            return pages.error(request, lang=lang, status=403, kind="forbidden")
        submission = _details(form)
        if submission is None:
            return page(request, token, survey, status=422, error=True)
        try:
            done = await service().submit(token, submission)
        except SurveyRefused as exc:
            return refused(request, exc)
        flags = {"saved": "details", **({"redacted": "1"} if done.redacted_kinds else {})}
        return back(token, request, **flags)
