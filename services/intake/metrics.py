"""intake's metric names, each with what it counts. Labels are bounded enums."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class IntakeMetrics:
    # tickets opened, by channel, category and priority after triage
    tickets_created: Counter
    # commands from helpstream.commands, by type and outcome (applied, duplicate, rejected)
    commands: Counter
    # escalations, by reason (requester_request, agent, sla_breach, low_rating)
    escalations: Counter
    # secrets removed from requester text before storing, by kind
    secrets_redacted: Counter
    # requests refused by the API key check, by outcome (unauthenticated, forbidden)
    auth_refused: Counter
    # commands refused for their authority, by reason (unsigned_command, bad_signature, ...)
    commands_refused: Counter
    # API key reads from MongoDB (cache misses), by outcome (found, missing)
    api_key_lookups: Counter
    # API keys created, revoked and rotated, by action
    api_keys_changed: Counter


def intake_metrics(registry: CollectorRegistry) -> IntakeMetrics:
    return IntakeMetrics(
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
    )
