"""intake's metric names, each with what it counts. Labels are bounded enums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from collections.abc import Callable

    from services.intake.domain import Ticket


@dataclass(frozen=True)
class IntakeMetrics:
    # tickets not closed, by status and group (recounted by services.intake.backlog)
    open_tickets: Gauge
    # tickets opened, by channel, category and priority after triage
    tickets_created: Counter
    # commands from helpstream.commands, by type and outcome (applied, duplicate, rejected)
    commands: Counter
    # escalations, by reason (requester_request, agent, sla_breach, low_rating)
    escalations: Counter
    # secrets removed from requester text before storing, by kind
    secrets_redacted: Counter
    # seconds to scan one requester text for secrets, by where it ran (event_loop, worker_thread)
    redaction_seconds: Histogram
    # messages refused because the ticket is full, by limit (messages, size)
    ticket_limit_refused: Counter
    # HTTP changes whose versioned save lost a race and were applied again to a fresh read
    save_conflicts: Counter
    # requests refused by the API key check, by outcome (unauthenticated, forbidden)
    auth_refused: Counter
    # commands refused for their authority, by reason (unsigned_command, bad_signature, ...)
    commands_refused: Counter
    # API key reads from MongoDB (cache misses), by outcome (found, missing)
    api_key_lookups: Counter
    # API keys created, revoked and rotated, by action
    api_keys_changed: Counter
    # requester messages held as unverified (sender not shown to be the requester)
    unverified_messages: Counter
    # ticket changes sent with an Idempotency-Key, by outcome (applied, replayed, refused)
    idempotent_changes: Counter
    # ticket references given as a number (#482913), by outcome (found, missing)
    number_lookups: Counter
    # follow-up tickets, by outcome (opened, refused)
    follow_ups: Counter
    # received mail (ReceiveMail commands), by what intake made of it (reply, unverified,
    # follow_up, new_ticket)
    mail_received: Counter
    # incidents declared, updated and resolved, by action
    incidents: Counter
    # tickets linked to or unlinked from an incident, by how (declared, new_ticket, swept,
    # agent, unlinked)
    incident_links: Counter
    # tickets linked to one incident when it is resolved
    incident_tickets: Histogram
    # incident updates handed to linked tickets (one per ticket; notifier tells each requester once)
    incident_update_fanout: Counter
    # seconds to apply one incident action (declare with its sweep, update, resolve), by action
    incident_seconds: Histogram
    # incident requests refused, by reason code (incident_not_found, incident_resolved, ...)
    incident_refused: Counter
    # audit trail entries written, by actor kind (key, link, service)
    audit_entries: Counter
    # seconds to write one request's or one batch's audit entries, by flow (http, link,
    # commands, services)
    audit_write_seconds: Histogram
    # HTTP requests whose writes shared one group commit, per group, by write (numbers,
    # tickets, audit)
    group_commit_size: Histogram
    # seconds to write one group, by write and outcome (written, failed)
    group_commit_seconds: Histogram

    def group_flushed(self, write: str) -> Callable[[int, float, BaseException | None], None]:
        """Counts each group commit flush of `write` (a `shared.group_commit` observer)."""

        def observe(size: int, seconds: float, error: BaseException | None) -> None:
            self.group_commit_size.labels(write).observe(size)
            outcome = "failed" if error is not None else "written"
            self.group_commit_seconds.labels(write, outcome).observe(seconds)

        return observe


def intake_metrics(registry: CollectorRegistry) -> IntakeMetrics:
    return IntakeMetrics(
        open_tickets=Gauge(
            "helpstream_intake_open_tickets",
            "Tickets not closed, by status and group.",
            ("status", "group"),
            registry=registry,
        ),
        tickets_created=Counter(
            "helpstream_intake_tickets_created",
            "Tickets opened.",
            ("channel", "category", "priority"),
            registry=registry,
        ),
        commands=Counter(
            "helpstream_intake_commands",
            "Commands consumed from helpstream.commands.",
            ("type", "outcome"),
            registry=registry,
        ),
        escalations=Counter(
            "helpstream_intake_escalations", "Tickets escalated.", ("reason",), registry=registry
        ),
        secrets_redacted=Counter(
            "helpstream_intake_secrets_redacted",
            "Secrets removed from requester text.",
            ("kind",),
            registry=registry,
        ),
        redaction_seconds=Histogram(
            "helpstream_intake_redaction_seconds",
            "Time to scan one requester text for secrets.",
            ("where",),
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        ),
        ticket_limit_refused=Counter(
            "helpstream_intake_ticket_limit_refused",
            "Messages refused because the ticket holds the most it may.",
            ("limit",),
            registry=registry,
        ),
        save_conflicts=Counter(
            "helpstream_intake_save_conflicts",
            "Ticket changes retried because another write won the race.",
            registry=registry,
        ),
        auth_refused=Counter(
            "helpstream_intake_auth_refused",
            "Requests refused by the API key check.",
            ("outcome",),
            registry=registry,
        ),
        commands_refused=Counter(
            "helpstream_intake_commands_refused",
            "Commands dead-lettered for their signature, key or scope.",
            ("reason",),
            registry=registry,
        ),
        api_key_lookups=Counter(
            "helpstream_intake_api_key_lookups",
            "API keys read from MongoDB (the cache did not have them).",
            ("outcome",),
            registry=registry,
        ),
        api_keys_changed=Counter(
            "helpstream_intake_api_keys_changed",
            "API keys created, revoked or rotated.",
            ("action",),
            registry=registry,
        ),
        unverified_messages=Counter(
            "helpstream_intake_unverified_messages",
            "Requester messages held because the sender was not shown to be the requester.",
            registry=registry,
        ),
        idempotent_changes=Counter(
            "helpstream_intake_idempotent_changes",
            "Ticket changes sent with an Idempotency-Key: applied, replayed or refused.",
            ("outcome",),
            registry=registry,
        ),
        number_lookups=Counter(
            "helpstream_intake_number_lookups",
            "Ticket references given as a number, found or missing.",
            ("outcome",),
            registry=registry,
        ),
        follow_ups=Counter(
            "helpstream_intake_follow_ups",
            "Follow-up tickets opened or refused.",
            ("outcome",),
            registry=registry,
        ),
        mail_received=Counter(
            "helpstream_intake_mail_received",
            "Received mail by what it became: reply, unverified, follow_up or new_ticket.",
            ("outcome",),
            registry=registry,
        ),
        incidents=Counter(
            "helpstream_intake_incidents",
            "Incidents declared, updated and resolved.",
            ("action",),
            registry=registry,
        ),
        incident_links=Counter(
            "helpstream_intake_incident_links",
            "Tickets linked to or unlinked from an incident, by how.",
            ("how",),
            registry=registry,
        ),
        incident_tickets=Histogram(
            "helpstream_intake_incident_tickets",
            "Tickets linked to an incident when it was resolved.",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
            registry=registry,
        ),
        incident_update_fanout=Counter(
            "helpstream_intake_incident_update_fanout",
            "Incident updates handed to linked tickets (one event per ticket).",
            registry=registry,
        ),
        incident_seconds=Histogram(
            "helpstream_intake_incident_seconds",
            "Time to apply one incident action, linked tickets included.",
            ("action",),
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        ),
        incident_refused=Counter(
            "helpstream_intake_incident_refused",
            "Incident requests refused, by reason.",
            ("reason",),
            registry=registry,
        ),
        audit_entries=Counter(
            "helpstream_intake_audit_entries",
            "Audit trail entries written, by actor kind.",
            ("actor",),
            registry=registry,
        ),
        audit_write_seconds=Histogram(
            "helpstream_intake_audit_write_seconds",
            "Time to write one request's or one command batch's audit entries.",
            ("flow",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=registry,
        ),
        group_commit_size=Histogram(
            "helpstream_intake_group_commit_requests",
            "HTTP requests whose writes shared one group commit, by write.",
            ("write",),
            buckets=(1, 2, 4, 8, 16, 32, 64, 100),
            registry=registry,
        ),
        group_commit_seconds=Histogram(
            "helpstream_intake_group_commit_seconds",
            "Time to write one group commit, by write and outcome.",
            ("write", "outcome"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class SelfServiceMetrics:
    """Help articles and deflection (tickets requesters solved with an article)."""

    # tickets solved by the requester with a help article (status page form or the
    # helpstream.ticket.solve_by_article command), by category and channel
    tickets_deflected: Counter
    # help article pages shown, by the article's language
    article_views: Counter
    # help article views and "this solved my problem" forms refused, by route and reason
    # (not_found, csrf, foreign_ticket, unknown_article, closed, already_solved, busy)
    self_service_refused: Counter
    # seconds to answer an article page or a "this solved my problem" form, by route
    self_service_seconds: Histogram

    def count_deflection(self, ticket: Ticket) -> None:
        self.tickets_deflected.labels(ticket.category.value, ticket.channel.value).inc()


def self_service_metrics(registry: CollectorRegistry) -> SelfServiceMetrics:
    return SelfServiceMetrics(
        tickets_deflected=Counter(
            "helpstream_intake_tickets_deflected",
            "Tickets the requester solved with a help article.",
            ("category", "channel"),
            registry=registry,
        ),
        article_views=Counter(
            "helpstream_intake_article_views",
            "Help article pages shown.",
            ("language",),
            registry=registry,
        ),
        self_service_refused=Counter(
            "helpstream_intake_self_service_refused",
            "Article pages and solve forms refused, by route and reason.",
            ("route", "reason"),
            registry=registry,
        ),
        self_service_seconds=Histogram(
            "helpstream_intake_self_service_seconds",
            "Time to answer an article page or a solve form.",
            ("route",),
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        ),
    )
