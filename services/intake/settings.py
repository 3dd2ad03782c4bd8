from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.secrets import Secret
from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = Field(8001, ge=0, le=65535)
    bootstrap_api_key: Secret | None = Field(
        None,
        description="An API key with every scope, installed at start (local run, first admin).",
    )
    mail_gateway_api_key: Secret | None = Field(
        None,
        description="The mail gateway's API key (`hs_mailgateway_…`, the same value as the "
        "gateway's), installed at start with tickets:write only: the gateway signs the mail it "
        "receives as commands with it. Absent: no inbound mail.",
    )
    triage_rules: Path | None = Field(
        None, description="Triage rules YAML; the packaged rules when empty."
    )
    help_articles: Path | None = Field(
        None,
        description="Folder of help articles (Markdown with front matter) suggested to "
        "requesters; the packaged articles when empty. A bad article stops the start.",
    )
    command_replay_window_s: float = Field(
        300.0,
        ge=30,
        le=86_400,
        description="How old (by its signature) a command on helpstream.commands may be when "
        "intake reads it; older ones are dead-lettered as stale_command. Size it to the "
        "longest consumer backlog to ride out; repeats inside it are dropped by command id.",
    )
    requester_link_secret: Secret = Field(
        description="HMAC key of the requester's ticket status links (/t/{token}); the same "
        "value as notifier's, which mails the links (required, at least 32 bytes).",
    )
    requester_link_previous_secret: Secret | None = Field(
        None, description="The link secret before the last rotation: its links keep working."
    )
    sla_read_api_key: Secret | None = Field(
        None,
        description="Sent to sla_monitor to read a ticket's SLA for the status page (the same"
        " value as sla_monitor's); without it the page is shown without the promised time.",
    )
    privacy_api_key: Secret = Field(
        description="Bearer key of requester data exports: intake sends it, feedback and "
        "notifier check it (the same value in all three; required, at least 32 bytes).",
    )
    closed_ticket_retention_days: int = Field(
        730,
        ge=1,
        le=3650,
        description="A ticket closed (and unchanged) this long is anonymized, with every copy "
        "in the other services (README, Privacy).",
    )
    retention_interval_s: float = Field(
        3600.0, gt=0, description="How often the retention job looks for such tickets."
    )
    audit_retention_days: int = Field(
        365, ge=1, le=3650, description="How long the audit trail keeps an entry (TTL index)."
    )
    feedback_url: str = Field(
        "http://127.0.0.1:8003", description="feedback's API: requester data exports read it."
    )
    notifier_url: str = Field(
        "http://127.0.0.1:8004", description="notifier's API: requester data exports read it."
    )
    sla_monitor_url: str = Field(
        "http://127.0.0.1:8002",
        description="sla_monitor's API; the status page shows the promised next reply time "
        "from it (and is shown without it when sla_monitor does not answer).",
    )
    http_group_commit_ms: float = Field(
        2.0,
        ge=0,
        le=50,
        description="HTTP opens (their ticket numbers and inserts) and audit entries of "
        "requests arriving within this many milliseconds of each other are written together, "
        "one round trip per group; a lone request waits at most this long. 0 turns it off.",
    )
    max_messages_per_ticket: int = Field(
        500,
        ge=2,
        description="A ticket holding this many messages refuses more (409 "
        "ticket_message_limit; over Kafka the command is dead-lettered): open a new ticket.",
    )
    max_ticket_text_bytes: int = Field(
        4_000_000,
        ge=100_000,
        le=12_000_000,
        description="UTF-8 bytes of a ticket's subject, description and messages together; a "
        "message that would exceed it is refused (413 ticket_too_large). Below MongoDB's "
        "16 MiB document limit with room for the outbox.",
    )
