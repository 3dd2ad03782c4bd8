"""notifier settings: `HELPSTREAM_<NAME>` environment variables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from services.notifier.config import DEFAULT_RULES_PATH, DEFAULT_TEMPLATES_DIR
from shared.mail_threading import LOCAL_PART_MAX
from shared.secrets import Secret
from shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    http_port: int = Field(8004, ge=0, le=65535)
    rules_file: Path = Field(DEFAULT_RULES_PATH, description="Notification rules (YAML).")
    templates_dir: Path = Field(DEFAULT_TEMPLATES_DIR, description="Jinja2 templates.")

    # email
    smtp_host: str = Field("127.0.0.1", description="SMTP relay host.")
    smtp_port: int = Field(2525, ge=1, le=65535, description="SMTP relay port.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(10.0, gt=0)
    smtp_fallback_host: str | None = Field(
        None, description="Relay tried when the primary refuses or times out."
    )
    smtp_fallback_port: int = Field(2525, ge=1, le=65535)
    smtp_fallback_starttls: bool = False
    smtp_fallback_username: str | None = None
    smtp_fallback_password: SecretStr | None = None
    mail_from: str = Field("helpstream <support@helpstream.local>", description="From header.")
    smtp_local_hostname: str | None = Field(
        None, description="Name given in EHLO (absent: this host's FQDN, looked up once)."
    )
    max_parallel_sends: int = Field(
        20, ge=1, description="Concurrent sends per batch; also the SMTP connections kept."
    )

    # email threading and replies (the inbound mail gateway reads what these sign)
    inbound_mail_address: str | None = Field(
        None,
        description="The support mailbox replies go to (`support@example.com`); mail says "
        '"reply to this email" only when set (absent: no inbound mail, replies go to the '
        "status page).",
    )
    mail_thread_secret: Secret | None = Field(
        None,
        description="Signs per-ticket reply addresses and Message-IDs; the same value as the "
        "mail gateway's. Required with inbound_mail_address.",
    )
    ack_sla_wait_s: float = Field(
        0.0,
        ge=0,
        le=300,
        description="How long the acknowledgement waits for the ticket's promised first reply "
        "time (sla.applied) before it goes out without one; 0 = never waits. A held "
        "acknowledgement costs several database round trips more than one sent at once, so "
        "under a flood of new tickets it falls behind: off by default, 5 in the local run.",
    )
    bounce_suppress_s: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="After a bounce, how long the address is not mailed (a later bounce "
        "extends it).",
    )

    # webhook (the exchange's push/app service; agent webhooks come from the rules file)
    webhook_url: str | None = Field(
        None, description="Requester notifications are POSTed here (absent: no webhook)."
    )
    webhook_secret: Secret | None = Field(
        None, description="HMAC-SHA256 key of the signature header; needed for any webhook."
    )
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_max_attempts: int = Field(4, ge=1, le=10)
    webhook_backoff_base_s: float = Field(0.5, gt=0)
    webhook_backoff_max_s: float = Field(4.0, gt=0)

    # in-app inbox
    inbox_secret: Secret | None = Field(
        None, description="Verifies requester inbox tokens (absent: inbox API answers 503)."
    )
    inbox_poll_s: float = Field(1.0, gt=0, description="SSE poll interval across instances.")
    inbox_keepalive_s: float = Field(15.0, gt=0)
    inbox_streams_per_requester: int = Field(
        5, ge=1, description="Inbox streams (SSE) open at once per requester; more get 429."
    )
    inbox_streams_total: int = Field(
        500,
        ge=1,
        description="Inbox streams open at once in this process; more get 429 (keep it "
        "below http_limit_concurrency: each stream is a request in flight).",
    )

    # digest
    digest_window_s: float = Field(60.0, ge=0, description="Coalescing window; 0 = off.")
    digest_poll_s: float = Field(1.0, gt=0, description="How often due digests are flushed.")
    digest_max_attempts: int = Field(10, ge=1, description="Flush attempts before giving up.")
    digest_lease_s: float = Field(
        60.0,
        gt=0,
        description="How long an instance holds a due digest it is sending; one that dies "
        "while holding it leaves it to the others after this. Longer than the slowest send "
        "(SMTP timeout twice with a fallback relay; every webhook attempt and backoff).",
    )

    privacy_api_key: Secret = Field(
        description="Bearer key of requester data exports: intake sends it, feedback and "
        "notifier check it (the same value in all three; required, at least 32 bytes).",
    )
    # requester pages: the "check your ticket" link in requester emails (intake serves it)
    requester_link_secret: Secret = Field(
        description="HMAC key of ticket status links; the same value as intake's (required,"
        " at least 32 bytes).",
    )
    requester_link_ttl: timedelta = Field(
        timedelta(days=30), gt=timedelta(0), description="How long a status link works."
    )
    status_page_base_url: str | None = Field(
        "http://127.0.0.1:8001",
        description="Where requesters reach intake; status links start with it (empty: none).",
    )

    @field_validator("inbound_mail_address", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def slowest_send_s(self) -> float:
        """The longest one message may take to be sent, on any channel."""
        smtp = self.smtp_timeout_s * (2 if self.smtp_fallback_host else 1)
        attempts = self.webhook_max_attempts
        webhook = attempts * self.webhook_timeout_s + (attempts - 1) * self.webhook_backoff_max_s
        return max(smtp, webhook)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> NotifierSettings:
        """A lease that ends while its holder is still sending lets another instance send
        the same digest."""
        if self.digest_lease_s <= self.slowest_send_s:
            raise ValueError(
                f"HELPSTREAM_DIGEST_LEASE_S ({self.digest_lease_s:g}) must be longer than the "
                f"slowest send ({self.slowest_send_s:g} s from the SMTP and webhook timeouts)"
            )
        return self

    @model_validator(mode="after")
    def _inbound_mail_needs_a_secret(self) -> NotifierSettings:
        """A reply address nobody can verify would let anyone post into any ticket."""
        address = self.inbound_mail_address
        if address is None:
            return self
        local, at, domain = address.rpartition("@")
        if not (local and at and domain) or "+" in local or len(local) >= LOCAL_PART_MAX:
            raise ValueError(
                f"HELPSTREAM_INBOUND_MAIL_ADDRESS must be a plain mailbox like support@example.com"
                f", not {address[:80]!r}"
            )
        if self.mail_thread_secret is None:
            raise ValueError(
                "HELPSTREAM_MAIL_THREAD_SECRET is required when HELPSTREAM_INBOUND_MAIL_ADDRESS is"
                " set (generate one: openssl rand -hex 32)"
            )
        return self
