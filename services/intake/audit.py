"""The audit trail: who read or changed which ticket, and when, kept apart from tickets.

One document per read or change (`audit` collection), written in the flow that makes it:
- an API request made with an API key that reads or changes tickets or requester data:
  `actor` `key:<key id>`, `action` the method and route, `ticket` (its id, also when asked
  for by number) or `requester`; a list read (`GET /v1/tickets`) names the ticket ids of
  the page it answered in `tickets` (at most the page size);
- a request through a requester's status link (`/t/{token}`): `actor` `link:<ticket id>`
  (never the token), `action` the method and route (`GET /t/{token}` …), `ticket`;
- a command from `helpstream.commands`: `actor` `key:<key id>` (the key that signed it),
  `service` (its CloudEvents source: `mail_gateway` for `/helpstream/mail_gateway`),
  `action` the command type, `ticket`; one insert for the batch, after its tickets are
  written;
- a change intake makes because a service told it something (an SLA breach or a low
  rating escalating a ticket): `actor` `service:<name>` (`service:sla_monitor`);
- an incident action (declare, post an update, resolve, link or unlink a ticket), over HTTP
  or as a command: one entry for the action, with `incident` (and `ticket` when a ticket is
  linked or unlinked by hand), under its key and route or command type as above; and one
  entry per ticket it linked by scope, resolved or handed an update, with the same actor,
  action and `incident`, written in the rounds that write those tickets (one insert per
  round, just before it; stable ids). intake's own late sweep of a new incident is
  `service:intake`, `link:incident_scope`.

API requests are written after the answer is made and before it is sent, so a request the
caller saw succeed is in the trail; with `group_commit_s`, the entries of requests answered
within that many seconds of each other share one insert. Entries hold ids and route
templates, never a token, an email or a ticket's text. A TTL index on `at` removes them
after `audit_retention_days`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import PyMongoError

from shared.group_commit import GroupCommit
from shared.http import database_problem
from shared.mongo import insert_new

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import datetime, timedelta

    from fastapi import FastAPI, Request, Response
    from pymongo.asynchronous.database import AsyncDatabase

    from services.intake.metrics import IntakeMetrics
    from shared.clock import Clock
    from shared.group_commit import FlushObserver
    from shared.mongo import Document

MAX_PAGE = 500
LIST_ROUTE = "/v1/tickets"
_TICKET = re.compile(r"^/v1/tickets/([^/]{1,64})(/.*)?$")
_REQUESTER = re.compile(r"^/v1/requesters/([^/]{1,128})/(erasure|export|legal-hold)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_OWN_SERVICE = re.compile(r"^/helpstream/([a-z_]{1,40})$")
_OTHER_SERVICE = re.compile(r"^/[A-Za-z0-9._/-]{1,100}$")


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str  # "key:<id>", "link:<ticket id>", "service:<name>"
    action: str  # "GET /v1/tickets/{ticket_id}", "GET /t/{token}", "helpstream.ticket.update"
    ticket: str | None = None
    requester: str | None = None
    tickets: tuple[str, ...] | None = None  # a list read: the ids it answered
    service: str | None = None  # a command's source
    incident: str | None = None  # an incident action: the incident's id
    id: str | None = None  # stable for an effect a retry may write again

    def document(self) -> Document:
        doc = {k: v for k, v in self.__dict__.items() if v is not None and k != "id"}
        if self.tickets is not None:
            doc["tickets"] = list(self.tickets)
        if self.id is not None:
            doc["_id"] = self.id
        return doc

    @property
    def kind(self) -> str:
        return self.actor.partition(":")[0]


@dataclass(frozen=True)
class Acting:
    """Who an incident action is filed under (`actor`, `action`, a command's `service`) and
    the flow its entries are written in (http, commands, services)."""

    actor: str
    action: str
    flow: str
    service: str | None = None


INCIDENT_SWEEP = Acting("service:intake", "link:incident_scope", "services")


def link_actor(ticket_id: str) -> str:
    """A status link acts for its one ticket's requester; the token itself is kept nowhere."""
    return f"link:{ticket_id}"


def service_name(source: str) -> str:
    """A CloudEvents source as the trail names it: `/helpstream/<name>` → `<name>`, another
    plain path as it is, anything else `unknown` (a source is the producer's claim)."""
    if own := _OWN_SERVICE.match(source):
        return own.group(1)
    return source if _OTHER_SERVICE.match(source) else "unknown"


def route_of(request: Request) -> str:
    """The request's method and route template (`GET /t/{token}`: no token in it)."""
    return f"{request.method} {getattr(request.scope.get('route'), 'path', '?')}"


def subject_of(method: str, path: str, location: str | None) -> tuple[str, str | None, str | None]:
    """(action, ticket reference, requester id) of a request path; action "" when the
    request is not audited."""
    if method == "POST" and path == LIST_ROUTE:
        created = _TICKET.match(location or "")
        return "POST /v1/tickets", created.group(1) if created else None, None
    if method == "GET" and path == LIST_ROUTE:
        return "GET /v1/tickets", None, None
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
        metrics: IntakeMetrics | None = None,
        *,
        group_commit_s: float = 0.0,
        on_group: FlushObserver | None = None,
    ) -> None:
        self.audit = db["audit"]
        self._clock = clock
        self._retention = retention
        self._resolve = resolve
        self._metrics = metrics
        self._requests: GroupCommit[AuditEntry, None] | None = (
            GroupCommit(self._write_requests, window_s=group_commit_s, on_flush=on_group)
            if group_commit_s > 0
            else None
        )

    async def ensure_indexes(self) -> None:
        await self.audit.create_index([("ticket", ASCENDING), ("at", DESCENDING)])
        await self.audit.create_index([("tickets", ASCENDING), ("at", DESCENDING)])
        await self.audit.create_index([("actor", ASCENDING), ("at", DESCENDING)])
        await self.audit.create_index([("incident", ASCENDING), ("at", DESCENDING)])
        await self.audit.create_index(
            [("at", ASCENDING)], expireAfterSeconds=int(self._retention.total_seconds())
        )

    def entry(
        self,
        actor: str,
        action: str,
        ticket: str | None = None,
        *,
        requester: str | None = None,
        tickets: Sequence[str] | None = None,
        service: str | None = None,
        incident: str | None = None,
        entry_id: str | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            self._clock.now(),
            actor,
            action,
            ticket,
            requester,
            tuple(tickets) if tickets is not None else None,
            service,
            incident,
            entry_id,
        )

    def acted(
        self, acting: Acting, incident: str, ticket: str | None = None, *, entry_id: str | None
    ) -> AuditEntry:
        """The entry of an incident action, or of one ticket it changed."""
        return self.entry(
            acting.actor,
            acting.action,
            ticket,
            service=acting.service,
            incident=incident,
            entry_id=entry_id,
        )

    async def record(
        self,
        actor: str,
        action: str,
        ticket: str | None,
        requester: str | None,
        tickets: Sequence[str] | None = None,
        incident: str | None = None,
    ) -> None:
        if ticket is not None and not _UUID.match(ticket):  # a number: keep the id
            ticket = await self._resolve(ticket) or ticket
        entry = self.entry(
            actor, action, ticket, requester=requester, tickets=tickets, incident=incident
        )
        if self._requests is not None:
            await self._requests.submit(entry)
        else:
            await self.record_many([entry], "http")

    async def _write_requests(self, entries: Sequence[AuditEntry]) -> list[BaseException | None]:
        """The entries of requests answered at about the same time: one insert."""
        await self.record_many(entries, "http")
        return [None] * len(entries)

    async def record_many(self, entries: Sequence[AuditEntry], flow: str) -> None:
        """One insert for all of `entries` (`flow`: http, link, commands, services); an entry
        whose id is already there (a retried batch) is left as it is."""
        if not entries:
            return
        started = time.perf_counter()
        written = await insert_new(self.audit, [e.document() for e in entries])
        if self._metrics is not None:
            self._metrics.audit_write_seconds.labels(flow).observe(time.perf_counter() - started)
            for position in written:
                self._metrics.audit_entries.labels(entries[position].kind).inc()

    async def query(
        self, *, ticket: str | None, actor: str | None, limit: int, incident: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first. Per ticket: the entries naming it, lists that answered it included;
        per incident: its actions and the tickets they changed."""
        wanted: Document = {}
        if ticket is not None:
            wanted["$or"] = [{"ticket": ticket}, {"tickets": ticket}]
        if actor is not None:
            wanted["actor"] = actor
        if incident is not None:
            wanted["incident"] = incident
        found = self.audit.find(wanted, {"_id": 0}).sort("at", DESCENDING).limit(limit)
        return await found.to_list()


def install_audit(app: FastAPI, trail: Callable[[], AuditTrail]) -> None:
    """Records every successful audited request made with an API key (`caller` puts the
    key id on `request.state.api_key_id`; a list route puts the ids it answered on
    `request.state.audit_tickets`; an incident action its incident's id on
    `request.state.audit_incident`, and a ticket it linked or unlinked on
    `request.state.audit_ticket`)."""

    @app.middleware("http")
    async def audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        try:
            return await record(request, response)
        except PyMongoError as exc:
            # The change may be applied but its audit entry is not: the caller is told to
            # repeat (an Idempotency-Key replays the answer and records it then).
            # Exception handlers do not reach middleware, so this answers itself.
            return database_problem(exc)

    async def record(request: Request, response: Response) -> Response:
        key_id = getattr(request.state, "api_key_id", None)
        if key_id is None or response.status_code >= 400:
            return response
        incident: str | None = getattr(request.state, "audit_incident", None)
        if incident is not None:
            linked: str | None = getattr(request.state, "audit_ticket", None)
            await trail().record(
                f"key:{key_id}", route_of(request), linked, None, incident=incident
            )
            return response
        action, ticket, requester = subject_of(
            request.method, request.url.path, response.headers.get("location")
        )
        tickets: list[str] | None = getattr(request.state, "audit_tickets", None)
        if action == "GET /v1/tickets":
            requester = request.query_params.get("requester_id")
            if tickets is None:
                return response  # not answered by the list route
        if action:
            await trail().record(f"key:{key_id}", action, ticket, requester, tickets)
        return response
