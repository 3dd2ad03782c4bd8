"""The requester's inbox page, and the page links requester messages carry.

- `GET /inbox?token=`: the requester's notifications, newest first. The token is the
  same signed inbox token the JSON API takes (purpose `inbox`, `requester_id`; optional
  `locale` and `tz` claims pick the language and time zone). A small script (CSP nonce,
  no build step) listens to `GET /v1/inbox/stream` and adds new items at the top without
  a reload, announcing them to screen readers. The stream starts from a little before the
  page was rendered (the script drops items it already shows), so an item that arrives
  between rendering and connecting is not missed.
- `POST /inbox/{item_id}/read?token=`: the "mark as read" button (a plain form; CSRF
  double-submit field bound to the token). Only the token's own items can be marked: any
  other id answers the same friendly 404 as an unknown one.

`link_values` gives templates what requester messages link to: `status_url` (a signed
`/t/{token}` link to intake's status page, scoped to this requester and ticket) and
`survey_page_url` (feedback's survey page, derived from `feedback.requested`'s
`survey_url`; the score links `{survey_page_url}/score/{n}` open the survey with that
score chosen; only the page's POST records it).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.tokens import TokenError, verify
from shared.web.csrf import FIELD, Csrf
from shared.web.forms import read_form
from shared.web.i18n import COMMON, LANGUAGES, Catalogue, page_language
from shared.web.links import TicketLink, sign_ticket_link
from shared.web.render import Pages

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from fastapi import FastAPI

    from services.notifier.domain import Recipient
    from services.notifier.ports import InboxRepository
    from services.notifier.settings import NotifierSettings
    from shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
TEMPLATES = Path(__file__).parent / "page_templates"
INBOX_SIZE = 50
STREAM_OVERLAP = timedelta(seconds=10)  # the page's stream starts this far before it
SURVEY_API_PATH = "/v1/surveys/"
SURVEY_PAGE_PATH = "/s/"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Notifications",
        "unread": "Unread",
        "read": "Read",
        "unread_count": "{n} unread",
        "mark_read": "Mark as read",
        "empty": "No notifications yet.",
        "live": "New notifications appear here as they arrive.",
        "new_item": "New notification",
        "ticket": "Ticket",
    },
    "zh-CN": {
        "title": "消息中心",
        "unread": "未读",
        "read": "已读",
        "unread_count": "{n} 条未读",
        "mark_read": "标为已读",
        "empty": "暂无消息。",
        "live": "新消息到达时会自动显示在这里。",
        "new_item": "新消息",
        "ticket": "工单",
    },
}


def survey_page_url(survey_url: str) -> str | None:
    """feedback's page for the survey whose API URL `feedback.requested` carries."""
    head, found, token = survey_url.rpartition(SURVEY_API_PATH)
    if not found or not token or "/" in token:
        return None
    return f"{head}{SURVEY_PAGE_PATH}{token}"


ARTICLE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def link_values(
    cfg: NotifierSettings, recipient: Recipient, values: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """`status_url`, `survey_page_url` and `articles` (suggested help articles: title and
    public page) for a requester's message (None and [] otherwise)."""
    links: dict[str, Any] = {"status_url": None, "survey_page_url": None, "articles": []}
    if recipient.kind != "requester" or recipient.user_id is None:
        return links
    suggested = values.get("suggested_articles") or []
    if cfg.status_page_base_url and isinstance(suggested, list):
        base = cfg.status_page_base_url.rstrip("/")
        links["articles"] = [
            {"title": a["title"], "url": f"{base}/help/articles/{a['id']}"}
            for a in suggested
            if isinstance(a, dict) and ARTICLE_ID.fullmatch(str(a.get("id", "")))
        ]
    survey_url = values.get("survey_url")
    if isinstance(survey_url, str):
        links["survey_page_url"] = survey_page_url(survey_url)
    ticket_id = values.get("ticket_id")
    if cfg.status_page_base_url and isinstance(ticket_id, str) and ticket_id:
        token = sign_ticket_link(
            cfg.requester_link_secret.get_secret_value().encode(),
            TicketLink(recipient.user_id, ticket_id, recipient.language, recipient.timezone),
            now,
            cfg.requester_link_ttl,
        )
        links["status_url"] = f"{cfg.status_page_base_url.rstrip('/')}/t/{token}"
    return links


def install_pages(
    app: FastAPI, cfg: NotifierSettings, runtime: ServiceRuntime, parts: dict[str, Any]
) -> None:
    """Add the inbox page routes (not in the OpenAPI schema: they answer HTML)."""
    pages = Pages(TEMPLATES, Catalogue(COMMON).extend(TEXTS))
    secret = cfg.inbox_secret.get_secret_value().encode() if cfg.inbox_secret else None
    csrf = Csrf(secret) if secret is not None else None

    def opened(request: Request) -> tuple[str, dict[str, Any], str] | HTMLResponse:
        """(requester id, token claims, token), or the friendly page why not."""
        override = request.query_params.get("lang")
        accept = request.headers.get("accept-language")
        keep = ("token",)
        if secret is None:
            lang = page_language(None, override, accept)
            return pages.error(request, lang=lang, status=503, kind="unavailable", keep=keep)
        token = request.query_params.get("token") or ""
        try:
            if len(token) > 2000 or not token.isascii():
                raise TokenError("malformed")
            claims = verify(secret, "inbox", token, runtime.clock.now())
        except TokenError as exc:
            lang = page_language(None, override, accept)
            kind, status = ("expired", 410) if exc.reason == "expired" else ("not_found", 404)
            return pages.error(request, lang=lang, status=status, kind=kind, keep=keep)
        requester_id = claims.get("requester_id")
        if not isinstance(requester_id, str) or not requester_id:
            lang = page_language(None, override, accept)
            return pages.error(request, lang=lang, status=404, kind="not_found", keep=keep)
        return requester_id, claims, token

    def language(request: Request, claims: Mapping[str, Any]) -> str:
        locale = claims.get("locale")
        return page_language(
            locale if isinstance(locale, str) else None,
            request.query_params.get("lang"),
            request.headers.get("accept-language"),
        )

    @app.get("/inbox", include_in_schema=False, response_class=HTMLResponse)
    async def inbox_page(request: Request) -> Response:
        found = opened(request)
        if isinstance(found, HTMLResponse):
            return found
        requester_id, claims, token = found
        assert csrf is not None
        store: InboxRepository = parts["store"]
        # Taken before reading: an item being recorded meanwhile may carry an earlier time.
        since = runtime.clock.now() - STREAM_OVERLAP
        items = await store.inbox_page(requester_id, unread_only=False, limit=INBOX_SIZE)
        lang = language(request, claims)
        tz = claims.get("tz") if isinstance(claims.get("tz"), str) else "UTC"
        nonce, csrf_value = csrf.issue(request, token)
        response = pages.render(
            request,
            "inbox.html",
            lang=lang,
            timezone=tz,
            keep=("token",),
            context={
                "items": items,
                "unread": sum(1 for i in items if i.read_at is None),
                "query": urlencode({"token": token, "lang": lang}),
                "token": token,
                "since": since.isoformat(),
                "csrf_field": FIELD,
                "csrf_value": csrf_value,
            },
        )
        csrf.set_cookie(request, response, nonce)
        return response

    @app.post("/inbox/{item_id}/read", include_in_schema=False, response_class=HTMLResponse)
    async def mark_read(request: Request, item_id: str) -> Response:
        form = await read_form(request)
        found = opened(request)
        if isinstance(found, HTMLResponse):
            return found
        requester_id, claims, token = found
        assert csrf is not None
        lang = language(request, claims)
        if form is None or not csrf.valid(request, token, form.get(FIELD)):
            return pages.error(request, lang=lang, status=403, kind="forbidden", keep=("token",))
        store: InboxRepository = parts["store"]
        if await store.mark_read(requester_id, item_id, runtime.clock.now()) is None:
            return pages.error(request, lang=lang, status=404, kind="not_found", keep=("token",))
        query = {"token": token}
        if request.query_params.get("lang") in LANGUAGES:
            query["lang"] = request.query_params["lang"]
        return RedirectResponse(f"/inbox?{urlencode(query)}", status_code=303)
