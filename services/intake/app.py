"""intake wiring: HTTP routes, command and escalation consumers, the outbox relay."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from aiokafka.structs import ConsumerRecord
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from pydantic import BaseModel, Field

from services.intake.audit import AuditTrail, install_audit
from services.intake.auth import (
    ALL_SCOPES,
    MAX_OVERLAP,
    ApiKey,
    ApiKeyStore,
    KeyRevoked,
    Scope,
    required_scope,
)
from services.intake.backlog import BacklogGauge
from services.intake.domain import (
    AlreadySolved,
    DomainError,
    EscalationLimit,
    IllegalTransition,
    Ticket,
    TicketClosed,
    TicketLimits,
    TicketMessageLimit,
    TicketTooLarge,
)
from services.intake.faq import load_index
from services.intake.handlers import (
    Changed,
    ConcurrentChange,
    FollowUpNotFound,
    IdempotencyMismatch,
    TicketNotFound,
    TicketService,
    UnknownArticle,
)
from services.intake.help_pages import ARTICLE_ROUTE, install_help_pages
from services.intake.incident_routes import install_incident_routes
from services.intake.incident_service import IncidentRefresher, IncidentService
from services.intake.incident_store import IncidentStore
from services.intake.incidents import IncidentNotFound
from services.intake.metrics import intake_metrics, self_service_metrics
from services.intake.pages import TEMPLATES as PAGE_TEMPLATES
from services.intake.pages import install_pages
from services.intake.privacy import PrivacyService
from services.intake.privacy_routes import install_privacy_routes
from services.intake.retention import RUNS, Retention
from services.intake.settings import IntakeSettings
from services.intake.store import GroupedOpens, TicketStore
from services.intake.triage import load_rules
from services.intake.views import MessageView, TicketPage, TicketView
from shared.commands import AddMessage, Command, EscalateTicket, OpenTicket, UpdateTicket
from shared.events import Status
from shared.http import ProblemError, problem
from shared.ids import new_id
from shared.kafka import Rejected, decode_events
from shared.metrics import privacy_metrics
from shared.privacy import with_erasures
from shared.runtime import ServiceRuntime, service_app
from shared.web.ratelimit import install_rate_limits, page_limits, write_limits

SERVICE = "intake"
log = structlog.get_logger(__name__)
STATUS_OF: dict[type[DomainError], int] = {
    TicketNotFound: 404,
    IllegalTransition: 409,
    TicketClosed: 409,
    EscalationLimit: 409,
    ConcurrentChange: 409,
    IdempotencyMismatch: 422,
    FollowUpNotFound: 422,
    TicketMessageLimit: 409,
    TicketTooLarge: 413,
    AlreadySolved: 409,
    UnknownArticle: 422,
    IncidentNotFound: 404,
}


async def caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    """The API key of the request: `Authorization: Bearer <key>` or `X-API-Key`."""
    secret = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    keys: ApiKeyStore = request.app.state.api_keys
    key = await keys.verify(secret) if secret else None
    if key is None:
        request.app.state.intake_metrics.auth_refused.labels("unauthenticated").inc()
        raise ProblemError(
            401,
            "Unauthenticated",
            "Send a valid API key as `Authorization: Bearer <key>` or `X-API-Key`.",
        )
    request.state.api_key_id = key.id  # for the audit trail
    return key


Caller = Annotated[ApiKey, Depends(caller)]
Correlation = Annotated[str | None, Header(max_length=128, alias="X-Correlation-Id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Makes the request safe to retry: the same key (with the same body) "
        "returns the first result and changes nothing; with another body, 422.",
    ),
]
TicketPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The ticket's id, or its number as people say it: `482913` or `#482913` "
        "(URL-encoded `%23482913`).",
        examples=["482913"],
    ),
]
REPLAYED = "Idempotent-Replayed"


class NewApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["withdrawal-service"])
    scopes: list[Scope] = Field(min_length=1, examples=[["tickets:write", "tickets:read"]])


class IssuedApiKey(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    key: str = Field(description="Shown once; only its hash is stored.")
    previous_valid_until: datetime | None = Field(
        None, description="Rotation: when the previous secret of this key stops working."
    )


class Rotation(BaseModel):
    overlap_seconds: int = Field(
        3600,
        ge=0,
        le=int(MAX_OVERLAP.total_seconds()),
        description="How long the previous secret keeps working (0: stops at once).",
    )


KeyId = Annotated[str, Path(max_length=64, examples=["3f9a1c7e2b4d"])]


class MessageAdded(BaseModel):
    message: MessageView
    ticket: TicketView


def create_app(
    settings: IntakeSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    cfg = settings or IntakeSettings()
    runtime = runtime or ServiceRuntime(SERVICE, cfg)
    metrics = intake_metrics(runtime.registry)
    rules = load_rules(cfg.triage_rules)  # a bad rules file stops the start, not a request
    answers = load_index(cfg.help_articles)  # so does a bad help article
    parts: dict[str, Any] = {
        "answers": answers,
        "self_service": self_service_metrics(runtime.registry),
    }

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        store = TicketStore(rt.db)
        await store.ensure_indexes()
        rt.workers.append(BacklogGauge(store.tickets, metrics.open_tickets, interval_s=60))
        relay = await rt.add_outbox(
            [store.tickets, rt.db["incidents"], rt.db["erasures"], rt.db[RUNS]]
        )
        keys = ApiKeyStore(rt.db, metrics, rt.clock)
        if cfg.bootstrap_api_key is not None:
            try:
                await keys.create(
                    "bootstrap",
                    ALL_SCOPES,
                    rt.clock.now(),
                    cfg.bootstrap_api_key.get_secret_value(),
                )
            except KeyRevoked:
                log.warning("bootstrap API key revoked; it stays revoked (remove it from config)")
        if cfg.mail_gateway_api_key is not None:
            try:
                await keys.create(
                    "mail gateway",
                    frozenset({Scope.write}),
                    rt.clock.now(),
                    cfg.mail_gateway_api_key.get_secret_value(),
                )
            except KeyRevoked:
                log.warning("mail gateway API key revoked; it stays revoked (rotate it)")
        group_commit_s = cfg.http_group_commit_ms / 1000
        audit = AuditTrail(
            rt.db,
            rt.clock,
            timedelta(days=cfg.audit_retention_days),
            store.resolve,
            metrics,
            group_commit_s=group_commit_s,
            on_group=metrics.group_flushed("audit"),
        )
        await audit.ensure_indexes()
        incident_store = IncidentStore(rt.db)
        await incident_store.ensure_indexes()
        incidents = IncidentService(
            store=incident_store,
            tickets=store,
            clock=rt.clock,
            topics=rt.topics,
            metrics=metrics,
            resolve_ticket=lambda reference: parts["service"].resolve(reference),
            on_events=relay.wake,
            audit=audit,
        )
        refresher = IncidentRefresher(incidents, incident_store, rt.clock)
        await refresher.refresh()  # no ticket opens before the open incidents are known
        rt.workers.append(refresher)
        service = TicketService(
            opener=rt.opener,
            audit=audit,
            incidents=incidents,
            store=store,
            clock=rt.clock,
            topics=rt.topics,
            rules=rules,
            metrics=metrics,
            keys=keys,
            on_events=relay.wake,
            replay_window_s=cfg.command_replay_window_s,
            answers=answers,
            limits=TicketLimits(cfg.max_messages_per_ticket, cfg.max_ticket_text_bytes),
            on_deflected=parts["self_service"].count_deflection,
            grouped=(
                GroupedOpens(store, window_s=group_commit_s, observe=metrics.group_flushed)
                if group_commit_s > 0
                else None
            ),
        )
        rt.add_consumer("commands", service.on_commands)
        rt.add_consumer(
            "escalations",  # sla_monitor's and feedback's erasure confirmations come too
            with_erasures(
                service.on_escalation_causes,
                lambda events: parts["privacy"].on_confirmations(events),
            ),
        )
        privacy = PrivacyService(
            rt.db,
            clock=rt.clock,
            topics=rt.topics,
            metrics=privacy_metrics(rt.registry, SERVICE),
            keyring=rt.keyring,
            on_events=relay.wake,
        )
        await privacy.ensure_indexes()
        retention = Retention(
            rt.db,
            clock=rt.clock,
            topics=rt.topics,
            metrics=privacy.metrics,
            keep=timedelta(days=cfg.closed_ticket_retention_days),
            interval_s=cfg.retention_interval_s,
            on_events=relay.wake,
        )
        await retention.ensure_indexes()
        rt.workers.append(retention)
        rt.add_consumer(
            "erasures",  # notifier's, mail_gateway's confirmations
            with_erasures(_poison_only, privacy.on_confirmations),
        )
        parts.update(
            audit=audit,
            privacy=privacy,
            store=store,
            keys=keys,
            service=service,
            incidents=incidents,
            incident_store=incident_store,
        )
        app.state.api_keys = keys
        app.state.intake = parts  # its parts, by name, for operators' tools and tests

    app = service_app(
        runtime,
        title="helpstream intake",
        description="Tickets in (HTTP and helpstream.commands); ticket events out on "
        "helpstream.tickets. Authenticate with `Authorization: Bearer <API key>`.",
        setup=setup,
    )

    async def on_domain_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        status = STATUS_OF.get(type(exc), 409)
        return problem(status, type(exc).__name__, str(exc), code=exc.code)

    app.add_exception_handler(DomainError, on_domain_error)
    app.state.intake_metrics = metrics

    def service() -> TicketService:
        return parts["service"]  # type: ignore[no-any-return]

    def store() -> TicketStore:
        return parts["store"]  # type: ignore[no-any-return]

    def keyed(key: ApiKey, idempotency_key: str | None) -> str | None:
        """Idempotency-Keys are the caller's own: two API keys never share one."""
        return f"http:{key.id}:{idempotency_key}" if idempotency_key else None

    async def view(ticket: Ticket, key: ApiKey, *, created: bool = False) -> TicketView:
        """`created`: the ticket was written just now under a fresh id, so no ticket can
        follow it up yet; its answer skips the lookup (a read per open, on the hot path)."""
        follow_ups = {} if created else await store().follow_ups([ticket.id])
        return TicketView.of(
            ticket, internal=Scope.agent in key.scopes, follow_ups=follow_ups.get(ticket.id, [])
        )

    async def change(
        ticket_id: str,
        body: Command,
        key: ApiKey,
        response: Response,
        correlation: str | None,
        idempotency_key: str | None,
    ) -> Changed:
        """One ticket change over HTTP: the command's scope, then the use case; a replayed
        Idempotency-Key is marked on the answer."""
        need(key, required_scope(body))
        changed = await service().change(
            ticket_id,
            body,
            correlation_id=correlation or new_id(),
            idempotency_key=keyed(key, idempotency_key),
        )
        if changed.replayed:
            response.headers[REPLAYED] = "true"
        return changed

    def need(key: ApiKey, scope: Scope) -> None:
        if scope not in key.scopes:
            metrics.auth_refused.labels("forbidden").inc()
            raise ProblemError(403, "Forbidden", f"This API key lacks the {scope.value} scope.")

    @app.post(
        "/v1/tickets",
        status_code=201,
        response_model=TicketView,
        tags=["tickets"],
        summary="Open a ticket",
        responses={200: {"description": "Same Idempotency-Key as before: the first ticket"}},
    )
    async def open_ticket(
        body: OpenTicket,
        response: Response,
        key: Caller,
        correlation: Correlation = None,
        idempotency_key: IdempotencyKey = None,
    ) -> TicketView:
        """`follow_up_of` (id or number) links the new ticket to an earlier ticket of the
        same requester, e.g. when they answer a closed one; anything else gets 422."""
        need(key, required_scope(body))
        opened = await service().open(
            body,
            correlation_id=correlation or new_id(),
            open_key=keyed(key, idempotency_key),
        )
        response.status_code = 201 if opened.created else 200
        response.headers["Location"] = f"/v1/tickets/{opened.ticket.id}"
        return await view(opened.ticket, key, created=opened.created)

    @app.get("/v1/tickets/{ticket_id}", response_model=TicketView, tags=["tickets"])
    async def get_ticket(ticket_id: TicketPath, key: Caller) -> TicketView:
        need(key, Scope.read)
        return await view(await service().get(ticket_id), key)

    @app.get("/v1/tickets", response_model=TicketPage, tags=["tickets"])
    async def list_tickets(
        request: Request,
        key: Caller,
        requester_id: Annotated[str | None, Query(max_length=128)] = None,
        status: Status | None = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> TicketPage:
        """Newest first. Pass `next_cursor` back as `cursor` for the next page."""
        need(key, Scope.read)
        tickets = await store().list(
            requester_id=requester_id, status=status, before=_decode(cursor), limit=limit
        )
        last = tickets[-1].id if len(tickets) == limit else None
        request.state.audit_tickets = [t.id for t in tickets]  # who saw which ticket
        follow_ups = await store().follow_ups([t.id for t in tickets])
        internal = Scope.agent in key.scopes
        return TicketPage(
            items=[
                TicketView.of(t, internal=internal, follow_ups=follow_ups.get(t.id, []))
                for t in tickets
            ],
            next_cursor=base64.urlsafe_b64encode(last.encode()).decode() if last else None,
        )

    @app.post(
        "/v1/tickets/{ticket_id}/messages",
        status_code=201,
        response_model=MessageAdded,
        tags=["tickets"],
        summary="Add a reply or an internal note",
    )
    async def add_message(
        ticket_id: TicketPath,
        body: AddMessage,
        key: Caller,
        response: Response,
        correlation: Correlation = None,
        idempotency_key: IdempotencyKey = None,
    ) -> MessageAdded:
        """A retry with the same Idempotency-Key answers 201 with the same message (and the
        ticket as it is now) and adds nothing. `verified: false` (a requester message whose
        sender could not be verified) is held as an internal note flagged `unverified`."""
        # Agent replies, internal notes and official system notices need the agent scope.
        changed = await change(ticket_id, body, key, response, correlation, idempotency_key)
        assert changed.message is not None
        return MessageAdded(
            message=MessageView.of(changed.message), ticket=await view(changed.ticket, key)
        )

    @app.patch("/v1/tickets/{ticket_id}", response_model=TicketView, tags=["tickets"])
    async def update_ticket(
        ticket_id: TicketPath,
        body: UpdateTicket,
        key: Caller,
        response: Response,
        correlation: Correlation = None,
        idempotency_key: IdempotencyKey = None,
    ) -> TicketView:
        """Change status, priority, assignee or group. Illegal status changes get 409."""
        changed = await change(ticket_id, body, key, response, correlation, idempotency_key)
        return await view(changed.ticket, key)

    @app.post("/v1/tickets/{ticket_id}/escalate", response_model=TicketView, tags=["tickets"])
    async def escalate(
        ticket_id: TicketPath,
        body: EscalateTicket,
        key: Caller,
        response: Response,
        correlation: Correlation = None,
        idempotency_key: IdempotencyKey = None,
    ) -> TicketView:
        """A requester asks for a manager, or an agent escalates: level 1 → 2 → 3."""
        changed = await change(ticket_id, body, key, response, correlation, idempotency_key)
        return await view(changed.ticket, key)

    @app.post("/v1/api-keys", status_code=201, response_model=IssuedApiKey, tags=["admin"])
    async def create_api_key(body: NewApiKey, key: Caller) -> IssuedApiKey:
        need(key, Scope.admin)
        issued = await parts["keys"].create(body.name, frozenset(body.scopes), runtime.clock.now())
        return IssuedApiKey(
            id=issued.key.id,
            name=issued.key.name,
            scopes=sorted(issued.key.scopes),
            key=issued.secret,
        )

    @app.delete("/v1/api-keys/{key_id}", status_code=204, tags=["admin"])
    async def revoke_api_key(key_id: KeyId, key: Caller) -> Response:
        """Every instance refuses the key (requests and commands) within a second."""
        need(key, Scope.admin)
        if not await parts["keys"].revoke(key_id):
            raise ProblemError(404, "Not found", f"No API key {key_id}.", code="api_key_not_found")
        return Response(status_code=204)

    @app.post("/v1/api-keys/{key_id}/rotate", response_model=IssuedApiKey, tags=["admin"])
    async def rotate_api_key(key_id: KeyId, body: Rotation, key: Caller) -> IssuedApiKey:
        """A new secret for the same key id (shown once); the old one works until
        `previous_valid_until`, so its holders can switch without an outage."""
        need(key, Scope.admin)
        try:
            issued = await parts["keys"].rotate(key_id, timedelta(seconds=body.overlap_seconds))
        except KeyRevoked as exc:
            raise ProblemError(
                409, "Revoked", f"API key {key_id} is revoked; create a new one.", code="revoked"
            ) from exc
        if issued is None:
            raise ProblemError(404, "Not found", f"No API key {key_id}.", code="api_key_not_found")
        return IssuedApiKey(
            id=issued.key.id,
            name=issued.key.name,
            scopes=sorted(issued.key.scopes),
            key=issued.secret,
            previous_valid_until=issued.previous_valid_until,
        )

    install_incident_routes(app, parts, caller, metrics)
    install_privacy_routes(app, parts, caller, metrics, cfg)
    install_audit(app, lambda: parts["audit"])
    install_pages(app, cfg, runtime, parts)
    install_help_pages(app, answers, parts["self_service"], PAGE_TEMPLATES)
    install_rate_limits(
        app,
        page_limits(
            cfg,
            "GET /t/{token}",
            "POST /t/{token}/reply",
            "POST /t/{token}/solved",
            f"GET {ARTICLE_ROUTE}",
        )
        + write_limits(
            cfg,
            "POST /v1/tickets",
            "POST /v1/tickets/{ticket_id}/messages",
            "PATCH /v1/tickets/{ticket_id}",
            "POST /v1/tickets/{ticket_id}/escalate",
            "POST /v1/incidents",
            "POST /v1/incidents/{incident_id}/updates",
            "POST /v1/incidents/{incident_id}/resolve",
            "POST /v1/incidents/{incident_id}/tickets",
            "POST /v1/requesters/{requester_id}/erasure",
        ),
    )
    return app


async def _poison_only(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[Rejected]:
    """The erasures consumer reads other services' topics for their confirmations only; like
    every consumer, it dead-letters what it cannot read."""
    return decode_events(records)[1]


def _decode(cursor: str | None) -> str | None:
    """A cursor is the base64url of the last ticket id of the previous page, nothing else."""
    if cursor is None:
        return None
    try:
        decoded = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
        uuid.UUID(decoded)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Bad cursor", "Pass `next_cursor` back unchanged.") from exc
    return decoded
