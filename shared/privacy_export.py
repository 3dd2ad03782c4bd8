"""Requester data export: the route each service holding requester data serves to intake,
and the client intake gathers them with (one shared bearer key, `privacy_api_key`).

(Annotations are evaluated here, not postponed: FastAPI reads the route's parameter types.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Header, Path
from fastapi.encoders import jsonable_encoder
from pydantic import SecretStr

from shared.http import ProblemError, require_bearer
from shared.mongo import Document

ROUTE = "/v1/requesters/{requester_id}/export"
MAX_RECORDS = 10_000  # per kind of record: an export is one response, bounded
RequesterPath = Annotated[str, Path(min_length=1, max_length=128, examples=["u-10086"])]
Gather = Callable[[str], Awaitable[dict[str, list[Document]]]]


def exported(doc: Document) -> Document:
    """A stored document as the requester sees it: no outbox, no internal bookkeeping."""
    return {k: v for k, v in doc.items() if not k.startswith("_outbox") and k != "_applied"}


def install_export_route(app: FastAPI, key: SecretStr, gather: Gather) -> None:
    """`GET /v1/requesters/{id}/export` on a service: what it holds about the requester,
    by kind of record; for intake only (`Authorization: Bearer <privacy API key>`)."""

    @app.get(ROUTE, tags=["privacy"], summary="What this service holds about a requester")
    async def export_requester(
        requester_id: RequesterPath,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        require_bearer(key, authorization, "privacy API key")
        found = await gather(requester_id)
        body: dict[str, Any] = jsonable_encoder(
            {kind: [exported(d) for d in docs] for kind, docs in found.items()}
        )
        return body


async def fetch_export(
    client: httpx.AsyncClient, service: str, base_url: str, key: SecretStr, requester_id: str
) -> Any:
    """One service's part of an export; a service that does not answer fails the export
    (503): an export that silently leaves a service out would be wrong."""
    try:
        response = await client.get(
            base_url.rstrip("/") + ROUTE.format(requester_id=quote(requester_id, safe="")),
            headers={"Authorization": f"Bearer {key.get_secret_value()}"},
        )
    except httpx.HTTPError as exc:
        raise ProblemError(
            503, "Export incomplete", f"{service} did not answer; try again.", code="export_failed"
        ) from exc
    if response.status_code != 200:
        raise ProblemError(
            503,
            "Export incomplete",
            f"{service} answered {response.status_code}; try again.",
            code="export_failed",
        )
    return response.json()
