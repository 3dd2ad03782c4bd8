"""The audit trail: who read or changed which ticket, and when, kept apart from tickets.

One document per successful API request that touches tickets or requester data (`audit`
collection): the API key id, the action (method and route), the ticket id or the requester
id, the time. Written after the answer is made and before it is sent, so a request the
caller saw succeed is in the trail. A TTL index on `at` removes entries after
`audit_retention_days`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime, timedelta

    from fastapi import FastAPI, Request, Response
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.clock import Clock
    from shared.mongo import Document

MAX_PAGE = 500
_TICKET = re.compile(r"^/v1/tickets/([^/]{1,64})(/.*)?$")
_REQUESTER = re.compile(r"^/v1/requesters/([^/]{1,128})/(erasure|export|legal-hold)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str  # "key:<id>"
    action: str  # "GET /v1/tickets/{ticket_id}"
    ticket: str | None = None
    requester: str | None = None

    def document(self) -> Document:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def subject_of(method: str, path: str, location: str | None) -> tuple[str, str | None, str | None]:
    """(action, ticket reference, requester id) of a request path; action "" when the
    request is not audited."""
    if method == "POST" and path == "/v1/tickets":
        created = _TICKET.match(location or "")
        return "POST /v1/tickets", created.group(1) if created else None, None
    if ticket := _TICKET.match(path):
        return f"{method} /v1/tickets/{{ticket_id}}{ticket.group(2) or ''}", ticket.group(1), None
    if requester := _REQUESTER.match(path):
        return f"{method} /v1/requesters/{{requester_id}}/{requester.group(2)}", None, requester[1]
    return "", None, None


class AuditTrail:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        clock: Clock,
        retention: timedelta,
        resolve: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self.audit = db["audit"]
        self._clock = clock
        self._retention = retention
        self._resolve = resolve

    async def ensure_indexes(self) -> None:
        await self.audit.create_index([("ticket", ASCENDING), ("at", DESCENDING)])
        await self.audit.create_index([("actor", ASCENDING), ("at", DESCENDING)])
        await self.audit.create_index(
            [("at", ASCENDING)], expireAfterSeconds=int(self._retention.total_seconds())
        )

    async def record(
        self, actor: str, action: str, ticket: str | None, requester: str | None
    ) -> None:
        if ticket is not None and not _UUID.match(ticket):  # a number: keep the id
            ticket = await self._resolve(ticket) or ticket
        entry = AuditEntry(self._clock.now(), actor, action, ticket, requester)
        await self.audit.insert_one(entry.document())

    async def query(
        self, *, ticket: str | None, actor: str | None, limit: int
    ) -> list[dict[str, Any]]:
        wanted: Document = {}
        if ticket is not None:
            wanted["ticket"] = ticket
        if actor is not None:
            wanted["actor"] = actor
        found = self.audit.find(wanted, {"_id": 0}).sort("at", DESCENDING).limit(limit)
        return await found.to_list()


def install_audit(app: FastAPI, trail: Callable[[], AuditTrail]) -> None:
    """Records every successful audited request made with an API key (`caller` puts the
    key id on `request.state.api_key_id`)."""

    @app.middleware("http")
    async def audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        key_id = getattr(request.state, "api_key_id", None)
        if key_id is None or response.status_code >= 400:
            return response
        action, ticket, requester = subject_of(
            request.method, request.url.path, response.headers.get("location")
        )
        if action:
            await trail().record(f"key:{key_id}", action, ticket, requester)
        return response
