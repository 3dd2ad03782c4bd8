"""The ticket status page behind the signed "check your ticket" link.

- `GET /t/{token}`: the ticket's progress (received → agent replied → waiting for you /
  waiting on the blockchain or a partner → solved), its public timeline (internal notes
  never), the promised next reply time from sla_monitor in the requester's time zone,
  the incident it is linked to (public status text and updates, newest first, in the
  requester's language), the suggested help articles, and a reply box.
- `POST /t/{token}/reply`: the reply box. It goes through `TicketService.change` with
  `AddMessage(author=requester)`, exactly like the API: secrets are redacted, the ticket
  gets the security notice, and the page shows the warning.

Every page that shows the ticket and every change the link makes leaves an audit entry
(`services.intake.audit`): actor `link:<ticket id>`, the route (never the token).

Who sees what: the token (`shared.web.links`, purpose `ticket`) names one requester and
one ticket and expires. The ticket must belong to that requester, and a form's hidden
`ticket_id` must be the token's ticket; nothing in the URL or the form can point the
page at another ticket. A bad, foreign or expired link gets the same friendly 404/410
page whatever the reason, so it tells nothing about other tickets. Forms carry the CSRF
double-submit field bound to the token (403 without it).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake.audit import link_actor, route_of
from services.intake.domain import (
    AlreadySolved,
    TicketClosed,
    TicketLimitExceeded,
    TicketTooLarge,
    show_number,
)
from services.intake.handlers import ConcurrentChange, TicketNotFound, UnknownArticle
from services.intake.help_pages import SELF_SERVICE_TEXTS, suggestions_for
from shared.commands import MAX_TEXT, AddMessage, SolveByArticle
from shared.events import Author, Status
from shared.ids import new_id
from shared.redaction import REDACTION_WARNING
from shared.tokens import SigningKeys, TokenError
from shared.web.csrf import FIELD, Csrf
from shared.web.forms import read_form
from shared.web.i18n import COMMON, LANGUAGES, Catalogue, page_language
from shared.web.links import TicketLink, verify_ticket_link
from shared.web.render import Pages

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI
    from pydantic import SecretStr

    from services.intake.audit import AuditTrail
    from services.intake.domain import Ticket
    from services.intake.handlers import TicketService
    from services.intake.incident_store import IncidentStore
    from services.intake.incidents import Incident
    from services.intake.settings import IntakeSettings
    from services.intake.store import TicketStore
    from shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
TEMPLATES = Path(__file__).parent / "page_templates"
SLA_TIMEOUT_S = 1.5
REPLY_CLOCKS = ("first_reply", "next_reply")
_REQUEST_ID = re.compile(r"[0-9a-f-]{36}")
STEPS = ("received", "replied", "waiting_you", "waiting_partner", "solved")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your request",
        "ticket": "Ticket",
        "progress": "Progress",
        "step_received": "Received",
        "step_replied": "An agent replied",
        "step_waiting_you": "Waiting for your reply",
        "step_waiting_partner": "Waiting on the blockchain or a partner",
        "step_solved": "Solved",
        "status_new": "We received your request. An agent will reply soon.",
        "status_open": "An agent is working on your request.",
        "status_pending": "We are waiting for your reply.",
        "status_on_hold": "We are waiting on the blockchain or a partner and will update "
        "you as soon as we hear back.",
        "status_solved": "Your request is solved. If anything is still wrong, reply below "
        "and we will reopen it.",
        "status_closed": "This request is closed. Please open a new request if you need help.",
        "promised": "We will reply by",
        "your_time_zone": "your time zone",
        "timeline": "Timeline",
        "who_received": "You opened the request",
        "who_agent": "Support replied",
        "who_requester": "You wrote",
        "who_system": "Security notice",
        "reply_title": "Reply",
        "reply_label": "Your message",
        "reply_hint": "Add details such as the transaction hash, the network or the exact "
        "error. Never share your seed phrase or private keys.",
        "send": "Send",
        "sent": "Thank you, your message was added to the request.",
        "empty": "Please write a message before sending.",
        "too_long": "Your message is too long.",
        "closed": "This request is closed and cannot take new messages.",
        "busy": "The request changed while you were writing. Please send again.",
        "full": "This request cannot take more messages. Please open a new request and "
        "mention this one's number.",
        "follow_up_of": "Follows up request",
        "follow_ups": "Followed up in request",
        "incident_heading": "A known issue affects your request",
        "incident_resolved": "This issue is resolved",
        "incident_updates": "Updates",
    },
    "zh-CN": {
        "title": "您的工单",
        "ticket": "工单",
        "progress": "处理进度",
        "step_received": "已受理",
        "step_replied": "客服已回复",
        "step_waiting_you": "等待您的回复",
        "step_waiting_partner": "等待区块链或合作方",
        "step_solved": "已解决",
        "status_new": "我们已收到您的请求，客服将尽快回复。",
        "status_open": "客服正在处理您的请求。",
        "status_pending": "我们正在等待您的回复。",
        "status_on_hold": "我们正在等待区块链确认或合作方反馈，有进展会第一时间通知您。",
        "status_solved": "您的请求已解决。如仍有问题，请在下方回复，我们会重新处理。",
        "status_closed": "此工单已关闭。如需帮助，请提交新的请求。",
        "promised": "我们将在此时间前回复",
        "your_time_zone": "您的时区",
        "timeline": "处理记录",
        "who_received": "您提交了请求",
        "who_agent": "客服回复",
        "who_requester": "您的留言",
        "who_system": "安全提醒",
        "reply_title": "回复",
        "reply_label": "您的留言",
        "reply_hint": "可补充交易哈希、网络、具体报错等信息。请勿填写助记词或私钥。",
        "send": "发送",
        "sent": "感谢您的留言，已添加到工单。",
        "empty": "请先填写留言内容。",
        "too_long": "留言内容过长。",
        "closed": "此工单已关闭，无法继续留言。",
        "busy": "工单在您填写时发生了变化，请重新发送。",
        "full": "此工单已无法继续留言，请新建工单并注明本工单编号。",
        "follow_up_of": "续接工单",
        "follow_ups": "后续工单",
        "incident_heading": "您的工单涉及一个已知问题",
        "incident_resolved": "该问题已解决",
        "incident_updates": "进展更新",
    },
}


@dataclass(frozen=True)
class Entry:
    """One line of the public timeline."""

    kind: str  # received | agent | requester | system
    at: datetime
    body: str


@dataclass(frozen=True)
class IncidentNotice:
    """The incident a ticket is linked to, as its requester reads it: their language only."""

    title: str
    status_text: str
    resolved: bool
    updates: list[tuple[datetime, str]]  # newest first


def incident_notice(incident: Incident | None, lang: str) -> IncidentNotice | None:
    if incident is None:
        return None
    updates = incident.updates[::-1]  # posted in order: the last one first
    return IncidentNotice(
        title=incident.title.for_locale(lang),
        status_text=incident.status_text.for_locale(lang),
        resolved=not incident.is_open,
        updates=[(u.posted_at, u.text.for_locale(lang)) for u in updates],
    )


@dataclass(frozen=True)
class Step:
    name: str
    state: str  # done | current | todo


def timeline(ticket: Ticket) -> list[Entry]:
    """The request itself, then every public message in order (internal notes never)."""
    entries = [Entry("received", ticket.created_at, ticket.description)]
    for message in sorted(ticket.messages, key=lambda m: m.created_at):
        if message.public:
            entries.append(Entry(message.author.value, message.created_at, message.body))
    return entries


def progress(ticket: Ticket) -> list[Step]:
    """The five steps requesters know; waiting steps are current only while they last."""
    replied = any(m.author == Author.agent and m.public for m in ticket.messages)
    current = {
        Status.new: "received",
        Status.open: "replied" if replied else "received",
        Status.pending: "waiting_you",
        Status.on_hold: "waiting_partner",
        Status.solved: "solved",
        Status.closed: "solved",
    }[ticket.status]
    done = {"received"} | ({"replied"} if replied else set())
    if ticket.status in (Status.solved, Status.closed):
        done.add("solved")
    steps = []
    for name in STEPS:
        state = "done" if name in done and name != current else "todo"
        if name == current:
            state = "done" if ticket.status in (Status.solved, Status.closed) else "current"
        steps.append(Step(name, state))
    return steps


def promised_reply(sla: Mapping[str, Any]) -> datetime | None:
    """The deadline of the running first-reply or next-reply clock (earliest if both)."""
    deadlines = []
    for clock in sla.get("clocks") or []:
        if not isinstance(clock, dict) or clock.get("metric") not in REPLY_CLOCKS:
            continue
        if clock.get("state") != "running" or not isinstance(clock.get("deadline"), str):
            continue
        try:
            deadlines.append(datetime.fromisoformat(clock["deadline"]))
        except ValueError:
            continue
    return min(deadlines) if deadlines else None


async def fetch_promised_reply(
    base_url: str, ticket_id: str, api_key: SecretStr | None = None
) -> datetime | None:
    """Asked of sla_monitor per page view; None when it is down, slow or knows nothing."""
    url = f"{base_url.rstrip('/')}/v1/tickets/{quote(ticket_id, safe='')}/sla"
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=SLA_TIMEOUT_S) as client:
            response = await client.get(url, headers=headers)
        if response.status_code != 200:
            return None
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return promised_reply(body) if isinstance(body, dict) else None


def install_pages(
    app: FastAPI, cfg: IntakeSettings, runtime: ServiceRuntime, parts: dict[str, Any]
) -> None:
    """Add the status page routes (not in the OpenAPI schema: they answer HTML)."""
    secret = SigningKeys.of(cfg.requester_link_secret, cfg.requester_link_previous_secret)
    pages = Pages(TEMPLATES, Catalogue(COMMON).extend(TEXTS).extend(SELF_SERVICE_TEXTS))
    csrf = Csrf(secret.current)

    def language(request: Request, link: TicketLink | None) -> str:
        return page_language(
            link.locale if link else None,
            request.query_params.get("lang"),
            request.headers.get("accept-language"),
        )

    async def opened(request: Request, token: str) -> tuple[TicketLink, Ticket] | HTMLResponse:
        """The link's ticket, or the friendly page saying the link cannot be used."""
        try:
            link = verify_ticket_link(secret, token, runtime.clock.now())
        except TokenError as exc:
            lang = language(request, None)
            if exc.reason == "expired":
                return pages.error(request, lang=lang, status=410, kind="expired")
            return pages.error(request, lang=lang, status=404, kind="not_found")
        store: TicketStore = parts["store"]
        ticket = await store.get(link.ticket_id)
        if ticket is None or ticket.requester.id != link.requester_id:
            return pages.error(request, lang=language(request, link), status=404, kind="not_found")
        return link, ticket

    async def audited(request: Request, link: TicketLink) -> None:
        """The link read or changed its ticket: in the trail before the answer is sent."""
        trail: AuditTrail = parts["audit"]
        entry = trail.entry(link_actor(link.ticket_id), route_of(request), link.ticket_id)
        await trail.record_many([entry], "link")

    async def page(
        request: Request,
        token: str,
        link: TicketLink,
        ticket: Ticket,
        *,
        status: int = 200,
        problem: str | None = None,
        draft: str = "",
    ) -> HTMLResponse:
        lang = language(request, link)
        waiting_on_us = ticket.status in (Status.new, Status.open, Status.on_hold)
        promised = (
            await fetch_promised_reply(cfg.sla_monitor_url, ticket.id, cfg.sla_read_api_key)
            if waiting_on_us
            else None
        )
        nonce, csrf_value = csrf.issue(request, token)
        store: TicketStore = parts["store"]
        follow_ups = (await store.follow_ups([ticket.id])).get(ticket.id, [])
        redacted = request.query_params.get("redacted") == "1"
        incidents: IncidentStore = parts["incident_store"]
        incident = await incidents.get(ticket.incident_id) if ticket.incident_id else None
        response = pages.render(
            request,
            "status.html",
            lang=lang,
            timezone=link.tz,
            status=status,
            context={
                "token": token,
                "ticket": ticket,
                "steps": progress(ticket),
                "entries": timeline(ticket),
                "promised": promised,
                "sent": request.query_params.get("sent") == "1",
                "warning": REDACTION_WARNING[lang] if redacted else None,
                "problem": problem,
                "draft": draft,
                "can_reply": ticket.status != Status.closed,
                "csrf_field": FIELD,
                "csrf_value": csrf_value,
                "max_text": MAX_TEXT,
                "number": show_number(ticket.number),
                "follow_up_of": show_number(ticket.follow_up_of.number)
                if ticket.follow_up_of
                else None,
                "follow_ups": [n for f in follow_ups if (n := show_number(f.number))],
                "request_id": new_id(),
                "articles": suggestions_for(parts["answers"], ticket),
                "can_solve": ticket.status not in (Status.solved, Status.closed),
                "solved_by_article": request.query_params.get("solved") == "1",
                "incident": incident_notice(incident, lang),
            },
        )
        csrf.set_cookie(request, response, nonce)
        if status < 400:
            await audited(request, link)
        return response

    @app.get("/t/{token}", include_in_schema=False, response_class=HTMLResponse)
    async def status_page(request: Request, token: str) -> Response:
        found = await opened(request, token)
        if isinstance(found, HTMLResponse):
            return found
        return await page(request, token, *found)

    @app.post("/t/{token}/reply", include_in_schema=False, response_class=HTMLResponse)
    async def reply(request: Request, token: str) -> Response:
        form = await read_form(request)
        found = await opened(request, token)
        if isinstance(found, HTMLResponse):
            return found
        link, ticket = found
        lang = language(request, link)
        if form is None or not csrf.valid(request, token, form.get(FIELD)):
            return pages.error(request, lang=lang, status=403, kind="forbidden")
        if form.get("ticket_id") != link.ticket_id:
            return pages.error(request, lang=lang, status=403, kind="not_found")
        body = (form.get("message") or "").strip()
        if not body or len(body) > MAX_TEXT:
            key = "empty" if not body else "too_long"
            return await page(request, token, link, ticket, status=422, problem=key, draft=body)
        command = AddMessage(author=Author.requester, body=body)
        service: TicketService = parts["service"]
        # Each rendered form carries its own id: a double click or a resent form adds one
        # reply; the same form sent again with other words (back, edit, send) is a new one.
        request_id = form.get("request_id") or ""
        once = None
        if _REQUEST_ID.fullmatch(request_id):
            once = f"page:{request_id}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"
        try:
            changed = await service.change(
                link.ticket_id, command, correlation_id=new_id(), idempotency_key=once
            )
        except TicketClosed:
            return await page(request, token, link, ticket, status=409, problem="closed")
        except ConcurrentChange:
            return await page(request, token, link, ticket, status=409, problem="busy", draft=body)
        except TicketNotFound:
            return pages.error(request, lang=lang, status=404, kind="not_found")
        except TicketLimitExceeded as exc:
            status = 413 if isinstance(exc, TicketTooLarge) else 409
            return await page(request, token, link, ticket, status=status, problem="full")
        query = {"sent": "1"}
        message = changed.message
        if message is not None and message.secret_redacted:
            query["redacted"] = "1"
        if request.query_params.get("lang") in LANGUAGES:
            query["lang"] = request.query_params["lang"]
        await audited(request, link)
        return RedirectResponse(f"/t/{token}?{urlencode(query)}", status_code=303)

    @app.post("/t/{token}/solved", include_in_schema=False, response_class=HTMLResponse)
    async def solved_by_article(request: Request, token: str) -> Response:
        """ "This solved my problem": the link's ticket only, with a valid form and an
        article of the index; solved once (a closed or solved ticket refuses)."""
        started = time.perf_counter()
        refused = parts["self_service"].self_service_refused
        try:
            form = await read_form(request)
            found = await opened(request, token)
            if isinstance(found, HTMLResponse):
                refused.labels("solve", "not_found").inc()
                return found
            link, ticket = found
            lang = language(request, link)
            if form is None or not csrf.valid(request, token, form.get(FIELD)):
                refused.labels("solve", "csrf").inc()
                return pages.error(request, lang=lang, status=403, kind="forbidden")
            if form.get("ticket_id") != link.ticket_id:
                refused.labels("solve", "foreign_ticket").inc()
                return pages.error(request, lang=lang, status=403, kind="not_found")
            article_id = form.get("article_id") or ""
            if parts["answers"].get(article_id) is None:
                refused.labels("solve", "unknown_article").inc()
                return await page(
                    request, token, link, ticket, status=422, problem="unknown_article"
                )
            request_id = form.get("request_id") or ""
            once = (
                f"page:{request_id}:solve:{article_id}"
                if _REQUEST_ID.fullmatch(request_id)
                else None
            )
            service: TicketService = parts["service"]
            try:
                changed = await service.change(
                    link.ticket_id,
                    SolveByArticle(article_id=article_id),
                    correlation_id=new_id(),
                    idempotency_key=once,
                )
            except (TicketClosed, AlreadySolved, ConcurrentChange, UnknownArticle) as exc:
                reason = {TicketClosed: "closed", AlreadySolved: "already_solved"}.get(
                    type(exc), "busy" if isinstance(exc, ConcurrentChange) else "unknown_article"
                )
                refused.labels("solve", reason).inc()
                status = 422 if reason == "unknown_article" else 409
                return await page(request, token, link, ticket, status=status, problem=reason)
            except TicketNotFound:
                refused.labels("solve", "not_found").inc()
                return pages.error(request, lang=lang, status=404, kind="not_found")
            if not changed.replayed:
                parts["self_service"].count_deflection(changed.ticket)
            query = {"solved": "1"}
            if request.query_params.get("lang") in LANGUAGES:
                query["lang"] = request.query_params["lang"]
            await audited(request, link)
            return RedirectResponse(f"/t/{token}?{urlencode(query)}", status_code=303)
        finally:
            parts["self_service"].self_service_seconds.labels("solve").observe(
                time.perf_counter() - started
            )
