"""mail_gateway settings: `HELPSTREAM_<NAME>` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.command_signing import key_id_of
from shared.secrets import Secret, key_or_explicitly_open
from shared.settings import ServiceSettings

EXECUTABLE_EXTENSIONS = (
    ".exe", ".scr", ".bat", ".cmd", ".com", ".js", ".jse", ".vbs", ".vbe", ".wsf", ".msi",
    ".msp", ".jar", ".ps1", ".apk", ".hta", ".cpl", ".dll", ".pif", ".lnk", ".reg", ".sh",
)  # fmt: skip
EXECUTABLE_TYPES = (
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/x-dosexec",
    "application/x-executable",
    "application/x-ms-installer",
    "application/x-msi",
    "application/java-archive",
    "application/x-java-archive",
    "application/vnd.android.package-archive",
    "application/javascript",
    "text/javascript",
    "application/x-javascript",
    "application/hta",
    "application/x-sh",
    "text/vbscript",
)


class MailGatewaySettings(ServiceSettings):
    http_port: int = Field(8005, ge=0, le=65535)

    # the SMTP server a relay / MX delivers to
    # "inbound_" apart from notifier's outbound HELPSTREAM_SMTP_* (the relay it sends through)
    inbound_smtp_host: str = Field(
        "127.0.0.1", description="SMTP bind address (0.0.0.0 behind an MX)."
    )
    inbound_smtp_port: int = Field(
        2526, ge=0, le=65535, description="SMTP port; 0 = any free port."
    )
    inbound_smtp_hostname: str = Field(
        "helpstream.local", description="The name in the greeting and EHLO answer."
    )
    inbound_addresses: Annotated[list[str], NoDecode] = Field(
        ["support@helpstream.local"],
        min_length=1,
        description="Support mailboxes mail is accepted for (their `+tag` forms too; "
        "notifier's HELPSTREAM_INBOUND_MAIL_ADDRESS is one). Any other recipient is refused: "
        "550 5.7.1 for other domains (never an open relay), 550 5.1.1 for other mailboxes.",
    )
    own_addresses: Annotated[list[str], NoDecode] = Field(
        [],
        description="Addresses helpstream sends from (notifier's mail_from); mail from them, "
        "or from an inbound address, is our own coming back and is dropped.",
    )
    max_message_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Larger mail gets 552 (advertised as SIZE)."
    )
    max_recipients: int = Field(
        20, ge=1, le=1000, description="Recipients per message; more get 452 4.5.3."
    )
    max_sessions: int = Field(
        200, ge=1, description="SMTP connections at once; more get 421 and are closed."
    )
    max_sessions_per_ip: int = Field(
        10, ge=1, description="SMTP connections at once from one client address; more get 421."
    )
    smtp_idle_timeout_s: float = Field(
        120.0, gt=0, description="A connection silent this long is closed (RFC 5321: >= 5 min)."
    )
    handling_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest a message may take to be stored and published; past it the "
        "relay gets 451 4.3.0 and delivers again later.",
    )
    tls_cert_file: Path | None = Field(
        None, description="Certificate (PEM) for STARTTLS; with tls_key_file it is offered."
    )
    tls_key_file: Path | None = Field(None, description="The certificate's private key (PEM).")
    smtp_require_tls: bool = Field(
        False, description="Refuse mail before STARTTLS (530); needs a certificate."
    )

    # what the gateway says on helpstream.commands
    mail_gateway_api_key: Secret = Field(
        description="The intake API key (tickets:write) commands are signed with; intake "
        "installs the same value (required)."
    )
    mail_thread_secret: Secret = Field(
        description="Verifies signed reply addresses and Message-IDs; the same value as "
        "notifier's (required)."
    )

    # attachments
    public_url: str = Field(
        "http://127.0.0.1:8005",
        description="Where agents' tools reach this service; attachment URLs start with it.",
    )
    attachment_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=0,
        description="Larger attachments are recorded (name, type, size, sha256) but not kept.",
    )
    executable_extensions: Annotated[list[str], NoDecode] = Field(
        list(EXECUTABLE_EXTENSIONS),
        description="File name endings refused as executable: recorded, content not kept.",
    )
    executable_types: Annotated[list[str], NoDecode] = Field(
        list(EXECUTABLE_TYPES), description="Content types refused as executable."
    )
    attachments_api_key: Secret | None = Field(
        None,
        description="GET /v1/attachments/{sha256} needs `Authorization: Bearer <key>` "
        "(required unless attachments_open).",
    )
    attachments_open: bool = Field(
        False, description="Leave attachment downloads open without a key (logged at start)."
    )

    @field_validator(
        "inbound_addresses",
        "own_addresses",
        "executable_extensions",
        "executable_types",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`a@x, b@x` in an environment variable, as well as a JSON list."""
        if isinstance(value, str) and value.strip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("inbound_addresses", "own_addresses")
    @classmethod
    def _plain_mailboxes(cls, value: list[str]) -> list[str]:
        for address in value:
            local, at, domain = address.rpartition("@")
            if not (local and at and domain) or "+" in local or " " in address:
                raise ValueError(f"{address[:80]!r} is not a plain mailbox like support@x.com")
        return [address.strip().lower() for address in value]

    @field_validator("mail_gateway_api_key")
    @classmethod
    def _api_key_shape(cls, value: Secret) -> Secret:
        key_id_of(value.get_secret_value())  # hs_<id>_<random>, as intake issues them
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MailGatewaySettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("HELPSTREAM_TLS_CERT_FILE and HELPSTREAM_TLS_KEY_FILE go together")
        if self.smtp_require_tls and self.tls_cert_file is None:
            raise ValueError("HELPSTREAM_SMTP_REQUIRE_TLS needs HELPSTREAM_TLS_CERT_FILE")
        key_or_explicitly_open(
            self.attachments_api_key,
            self.attachments_open,
            "attachments_api_key",
            "attachments_open",
        )
        return self

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(a.rpartition("@")[2] for a in self.inbound_addresses)
