"""HTTP routes for incidents: declare, read, post an update, resolve, link by hand.

The same commands as on `helpstream.commands`, with the same scopes (`required_scope`).
Each action is in the audit trail under its API key and route (the app's audit middleware
writes it from `request.state`), and so is each ticket it changes (the service writes those).
(Annotations are evaluated here, not postponed: FastAPI reads the dependency types the
installer builds.)
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Request
from pydantic import BaseModel, Field

from services.intake.audit import Acting, route_of
from services.intake.auth import ApiKey, Scope, required_scope
from services.intake.incident_service import IncidentService, incident_id_for
from services.intake.incidents import Incident
from services.intake.metrics import IntakeMetrics
from shared.commands import DeclareIncident, LinkTicket, ResolveIncident, UpdateIncident
from shared.events import IncidentScope, IncidentText
from shared.http import ProblemError
from shared.ids import new_id, stable_id

IncidentPath = Annotated[str, Path(min_length=1, max_length=64, description="The incident id.")]
Correlation = Annotated[str | None, Header(max_length=128, alias="X-Correlation-Id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="The same key (from the same API key) declares or posts once.",
    ),
]


class IncidentUpdateView(BaseModel):
    id: str
    text: IncidentText
    posted_at: datetime


class IncidentView(BaseModel):
    id: str
    status: Literal["open", "resolved"]
    title: IncidentText
    scope: IncidentScope
    status_text: IncidentText
    updates: list[IncidentUpdateView]
    resolution: IncidentText | None = None
    ticket_outcome: Literal["solved", "pending"]
    declared_at: datetime
    declared_by: str
    resolved_at: datetime | None = None
    linked: int = Field(description="Tickets linked now.")

    @classmethod
    def of(cls, incident: Incident, linked: int) -> "IncidentView":
        return cls(
            id=incident.id,
            status=incident.status.value,
            title=incident.title,
            scope=incident.scope,
            status_text=incident.status_text,
            updates=[
                IncidentUpdateView(id=u.id, text=u.text, posted_at=u.posted_at)
                for u in incident.updates
            ],
            resolution=incident.resolution,
            ticket_outcome=incident.ticket_outcome,
            declared_at=incident.declared_at,
            declared_by=incident.declared_by,
            resolved_at=incident.resolved_at,
            linked=linked,
        )


class Posted(BaseModel):
    incident: IncidentView
    tickets: int = Field(description="Linked tickets the update or resolution was given to.")


def install_incident_routes(
    app: FastAPI, parts: dict[str, Any], caller: Any, metrics: IntakeMetrics
) -> None:
    """`caller` is the app's API key dependency; `parts["incidents"]` the service."""
    Caller = Annotated[ApiKey, Depends(caller)]

    def service() -> IncidentService:
        return parts["incidents"]  # type: ignore[no-any-return]

    def need(key: ApiKey, scope: Scope) -> None:
        if scope not in key.scopes:
            metrics.auth_refused.labels("forbidden").inc()
            raise ProblemError(403, "Forbidden", f"This API key lacks the {scope.value} scope.")

    async def view(incident: Incident) -> IncidentView:
        return IncidentView.of(incident, await parts["incident_store"].linked_count(incident.id))

    def acting(request: Request, key: ApiKey, incident_id: str | None) -> Acting:
        """Who the action and the tickets it changes are filed under; the action's own entry
        names `incident_id` (the middleware writes it once the answer is made)."""
        request.state.audit_incident = incident_id
        return Acting(f"key:{key.id}", route_of(request), "http")

    @app.post("/v1/incidents", status_code=201, response_model=IncidentView, tags=["incidents"])
    async def declare_incident(
        request: Request,
        body: DeclareIncident,
        key: Caller,
        correlation: Correlation = None,
        idempotency_key: IdempotencyKey = None,
    ) -> IncidentView:
        """Links every open ticket the scope matches now, and every new one while it is open."""
        need(key, required_scope(body))
        seed = f"http:{key.id}:{idempotency_key}" if idempotency_key else new_id()
        incident_id = incident_id_for(seed)
        incident = await service().declare(
            body,
            incident_id=incident_id,
            by=key.id,
            correlation_id=correlation or new_id(),
            acting=acting(request, key, incident_id),
        )
        return await view(incident)

    @app.get("/v1/incidents/{incident_id}", response_model=IncidentView, tags=["incidents"])
    async def get_incident(incident_id: IncidentPath, key: Caller) -> IncidentView:
        need(key, Scope.read)
        return await view(await service().get(incident_id))

    @app.post(
        "/v1/incidents/{incident_id}/updates",
        status_code=201,
        response_model=Posted,
        tags=["incidents"],
    )
    async def post_incident_update(
        request: Request,
        incident_id: IncidentPath,
        body: UpdateIncident,
        key: Caller,
        correlation: Correlation = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Posted:
        """Every linked requester hears it once, in their language, on their channels."""
        need(key, required_scope(body))
        seed = f"http:{key.id}:{idempotency_key}" if idempotency_key else new_id()
        incident, told = await service().post_update(
            incident_id,
            body,
            update_id=stable_id("incident-update", seed),
            correlation_id=correlation or new_id(),
            acting=acting(request, key, incident_id),
        )
        return Posted(incident=await view(incident), tickets=told)

    @app.post("/v1/incidents/{incident_id}/resolve", response_model=Posted, tags=["incidents"])
    async def resolve_incident(
        request: Request,
        incident_id: IncidentPath,
        body: ResolveIncident,
        key: Caller,
        correlation: Correlation = None,
    ) -> Posted:
        """Each linked ticket gets the resolution as a public message and becomes solved (or
        pending); resolving again changes nothing."""
        need(key, required_scope(body))
        incident, solved = await service().resolve(
            incident_id,
            body,
            correlation_id=correlation or new_id(),
            acting=acting(request, key, incident_id),
        )
        return Posted(incident=await view(incident), tickets=solved)

    @app.post(
        "/v1/incidents/{incident_id}/tickets", response_model=IncidentView, tags=["incidents"]
    )
    async def link_ticket(
        request: Request,
        incident_id: IncidentPath,
        body: LinkTicket,
        key: Caller,
        correlation: Correlation = None,
    ) -> IncidentView:
        """An agent links a ticket by hand (`unlink: true` takes it out)."""
        need(key, required_scope(body))
        ticket = await service().link(incident_id, body, correlation_id=correlation or new_id())
        # the action's entry names the ticket linked or unlinked: it is in its trail
        request.state.audit_incident, request.state.audit_ticket = incident_id, ticket.id
        return await view(await service().get(incident_id))
