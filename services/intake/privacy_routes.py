"""HTTP routes for requester data: erasure (start, progress) and legal holds.

All need the `privacy:admin` scope. (Annotations are evaluated here, not postponed:
FastAPI reads the dependency types the installer builds.)
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, Header, Path, Query, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from services.intake.audit import MAX_PAGE, AuditTrail
from services.intake.auth import ApiKey, Scope
from services.intake.metrics import IntakeMetrics
from services.intake.privacy import CONFIRMING, SERVICE, Erasure, LegalHold, PrivacyService
from services.intake.settings import IntakeSettings
from shared.http import ProblemError
from shared.ids import new_id
from shared.privacy_export import exported, fetch_export

RequesterPath = Annotated[
    str, Path(min_length=1, max_length=128, description="The requester's id.", examples=["u-1"])
]
Correlation = Annotated[str | None, Header(max_length=128, alias="X-Correlation-Id")]


class ServiceProgress(BaseModel):
    service: str
    confirmed: bool
    at: datetime | None = None
    counts: dict[str, int] = Field(
        default_factory=dict, description="Records erased or anonymized, by kind."
    )


class ErasureView(BaseModel):
    requester_id: str
    erasure_id: str
    status: Literal["in_progress", "completed"]
    requested_at: datetime
    requested_by: str = Field(description="The API key id that asked.")
    completed_at: datetime | None
    services: list[ServiceProgress]

    @classmethod
    def of(cls, erasure: Erasure) -> "ErasureView":
        services = []
        for name in (SERVICE, *CONFIRMING):
            seen = erasure.confirmations.get(name)
            services.append(
                ServiceProgress(service=name, confirmed=False)
                if seen is None
                else ServiceProgress(
                    service=name, confirmed=True, at=seen["at"], counts=seen["counts"]
                )
            )
        return cls(
            requester_id=erasure.requester_id,
            erasure_id=erasure.erasure_id,
            status="completed" if erasure.completed_at else "in_progress",
            requested_at=erasure.requested_at,
            requested_by=erasure.requested_by,
            completed_at=erasure.completed_at,
            services=services,
        )


class HoldRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["AML investigation 2026-117"])


class HoldView(BaseModel):
    requester_id: str
    reason: str
    placed_by: str
    placed_at: datetime


def install_privacy_routes(
    app: FastAPI, parts: dict[str, Any], caller: Any, metrics: IntakeMetrics, cfg: IntakeSettings
) -> None:
    """`caller` is the app's API key dependency; `parts["privacy"]` the service."""
    Caller = Annotated[ApiKey, Depends(caller)]

    def service() -> PrivacyService:
        return parts["privacy"]  # type: ignore[no-any-return]

    def need(key: ApiKey) -> None:
        if Scope.privacy not in key.scopes:
            metrics.auth_refused.labels("forbidden").inc()
            raise ProblemError(
                403, "Forbidden", f"This API key lacks the {Scope.privacy.value} scope."
            )

    @app.post(
        "/v1/requesters/{requester_id}/erasure",
        status_code=202,
        response_model=ErasureView,
        tags=["privacy"],
        responses={
            200: {"description": "An erasure of this requester is under way: that one"},
            409: {"description": "The requester is under a legal hold"},
        },
    )
    async def request_erasure(
        requester_id: RequesterPath,
        key: Caller,
        response: Response,
        correlation: Correlation = None,
    ) -> ErasureView:
        """Intake anonymizes its tickets at once; every other service erases its copy and
        confirms. `GET` shows who confirmed; `status` is `completed` once all did."""
        need(key)
        before = await service().get(requester_id)
        try:
            erasure = await service().request(requester_id, key.id, correlation or new_id())
        except LegalHold as exc:
            raise ProblemError(
                409,
                "Legal hold",
                f"Requester {requester_id} is under a legal hold ({exc.reason}); their data "
                "cannot be erased until the hold is lifted.",
                code="legal_hold",
            ) from exc
        if before is not None and before.erasure_id == erasure.erasure_id:
            response.status_code = 200
        return ErasureView.of(erasure)

    @app.get("/v1/requesters/{requester_id}/erasure", response_model=ErasureView, tags=["privacy"])
    async def erasure_progress(requester_id: RequesterPath, key: Caller) -> ErasureView:
        need(key)
        erasure = await service().get(requester_id)
        if erasure is None:
            raise ProblemError(
                404, "Not found", f"No erasure of requester {requester_id}.", code="no_erasure"
            )
        return ErasureView.of(erasure)

    @app.get("/v1/audit", tags=["privacy"], summary="Who read or changed a ticket, and when")
    async def audit_trail(
        key: Caller,
        ticket: Annotated[str | None, Query(max_length=64, description="A ticket id")] = None,
        api_key: Annotated[
            str | None, Query(alias="key", max_length=64, description="An API key id")
        ] = None,
        incident: Annotated[str | None, Query(max_length=64, description="An incident id")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; one of `ticket`, `key` or `incident`. Needs the `admin` scope."""
        if Scope.admin not in key.scopes:
            metrics.auth_refused.labels("forbidden").inc()
            raise ProblemError(403, "Forbidden", "This API key lacks the admin scope.")
        if [ticket, api_key, incident].count(None) != 2:
            raise ProblemError(
                422, "Bad query", "Give exactly one of `ticket`, `key` or `incident`."
            )
        trail: AuditTrail = parts["audit"]
        actor = f"key:{api_key}" if api_key is not None else None
        found = await trail.query(ticket=ticket, actor=actor, incident=incident, limit=limit)
        return jsonable_encoder(found)  # type: ignore[no-any-return]

    @app.get("/v1/requesters/{requester_id}/export", tags=["privacy"])
    async def export_requester(requester_id: RequesterPath, key: Caller) -> dict[str, Any]:
        """Everything held about the requester, from every service that keeps requester
        data, as one document (intake asks feedback and notifier with the privacy API key;
        503 if one does not answer). sla_monitor and the mail gateway keep none by requester."""
        need(key)
        own = await service().export(requester_id)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                others = {
                    name: await fetch_export(client, name, url, cfg.privacy_api_key, requester_id)
                    for name, url in (
                        ("feedback", cfg.feedback_url),
                        ("notifier", cfg.notifier_url),
                    )
                }
        except ProblemError:
            service().metrics.exports.labels("failed").inc()
            raise
        service().metrics.exports.labels("exported").inc()
        return {
            "requester_id": requester_id,
            "intake": jsonable_encoder({k: [exported(d) for d in v] for k, v in own.items()}),
            **others,
        }

    @app.put("/v1/requesters/{requester_id}/legal-hold", response_model=HoldView, tags=["privacy"])
    async def place_legal_hold(
        requester_id: RequesterPath, body: HoldRequest, key: Caller
    ) -> HoldView:
        """While held, erasure is refused (409). Placing it again replaces the reason."""
        need(key)
        hold = await service().place_hold(requester_id, body.reason, key.id)
        return HoldView(**hold.__dict__)

    @app.get("/v1/requesters/{requester_id}/legal-hold", response_model=HoldView, tags=["privacy"])
    async def get_legal_hold(requester_id: RequesterPath, key: Caller) -> HoldView:
        need(key)
        hold = await service().hold(requester_id)
        if hold is None:
            raise ProblemError(
                404, "Not found", f"No legal hold on {requester_id}.", code="no_hold"
            )
        return HoldView(**hold.__dict__)

    @app.delete("/v1/requesters/{requester_id}/legal-hold", status_code=204, tags=["privacy"])
    async def lift_legal_hold(requester_id: RequesterPath, key: Caller) -> Response:
        need(key)
        if not await service().lift_hold(requester_id):
            raise ProblemError(
                404, "Not found", f"No legal hold on {requester_id}.", code="no_hold"
            )
        return Response(status_code=204)
