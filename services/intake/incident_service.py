"""Incident use cases: declare, update, resolve, link by hand; and the open incidents every
new ticket is matched against.

Linking, updating and resolving touch every linked ticket, a page (`PAGE` tickets) per
round trip: linking and resolving change tickets (versioned writes, a page retried on a
lost race), an update only appends one event to each linked ticket's outbox. Every event
id derives from the incident, update and ticket, so a redelivered command repeats the
same events, which consumers drop.

Each action is in the audit trail (`acting`: who, by which route or command), and so is
each ticket it links, resolves or hands an update: one insert per round of ticket writes,
just before it, with ids stable per ticket version (or update), so a retried round or a
redelivered command writes each entry once.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from services.intake.audit import INCIDENT_SWEEP, Acting, service_name
from services.intake.domain import DomainError, Ticket
from services.intake.handlers import TicketNotFound, safe_reference
from services.intake.incident_store import WRITE_CHUNK
from services.intake.incidents import (
    Incident,
    IncidentNotFound,
    IncidentResolvedAlready,
    TicketFacts,
    linkable,
)
from services.intake.ports import TicketChange
from shared.commands import DeclareIncident, LinkTicket, ResolveIncident, UpdateIncident
from shared.errors import Invalid, Retryable
from shared.events import IncidentText, Status, TicketIncidentUpdate, make_event
from shared.ids import stable_id
from shared.kafka import Rejected
from shared.redaction import redact_async
from shared.tasks import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from aiokafka.structs import ConsumerRecord

    from services.intake.audit import AuditEntry, AuditTrail
    from services.intake.incident_store import IncidentStore
    from services.intake.metrics import IntakeMetrics
    from services.intake.ports import TicketRepository
    from shared.clock import Clock
    from shared.commands import Command
    from shared.events import CloudEvent, Outgoing
    from shared.topics import Topics

SOURCE = "/helpstream/intake"
SAVE_ATTEMPTS = 5
log = structlog.get_logger(__name__)


def facts_of(ticket: Ticket) -> TicketFacts:
    return TicketFacts(
        category=ticket.category,
        crypto=ticket.crypto,
        subject=ticket.subject,
        description=ticket.description,
        created_at=ticket.created_at,
        status=ticket.status,
        incident_id=ticket.incident_id,
    )


def incident_id_for(command_id: str) -> str:
    """A declaration's incident id: the same command (redelivered) names the same incident."""
    return stable_id("incident", command_id)


class IncidentConflict(DomainError):
    code = "concurrent_change"

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id} kept changing while we wrote; try again")


class OpenIncidents:
    """The open incidents, in memory: matching a new ticket costs no database read. Kept
    fresh by `IncidentRefresher` (other instances' declarations) and at once by this
    instance's own declarations and resolutions."""

    def __init__(self) -> None:
        self._open: dict[str, Incident] = {}

    def replace(self, incidents: Sequence[Incident]) -> None:
        self._open = {i.id: i for i in incidents if i.is_open}

    def put(self, incident: Incident) -> None:
        if incident.is_open:
            self._open[incident.id] = incident
        else:
            self._open.pop(incident.id, None)

    def match(self, ticket: Ticket) -> Incident | None:
        """The earliest declared open incident the ticket matches."""
        facts = facts_of(ticket)
        found = [i for i in self._open.values() if i.accepts(facts)]
        return min(found, key=lambda i: (i.declared_at, i.id)) if found else None

    def __len__(self) -> int:
        return len(self._open)


class IncidentService:
    def __init__(
        self,
        *,
        store: IncidentStore,
        tickets: TicketRepository,
        clock: Clock,
        topics: Topics,
        metrics: IntakeMetrics,
        resolve_ticket: Callable[[str], Awaitable[str]],
        on_events: Callable[[int], None] = lambda _: None,
        audit: AuditTrail | None = None,
    ) -> None:
        self._audit = audit
        self._store = store
        self._tickets = tickets
        self._clock = clock
        self._topics = topics
        self._metrics = metrics
        self._resolve_ticket = resolve_ticket
        self._on_events = on_events
        self.open = OpenIncidents()

    # --- new tickets --------------------------------------------------------------------

    def link_new(self, ticket: Ticket) -> None:
        """A ticket being opened joins the open incident it matches (same write, same outbox)."""
        incident = self.open.match(ticket)
        if incident is not None and ticket.link_to_incident(incident.id, ticket.created_at):
            self._metrics.incident_links.labels("new_ticket").inc()

    # --- use cases ----------------------------------------------------------------------

    async def declare(
        self,
        cmd: DeclareIncident,
        *,
        incident_id: str,
        by: str,
        correlation_id: str,
        acting: Acting | None = None,
    ) -> Incident:
        """Stores the incident, then links every open matching ticket. A repeated
        declaration (same id) links again whatever the first could not finish."""
        started = time.perf_counter()
        title, status_text = await self._redacted(cmd.title), await self._redacted(cmd.status_text)
        now = self._clock.now()
        incident = Incident.declare(
            incident_id=incident_id,
            title=title,
            scope=cmd.scope,
            status_text=status_text,
            by=by,
            now=now,
        )
        if await self._store.insert(incident, self._outbox(incident, correlation_id), now):
            self._metrics.incidents.labels("declared").inc()
            self._on_events(1)
        else:
            stored = await self._store.get(incident_id)
            assert stored is not None
            incident = stored
        self.open.put(incident)
        if incident.is_open:
            await self.sweep(incident, correlation_id, how="declared", acting=acting)
        self._metrics.incident_seconds.labels("declare").observe(time.perf_counter() - started)
        return incident

    async def sweep(
        self,
        incident: Incident,
        correlation_id: str,
        how: str = "swept",
        acting: Acting | None = None,
    ) -> int:
        """Links every open, unlinked ticket the scope matches; returns how many."""
        linked = 0
        async for page in self._store.linkable_tickets(incident):
            linked += await self._change_page(
                page,
                lambda t: (
                    linkable(incident.scope, facts_of(t))
                    and t.link_to_incident(incident.id, self._clock.now())
                ),
                correlation_id,
                incident.id,
                acting,
            )
        self._metrics.incident_links.labels(how).inc(linked)
        return linked

    async def post_update(
        self,
        incident_id: str,
        cmd: UpdateIncident,
        *,
        update_id: str,
        correlation_id: str,
        acting: Acting | None = None,
    ) -> tuple[Incident, int]:
        """Records the update on the incident, then hands it to every linked ticket (in
        its requester's language). Returns the incident and how many tickets got it."""
        started = time.perf_counter()
        text = await self._redacted(cmd.text)
        for _ in range(SAVE_ATTEMPTS):
            incident = await self._get(incident_id)
            now = self._clock.now()
            linked = await self._store.linked_count(incident_id)
            update = incident.post_update(update_id=update_id, text=text, now=now, linked=linked)
            if update is None:  # posted before: hand it out again, consumers drop repeats
                update = next(u for u in incident.updates if u.id == update_id)
                break
            if await self._store.save(incident, self._outbox(incident, correlation_id), now):
                self._metrics.incidents.labels("updated").inc()
                self._on_events(1)
                break
        else:
            raise IncidentConflict(incident_id)
        self.open.put(incident)
        told = 0
        async for page in self._store.linked_tickets(incident_id, untold=update.id):
            told_now: list[Outgoing] = []
            for ticket in page:
                event = make_event(
                    TicketIncidentUpdate(
                        ticket_id=ticket.id,
                        ticket=ticket.summary(),
                        incident_id=incident_id,
                        update_id=update.id,
                        body=update.text.for_locale(ticket.requester.locale),
                        posted_at=update.posted_at,
                    ),
                    source=SOURCE,
                    time=update.posted_at,  # notifier measures "posted → told" from it
                    correlationid=correlation_id,
                    event_id=stable_id(update.id, ticket.id),
                )
                told_now.append((self._topics.tickets, event))
            await self._audit_tickets(acting, incident_id, [(t.id, update.id) for t in page])
            await self._store.tell(update.id, told_now, self._clock.now())
            told += len(told_now)
            self._on_events(len(told_now))
        self._metrics.incident_update_fanout.inc(told)
        self._metrics.incident_seconds.labels("update").observe(time.perf_counter() - started)
        return incident, told

    async def resolve(
        self,
        incident_id: str,
        cmd: ResolveIncident,
        *,
        correlation_id: str,
        acting: Acting | None = None,
    ) -> tuple[Incident, int]:
        """Closes the incident, then gives every linked ticket the resolution as a public
        system message and the chosen status. Repeating it finishes what a crash left."""
        started = time.perf_counter()
        text = await self._redacted(cmd.text)
        for _ in range(SAVE_ATTEMPTS):
            incident = await self._get(incident_id)
            now = self._clock.now()
            linked = await self._store.linked_count(incident_id)
            if not incident.resolve(text=text, outcome=cmd.ticket_status, now=now, linked=linked):
                break
            if await self._store.save(incident, self._outbox(incident, correlation_id), now):
                self._metrics.incidents.labels("resolved").inc()
                self._metrics.incident_tickets.observe(linked)
                self._on_events(1)
                break
        else:
            raise IncidentConflict(incident_id)
        self.open.put(incident)
        resolution = incident.resolution or text
        outcome = Status(incident.ticket_outcome)
        solved = 0
        async for page in self._store.linked_tickets(incident_id):
            solved += await self._change_page(
                page,
                lambda t: t.resolve_by_incident(
                    incident_id=incident_id,
                    message_id=stable_id(incident_id, "resolution", t.id),
                    text=resolution.for_locale(t.requester.locale),
                    outcome=outcome,
                    now=self._clock.now(),
                ),
                correlation_id,
                incident_id,
                acting,
            )
        self._metrics.incident_seconds.labels("resolve").observe(time.perf_counter() - started)
        return incident, solved

    async def link(self, incident_id: str, cmd: LinkTicket, *, correlation_id: str) -> Ticket:
        """An agent links a ticket (moving it from another incident) or unlinks it."""
        incident = await self._get(incident_id)
        if not cmd.unlink and not incident.is_open:
            raise IncidentResolvedAlready(incident_id)
        ticket_id = await self._resolve_ticket(cmd.ticket)
        for _ in range(SAVE_ATTEMPTS):
            ticket = await self._tickets.get(ticket_id)
            if ticket is None:
                raise TicketNotFound(cmd.ticket)
            now = self._clock.now()
            if cmd.unlink:
                changed = ticket.unlink_from_incident(incident_id, now)
            else:
                changed = ticket.link_to_incident(incident_id, now, by="agent")
            if not changed:
                return ticket
            outbox = self._ticket_outbox(ticket, correlation_id)
            if await self._tickets.save_many([TicketChange(ticket, outbox)], now):
                ticket.version += 1
                self._metrics.incident_links.labels("unlinked" if cmd.unlink else "agent").inc()
                self._on_events(len(outbox))
                return ticket
        raise IncidentConflict(incident_id)

    async def get(self, incident_id: str) -> Incident:
        return await self._get(incident_id)

    # --- Kafka: incident commands on helpstream.commands ----------------------------------

    async def on_commands(
        self,
        items: Sequence[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command], str]],
    ) -> list[Rejected]:
        """Incident commands in arrival order; (record, command, signing key id). A command
        the incident's state refuses goes to the DLQ with the reason. Each applied command is
        in the audit trail under the key that signed it (one insert for the batch; ids stable
        per command, so a redelivered one is there once)."""
        rejected: list[Rejected] = []
        audited: list[AuditEntry] = []
        for record, command, key_id in items:
            data, correlation = command.data, command.correlationid
            acting = Acting(f"key:{key_id}", command.type, "commands", service_name(command.source))
            incident_id, ticket_id = command.subject, None
            try:
                if isinstance(data, DeclareIncident):
                    incident_id = incident_id_for(command.id)
                    await self.declare(
                        data,
                        incident_id=incident_id,
                        by=key_id,
                        correlation_id=correlation,
                        acting=acting,
                    )
                elif isinstance(data, UpdateIncident):
                    await self.post_update(
                        command.subject,
                        data,
                        update_id=stable_id("incident-update", command.id),
                        correlation_id=correlation,
                        acting=acting,
                    )
                elif isinstance(data, ResolveIncident):
                    await self.resolve(
                        command.subject, data, correlation_id=correlation, acting=acting
                    )
                elif isinstance(data, LinkTicket):
                    ticket = await self.link(command.subject, data, correlation_id=correlation)
                    ticket_id = ticket.id
            except IncidentConflict as exc:
                raise Retryable(str(exc)) from exc
            except DomainError as exc:
                self._metrics.incident_refused.labels(exc.code).inc()
                self._metrics.commands.labels(command.type, "rejected").inc()
                rejected.append(Rejected(record, Invalid(exc.code, str(exc))))
                continue
            self._metrics.commands.labels(command.type, "applied").inc()
            if self._audit is not None:
                entry_id = stable_id("audit", acting.actor, safe_reference(command.id))
                audited.append(self._audit.acted(acting, incident_id, ticket_id, entry_id=entry_id))
        if self._audit is not None and audited:
            await self._audit.record_many(audited, "commands")
        return rejected

    # --- helpers ------------------------------------------------------------------------

    async def _get(self, incident_id: str) -> Incident:
        incident = await self._store.get(incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    async def _redacted(self, text: IncidentText) -> IncidentText:
        """Agents and platform services type these too: no secret reaches a requester."""
        en, zh = await redact_async(text.en), await redact_async(text.zh_cn)
        for result in (en, zh):
            for kind in result.kinds:
                self._metrics.secrets_redacted.labels(kind).inc()
        if not (en.redacted or zh.redacted):
            return text
        return IncidentText(en=en.text, zh_cn=zh.text)

    async def _audit_tickets(
        self, acting: Acting | None, incident_id: str, tickets: Sequence[tuple[str, str]]
    ) -> None:
        """One insert for a round's tickets, (ticket id, what makes this change of it one:
        its version before, or the update handed to it), just before the round is written."""
        if self._audit is None or acting is None or not tickets:
            return
        entries = [
            self._audit.acted(
                acting,
                incident_id,
                ticket_id,
                entry_id=stable_id("audit", acting.actor, acting.action, ticket_id, change),
            )
            for ticket_id, change in tickets
        ]
        await self._audit.record_many(entries, acting.flow)

    async def _change_page(
        self,
        page: Sequence[Ticket],
        change: Callable[[Ticket], bool],
        correlation_id: str,
        incident_id: str,
        acting: Acting | None,
    ) -> int:
        """Applies `change` to each ticket of a page and writes the changed ones, a chunk per
        round trip (each durable, so a retried command resumes where it stopped: linked or
        resolved tickets no longer change); tickets that changed meanwhile are re-read and
        retried."""
        done = 0
        for start in range(0, len(page), WRITE_CHUNK):
            done += await self._change_chunk(
                page[start : start + WRITE_CHUNK], change, correlation_id, incident_id, acting
            )
        return done

    async def _change_chunk(
        self,
        chunk: Sequence[Ticket],
        change: Callable[[Ticket], bool],
        correlation_id: str,
        incident_id: str,
        acting: Acting | None,
    ) -> int:
        pending = list(chunk)
        done = 0
        for _ in range(SAVE_ATTEMPTS):
            now = self._clock.now()
            changed = [t for t in pending if change(t)]
            ops = [TicketChange(t, self._ticket_outbox(t, correlation_id)) for t in changed]
            if not ops:
                return done
            versions = [(t.id, f"{incident_id}@{t.version}") for t in changed]
            await self._audit_tickets(acting, incident_id, versions)
            matched = await self._tickets.save_many(ops, now)
            self._on_events(len(ops))
            if matched == len(ops):
                return done + matched
            # Some lost a race: the ones whose version moved are re-read and re-tried.
            fresh = await self._tickets.get_many([t.id for t in changed])
            retry = [
                fresh_ticket
                for t in changed
                if (got := fresh.get(t.id)) is not None
                and (fresh_ticket := got[0]).version != t.version + 1
            ]
            done += len(changed) - len(retry)
            pending = retry
            await asyncio.sleep(0)
        raise IncidentConflict("tickets kept changing while linking")

    def _outbox(self, incident: Incident, correlation_id: str) -> list[Outgoing]:
        now = self._clock.now()
        return [
            (
                self._topics.tickets,
                make_event(
                    data, source=SOURCE, time=now, correlationid=correlation_id, subject=incident.id
                ),
            )
            for data in incident.take_events()
        ]

    def _ticket_outbox(self, ticket: Ticket, correlation_id: str) -> list[Outgoing]:
        now = self._clock.now()
        return [
            (
                self._topics.tickets,
                make_event(data, source=SOURCE, time=now, correlationid=correlation_id),
            )
            for data in ticket.take_events()
        ]


class IncidentRefresher(BackgroundTask):
    """Reloads the open incidents every `interval_s` (declared or resolved elsewhere), and
    sweeps each new incident once more after every instance has seen it: a ticket opened on
    another instance in the moment before that instance knew the incident is linked then."""

    name = "incident-refresher"

    def __init__(
        self, service: IncidentService, store: IncidentStore, clock: Clock, interval_s: float = 1.0
    ) -> None:
        super().__init__()
        self._service, self._store, self._clock = service, store, clock
        self._interval = interval_s

    async def refresh(self) -> None:
        loaded = await self._store.open_incidents()
        self._service.open.replace([incident for incident, _ in loaded])
        settle = 3 * self._interval
        now = self._clock.now()
        for incident, swept in loaded:
            if not swept and (now - incident.declared_at).total_seconds() > settle:
                await self._service.sweep(
                    incident, correlation_id=incident.id, acting=INCIDENT_SWEEP
                )
                await self._store.mark_swept(incident.id)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again; matching uses the last set
                log.warning("incident_refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self._interval)
