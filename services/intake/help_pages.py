"""Public help article pages and the status page's suggested answers.

- `GET /help/articles/{article_id}`: one article in its own language, its Markdown
  rendered with raw HTML off (`faq.render_markdown`), rate-limited like every public
  page. Ids name entries of the index loaded at start, never files: anything that is not
  an id (`..%2F..%2Fetc%2Fpasswd`) is the same friendly 404 as an unknown id.
- The status page (`pages.py`) lists the three articles suggested for the ticket, each
  with a "this solved my problem" form (`POST /t/{token}/solved`, CSRF like the reply
  form), which solves the ticket with `ticket.solved_by_article`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import Request  # noqa: TC002 (FastAPI reads route annotations at run time)
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from services.intake.faq import valid_article_id
from shared.web.i18n import COMMON, LANGUAGE_NAMES, Catalogue, page_language
from shared.web.render import Pages

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi import FastAPI

    from services.intake.domain import Ticket
    from services.intake.faq import Article, ArticleIndex
    from services.intake.metrics import SelfServiceMetrics
    from shared.events import ArticleSuggestion

ARTICLE_ROUTE = "/help/articles/{article_id}"

SELF_SERVICE_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "articles_title": "These articles may answer your question",
        "articles_hint": "If one of them solves your problem, tell us and we will close "
        "your request.",
        "solved_button": "This solved my problem",
        "solved_by_article": "Glad that helped. Your request is solved; reply below if you "
        "still need us.",
        "already_solved": "This request is already solved.",
        "unknown_article": "That article could not be found.",
        "article_other_language": "Read in",
        "article_footer": "Still need help? Reply to your request from the link in our "
        "email. We will never ask for your seed phrase, private keys or a transfer.",
    },
    "zh-CN": {
        "articles_title": "以下文章或许能解答您的问题",
        "articles_hint": "如果其中一篇解决了您的问题，请告诉我们，我们将关闭此工单。",
        "solved_button": "问题已解决",
        "solved_by_article": "很高兴能帮到您。工单已标记为已解决；如仍需帮助，请在下方回复。",
        "already_solved": "此工单已经解决。",
        "unknown_article": "找不到该文章。",
        "article_other_language": "阅读",
        "article_footer": "仍需帮助？请通过邮件中的链接回复您的工单。我们绝不会索要助记词、"
        "私钥，也不会要求您转账。",
    },
}


def article_url(article_id: str, base_url: str = "") -> str:
    return f"{base_url.rstrip('/')}/help/articles/{article_id}"


def suggestions_for(index: ArticleIndex, ticket: Ticket) -> list[ArticleSuggestion]:
    """The articles the status page shows: the same ranking as the acknowledgement."""
    crypto = ticket.crypto
    return index.suggest(
        subject=ticket.subject,
        description=ticket.description,
        locale=ticket.requester.locale,
        category=ticket.category,
        asset=crypto.asset if crypto else None,
        network=crypto.network if crypto else None,
    )


def translation(index: ArticleIndex, article: Article) -> Article | None:
    """The same article in the other language, by the `-en` / `-zh` naming of ids."""
    stem, _, suffix = article.id.rpartition("-")
    other = {"en": "zh", "zh": "en"}.get(suffix)
    return index.get(f"{stem}-{other}") if stem and other else None


def install_help_pages(
    app: FastAPI, index: ArticleIndex, metrics: SelfServiceMetrics, templates: Path
) -> None:
    pages = Pages(templates, Catalogue(COMMON).extend(SELF_SERVICE_TEXTS))

    @app.get(ARTICLE_ROUTE, include_in_schema=False, response_class=HTMLResponse)
    async def article_page(request: Request, article_id: str) -> HTMLResponse:
        started = time.perf_counter()
        try:
            article = index.get(article_id) if valid_article_id(article_id) else None
            if article is None:
                metrics.self_service_refused.labels("article", "not_found").inc()
                lang = page_language(
                    None, request.query_params.get("lang"), request.headers.get("accept-language")
                )
                return pages.error(request, lang=lang, status=404, kind="not_found")
            metrics.article_views.labels(article.language).inc()
            other = translation(index, article)
            switcher = [
                {
                    "code": a.language,
                    "name": LANGUAGE_NAMES[a.language],
                    "href": article_url(a.id),
                    "current": a.id == article.id,
                }
                for a in sorted(filter(None, (article, other)), key=lambda a: a.language)
            ]
            return pages.render(
                request,
                "article.html",
                lang=article.language,
                context={
                    "article": article,
                    # rendered at start from Markdown with raw HTML off: safe to insert
                    "article_html": Markup(article.html),
                    "switcher": switcher,
                },
            )
        finally:
            metrics.self_service_seconds.labels("article").observe(time.perf_counter() - started)
