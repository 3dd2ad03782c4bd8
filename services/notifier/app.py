"""notifier wiring: one consumer of ticket, SLA and feedback events, the outbox relay of
delivery outcomes, the digest flusher, and the inbox and preferences API."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from services.notifier.config import load_rules
from services.notifier.domain import MANDATORY, Category, Preferences, RuleSet, unmutable
from services.notifier.handlers import Notifications
from services.notifier.inbox import InboxHub, item_view, resume_point, stream
from services.notifier.mail import SmtpSender
from services.notifier.metrics import notifier_metrics
from services.notifier.pages import install_pages
from services.notifier.ports import NotifierRepository
from services.notifier.privacy import NotifierEraser
from services.notifier.settings import NotifierSettings
from services.notifier.store import NotifierStore
from services.notifier.templates import Templates
from services.notifier.webhook import WebhookSender
from shared.errors import ConfigError
from shared.events import NotificationRequesterErased
from shared.http import ProblemError
from shared.privacy import COLLECTION, confirm_erasures, with_erasures
from shared.privacy_export import install_export_route
from shared.runtime import ServiceRuntime, service_app
from shared.tasks import LoopWorker
from shared.tokens import TokenError, verify
from shared.web.ratelimit import (
    SlotStreamingResponse,
    StreamCaps,
    install_rate_limits,
    limit_metrics_of,
    page_limits,
)

SERVICE = "notifier"
ChannelName = Literal["email", "webhook", "inbox"]


class InboxItem(BaseModel):
    id: str
    ticket_id: str
    template: str
    title: str
    body: str
    created_at: str
    read_at: str | None


class InboxPage(BaseModel):
    items: list[InboxItem]


class PreferencesBody(BaseModel):
    opt_out: dict[ChannelName, list[Category]] = Field(
        default_factory=dict,
        description="Channel → categories muted. `security` and `breach` cannot be muted.",
        examples=[{"email": ["surveys", "progress"], "webhook": ["replies"]}],
    )


class PreferencesView(PreferencesBody):
    requester_id: str
    mandatory: list[Category] = Field(description="Categories that are always delivered.")


async def requester(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    token: Annotated[str | None, Query(max_length=2000)] = None,
) -> str:
    """The requester id of a signed inbox token (header, or `?token=` for EventSource)."""
    cfg: NotifierSettings = request.app.state.notifier_settings
    runtime: ServiceRuntime = request.app.state.runtime
    if cfg.inbox_secret is None:
        raise ProblemError(503, "Inbox disabled", "HELPSTREAM_INBOX_SECRET is not set.")
    raw = token
    if authorization and authorization.lower().startswith("bearer "):
        raw = authorization[7:].strip()
    if not raw:
        raise ProblemError(401, "Unauthenticated", "Send the inbox token as a Bearer token.")
    try:
        claims = verify(
            cfg.inbox_secret.get_secret_value().encode(), "inbox", raw, runtime.clock.now()
        )
    except TokenError as exc:
        raise ProblemError(401, "Unauthenticated", f"Inbox token {exc.reason}.") from exc
    requester_id = claims.get("requester_id")
    if not isinstance(requester_id, str) or not requester_id:
        raise ProblemError(401, "Unauthenticated", "Inbox token names no requester.")
    return requester_id


RequesterId = Annotated[str, Depends(requester)]


def check_config(cfg: NotifierSettings) -> tuple[RuleSet, Templates]:
    """Rules, templates and webhook secret are checked before anything starts."""
    rules = load_rules(cfg.rules_file)
    templates = Templates(cfg.templates_dir)
    templates.validate(rules)
    wants_webhook = cfg.webhook_url is not None or any(
        c.webhook for c in (rules.leads, *rules.groups.values())
    )
    if wants_webhook and cfg.webhook_secret is None:
        raise ConfigError("a webhook is configured but HELPSTREAM_WEBHOOK_SECRET is not set")
    return rules, templates


def create_app(
    settings: NotifierSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    cfg = settings or NotifierSettings()
    runtime = runtime or ServiceRuntime(SERVICE, cfg)
    rules, templates = check_config(cfg)  # a bad rules file or template stops the start
    metrics = notifier_metrics(runtime.registry)
    hub = InboxHub()
    parts: dict[str, Any] = {}

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        store = NotifierStore(rt.db)
        await store.ensure_indexes()
        relay = await rt.add_outbox([store.deliveries, rt.db[COLLECTION]])
        client = httpx.AsyncClient(follow_redirects=False)
        webhook = (
            WebhookSender(
                client,
                cfg,
                now=time.time,
                on_retry=lambda: metrics.retries.labels("webhook").inc(),
            )
            if cfg.webhook_secret is not None
            else None
        )
        mail = SmtpSender(cfg)
        notifications = Notifications(
            store=store,
            rules=rules,
            templates=templates,
            mail=mail,
            webhook=webhook,
            hub=hub,
            settings=cfg,
            clock=rt.clock,
            metrics=metrics,
            topics=rt.topics,
            on_outbox=relay.wake,
        )
        eraser = NotifierEraser(rt.db)
        await eraser.ensure_indexes()
        rt.add_consumer(
            "events",
            with_erasures(
                notifications.on_events,
                confirm_erasures(
                    rt,
                    eraser,
                    NotificationRequesterErased,
                    rt.topics.notifications,
                    relay.wake,
                ),
            ),
        )
        app.state.notifications = notifications

        async def closing() -> None:
            await client.aclose()
            await mail.close()  # connections still in use are closed when they come back

        rt.workers.append(LoopWorker("digest-flusher", notifications.run_flusher, closing))
        parts.update(store=store, client=client, notifications=notifications, eraser=eraser)

    app = service_app(
        runtime,
        title="helpstream notifier",
        description="Tells requesters and agents about progress: email, signed webhooks and an "
        "in-app inbox. Inbox and preferences take a requester token (`Authorization: Bearer`).",
        setup=setup,
    )
    app.state.notifier_metrics = metrics
    app.state.notifier_settings = cfg
    streams = StreamCaps(
        "/v1/inbox/stream",
        per_key=cfg.inbox_streams_per_requester,
        total=cfg.inbox_streams_total,
        metrics=limit_metrics_of(app),
    )
    app.state.inbox_streams = streams

    def store() -> NotifierRepository:
        repository: NotifierRepository = parts["store"]
        return repository

    def same(caller: str, requester_id: str) -> None:
        if caller != requester_id:
            raise ProblemError(403, "Forbidden", "This token belongs to another requester.")

    @app.get("/v1/inbox", response_model=InboxPage, tags=["inbox"], summary="Inbox, newest first")
    async def inbox(
        caller: RequesterId,
        unread_only: bool = False,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
    ) -> InboxPage:
        items = await store().inbox_page(caller, unread_only=unread_only, limit=limit)
        return InboxPage(items=[InboxItem(**item_view(i)) for i in items])

    @app.post("/v1/inbox/{item_id}/read", response_model=InboxItem, tags=["inbox"])
    async def mark_read(item_id: str, caller: RequesterId) -> InboxItem:
        """Mark one item read; the first read time is kept."""
        item = await store().mark_read(caller, item_id, runtime.clock.now())
        if item is None:
            raise ProblemError(404, "Not Found", f"no inbox item {item_id!r}")
        return InboxItem(**item_view(item))

    @app.get(
        "/v1/inbox/stream",
        tags=["inbox"],
        summary="Server-Sent Events: new inbox items (event `inbox.item`)",
        response_class=StreamingResponse,
        responses={429: {"description": "Too many streams open for this inbox, or in all"}},
    )
    async def inbox_stream(
        request: Request,
        caller: RequesterId,
        since: Annotated[datetime | None, Query()] = None,
        last_event_id: Annotated[str | None, Header(max_length=200)] = None,
    ) -> StreamingResponse:
        """Items from `since` (at most a day back; no offset means UTC), or after the
        `Last-Event-ID` item a reconnecting browser names; from now without either. Dedupe
        by the event id."""
        release = streams.open(caller)  # 429 past the per-requester or total cap
        try:
            start = await resume_point(
                store(), runtime.clock, caller, since=since, last_event_id=last_event_id
            )
        except BaseException:
            release()
            raise
        return SlotStreamingResponse(
            stream(
                store(),
                hub,
                caller,
                start,
                poll_s=cfg.inbox_poll_s,
                keepalive_s=cfg.inbox_keepalive_s,
                disconnected=request.is_disconnected,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            release=release,
        )

    @app.get("/v1/preferences/{requester_id}", response_model=PreferencesView, tags=["preferences"])
    async def get_preferences(requester_id: str, caller: RequesterId) -> PreferencesView:
        same(caller, requester_id)
        prefs = await store().get_preferences(requester_id)
        return PreferencesView(
            requester_id=requester_id,
            opt_out={ch: sorted(cats) for ch, cats in prefs.opt_out.items()},
            mandatory=sorted(MANDATORY),
        )

    @app.put("/v1/preferences/{requester_id}", response_model=PreferencesView, tags=["preferences"])
    async def put_preferences(
        requester_id: str, body: PreferencesBody, caller: RequesterId
    ) -> PreferencesView:
        """Replace the opt-outs. Muting `security` or `breach` is refused with 422."""
        same(caller, requester_id)
        refused = unmutable(body.opt_out)
        if refused:
            raise ProblemError(
                422,
                "Cannot mute",
                "Security notices and breach alerts are always delivered.",
                refused=refused,
            )
        opt_out: dict[str, frozenset[Category]] = {
            ch: frozenset(cats) for ch, cats in body.opt_out.items()
        }
        await store().put_preferences(requester_id, Preferences(opt_out), runtime.clock.now())
        return await get_preferences(requester_id, caller)

    install_pages(app, cfg, runtime, parts)
    install_export_route(app, cfg.privacy_api_key, lambda rid: parts["eraser"].export(rid))
    install_rate_limits(
        app,
        page_limits(
            cfg,
            "GET /inbox",
            "POST /inbox/{item_id}/read",
            "GET /v1/inbox",
            "POST /v1/inbox/{item_id}/read",
            "GET /v1/inbox/stream",
            "GET /v1/preferences/{requester_id}",
            "PUT /v1/preferences/{requester_id}",
        ),
    )
    return app
