"""The survey page requesters reach from the email (HTML; the JSON API stays as it is).

Opening a link never records anything: mail security scanners fetch every link of a
message, and they must not rate tickets.

- `GET /s/{token}/score/{n}`: one of the five score links in the email. It shows the
  survey with score `n` chosen; one click on "Save score" (the POST below) records it.
- `GET /s/{token}`: what is rated, the five scores (the recorded one chosen) in a form,
  and once a score exists, the optional details form: dimension scores (attitude,
  speed, clarity), reasons and a comment (secrets are redacted before storing; the page
  then shows the warning).
- `POST /s/{token}`: either form (URL-encoded, CSRF double-submit cookie bound to the
  token; 403 without it). `part=score` changes the score and keeps the details given
  before; `part=details` sends everything. Both replace the rating as the API does (the
  last one counts); sending what is recorded already changes nothing and publishes
  nothing, so a double click or a resent form is harmless.

Expired, cancelled, forged or unknown links get a friendly page (404/410), never a
problem body. The page speaks the survey's locale; `?lang=` switches it.
"""

from __future__ import annotations

import time
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
    from services.feedback.metrics import FeedbackMetrics
    from services.feedback.ports import Survey
    from services.feedback.settings import FeedbackSettings
    from shared.web.forms import Form

TEMPLATES = Path(__file__).parent / "page_templates"
SCORES = (1, 2, 3, 4, 5)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "score_prompt": "Choose a score, then press “Save score”.",
        "your_score": "Your score",
        "save_score": "Save score",
        "score_chosen": "You chose {n} of 5. Press “Save score” to send it.",
        "too_many_changes": "This rating was changed too often, so it stays as it is now.",
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
        "score_prompt": "请选择分数，然后点击“保存评分”。",
        "your_score": "您的评分",
        "save_score": "保存评分",
        "score_chosen": "您选择了 {n} 分（满分 5 分），点击“保存评分”即可提交。",
        "too_many_changes": "该评价修改次数过多，将保持当前结果。",
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


def install_pages(
    app: FastAPI, cfg: FeedbackSettings, parts: dict[str, Any], metrics: FeedbackMetrics
) -> None:
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
        why = pages.catalogue.text(lang, exc.code) if exc.code == "too_many_changes" else None
        return pages.error(request, lang=lang, status=exc.status, kind="unavailable", detail=why)

    def page(
        request: Request,
        token: str,
        survey: Survey,
        *,
        picked: int | None = None,
        status: int = 200,
        error: bool = False,
    ) -> HTMLResponse:
        """The survey; `picked` is the score of the link that opened it (chosen, not saved)."""
        lang = language(request, survey)
        nonce, csrf_value = csrf.issue(request, token)
        saved = request.query_params.get("saved")
        rating = survey.rating
        current = rating.score if rating else None
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
                "current": current,
                "chosen_score": picked or current,
                "picked": picked if picked != current else None,
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

    async def show(request: Request, token: str, n: str | None) -> Response:
        view = "page" if n is None else "score_link"
        try:
            survey = await service().open_survey(token, view)
        except SurveyRefused as exc:
            return refused(request, exc)
        picked = _score(n)
        if n is not None and picked is None:
            metrics.rejected.labels(view, "bad_score").inc()
            return pages.error(
                request, lang=language(request, survey), status=404, kind="not_found"
            )
        metrics.survey_pages.labels(view).inc()
        return page(request, token, survey, picked=picked)

    @app.get("/s/{token}", include_in_schema=False, response_class=HTMLResponse)
    async def survey_page(request: Request, token: str) -> Response:
        with metrics.page_seconds.labels("view").time():
            return await show(request, token, None)

    @app.get("/s/{token}/score/{n}", include_in_schema=False, response_class=HTMLResponse)
    async def score_link(request: Request, token: str, n: str) -> Response:
        """Shows the survey with score `n` chosen; records nothing (scanners GET links)."""
        with metrics.page_seconds.labels("score_link").time():
            return await show(request, token, n)

    @app.post("/s/{token}", include_in_schema=False, response_class=HTMLResponse)
    async def send(request: Request, token: str) -> Response:
        started = time.perf_counter()
        try:
            return await _send(request, token)
        finally:
            metrics.page_seconds.labels("post").observe(time.perf_counter() - started)

    async def _send(request: Request, token: str) -> Response:
        form = await read_form(request)
        try:
            survey = await service().open_survey(token, "page_post")
        except SurveyRefused as exc:
            return refused(request, exc)
        if form is None or not csrf.valid(request, token, form.get(FIELD)):
            metrics.rejected.labels("page_post", "csrf").inc()
            lang = language(request, survey)
            return pages.error(request, lang=lang, status=403, kind="forbidden")
        score_only = form.get("part") == "score"
        if score_only:
            score = _score(form.get("score"))
            submission = _carried_over(survey, score) if score is not None else None
        else:
            submission = _details(form)
        if submission is None:
            metrics.rejected.labels("page_post", "invalid_form").inc()
            return page(request, token, survey, status=422, error=True)
        try:
            done = await service().submit(token, submission, via="page")
        except SurveyRefused as exc:
            return refused(request, exc)
        if score_only:
            return back(token, request, saved="score")
        flags = {"saved": "details", **({"redacted": "1"} if done.redacted_kinds else {})}
        return back(token, request, **flags)
