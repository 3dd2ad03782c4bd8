"""Commands other systems send to intake (HTTP bodies and `helpstream.commands` data).

Named as imperatives. The same models validate an HTTP request and a Kafka command,
so both doors accept exactly the same input. On Kafka, the CloudEvent `subject` names
the ticket a command changes (for `ticket.open`, any caller reference).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import (
    Author,
    Category,
    Channel,
    CloudEvent,
    CryptoContext,
    IncidentScope,
    IncidentText,
    Priority,
    Requester,
    Status,
    normalized_email,
    parse_envelope,
)
from shared.ids import new_id

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_TEXT = 20_000


class Attachment(BaseModel):
    """Metadata only: files live in the platform's object store (or, for mail, the mail
    gateway's), named by `url`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=255, examples=["screenshot.png"])
    content_type: str = Field(max_length=100, examples=["image/png"])
    size: int = Field(ge=0, le=100 * 1024 * 1024)
    url: str | None = Field(None, max_length=2048)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="Of the content.")
    refused: Literal["executable", "too_large"] | None = Field(
        None, description="Recorded but not kept: an executable type, or over the size limit."
    )


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    command_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class OpenTicket(Command):
    command_type: ClassVar[str] = "helpstream.ticket.open"

    requester: Requester
    channel: Channel = Field(examples=["web"])
    subject: str = Field(min_length=1, max_length=300, examples=["提现未到账 / withdrawal pending"])
    description: str = Field(min_length=1, max_length=MAX_TEXT)
    category: Category | None = Field(None, description="Leave empty to let triage decide.")
    priority: Priority | None = Field(None, description="Leave empty to let triage decide.")
    crypto: CryptoContext | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    follow_up_of: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Id or number (`482913` or `#482913`) of an earlier ticket of the same "
        "requester this one follows up, e.g. a reply to a closed ticket.",
        examples=["#482913"],
    )


class AddMessage(Command):
    command_type: ClassVar[str] = "helpstream.ticket.add_message"

    author: Author
    author_id: str | None = Field(None, max_length=128, description="Agent id, for agents.")
    body: str = Field(min_length=1, max_length=MAX_TEXT)
    public: bool = Field(True, description="False: internal note, never shown to the requester.")
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    verified: bool = Field(
        True,
        description="Requester messages only. False: the sender could not be shown to be the "
        "requester (mail from another address); the message is held as internal, flagged "
        "unverified, and never shown or sent as the requester's words.",
    )
    claimed_from: str | None = Field(
        None,
        max_length=320,
        description="Unverified messages only: who the sender claimed to be (e.g. From).",
    )

    @model_validator(mode="after")
    def _unverified_is_a_requester_claim(self) -> Self:
        if not self.verified and self.author != Author.requester:
            raise ValueError("verified=false is for requester messages only")
        if self.claimed_from is not None and self.verified:
            raise ValueError("claimed_from is for unverified messages only (verified=false)")
        return self


class ReceiveMail(Command):
    """A mail received by the inbound mail gateway. The gateway says which ticket the mail
    threads into (CloudEvent `subject`: the ticket id, or `mail:<digest>` when it threads
    nowhere) and how it knows; intake, which holds the requester's address, decides what it
    becomes: a reply, an unverified message held internal, a follow-up of a closed ticket,
    or a new ticket. The CloudEvent id comes from the Message-ID, so a relay's second
    delivery of the same mail is the same command and is applied once."""

    command_type: ClassVar[str] = "helpstream.ticket.receive_mail"

    sender: str = Field(min_length=3, max_length=254, examples=["li.wei@example.com"])
    sender_name: str | None = Field(None, max_length=200, examples=["李伟"])
    subject: str = Field(max_length=300, examples=["Re: [#100042] 提现未到账"])
    body: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        description="Only the new text: quoted history and signature already stripped.",
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    message_id: str | None = Field(None, max_length=998, examples=["<CAF=abc@mail.gmail.com>"])
    threaded_by: Literal["reply_address", "message_id", "none"] = Field(
        "none", description="What names the ticket: a signed reply address or Message-ID."
    )
    locale: str = Field("en", max_length=16, examples=["zh-CN", "en"])

    @field_validator("sender")
    @classmethod
    def _deliverable_syntax(cls, value: str) -> str:
        """Compared with the requester's stored address, normalized the same way."""
        return normalized_email(value)


class UpdateTicket(Command):
    command_type: ClassVar[str] = "helpstream.ticket.update"

    status: Status | None = None
    priority: Priority | None = None
    assignee: str | None = Field(None, max_length=128)
    group: str | None = Field(None, max_length=64)


class EscalateTicket(Command):
    command_type: ClassVar[str] = "helpstream.ticket.escalate"

    by: Literal["requester", "agent"]
    reason: str | None = Field(None, max_length=2000)


class SolveByArticle(Command):
    """The requester says a help article solved their problem (the status page's "this
    solved my problem", or an app's help widget)."""

    command_type: ClassVar[str] = "helpstream.ticket.solve_by_article"

    article_id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        examples=["usdt-trc20-withdrawal-pending-en"],
    )


class DeclareIncident(Command):
    """Many tickets about one cause. On Kafka the CloudEvent `subject` is any caller
    reference; the incident's id derives from the command id, so a redelivery is the same
    incident."""

    command_type: ClassVar[str] = "helpstream.incident.declare"

    title: IncidentText
    scope: IncidentScope
    status_text: IncidentText = Field(description="What requesters are told now.")

    @model_validator(mode="after")
    def _narrow(self) -> Self:
        scope = self.scope
        if not (scope.category or scope.asset or scope.network or scope.keywords):
            raise ValueError("the scope needs a category, asset, network or keyword")
        return self


class UpdateIncident(Command):
    """A public update every linked requester hears once. `subject`: the incident id."""

    command_type: ClassVar[str] = "helpstream.incident.update"

    text: IncidentText


class ResolveIncident(Command):
    """Closes the incident; each linked ticket gets `text` as a public system message and
    becomes `ticket_status`. `subject`: the incident id."""

    command_type: ClassVar[str] = "helpstream.incident.resolve"

    text: IncidentText
    ticket_status: Literal["solved", "pending"] = Field(
        "solved", description="pending: the requester is asked to confirm before it is solved."
    )


class LinkTicket(Command):
    """An agent links (or unlinks) one ticket by hand. `subject`: the incident id."""

    command_type: ClassVar[str] = "helpstream.incident.link_ticket"

    ticket: str = Field(min_length=1, max_length=64, description="Ticket id or number.")
    unlink: bool = False


INCIDENT_COMMANDS = (DeclareIncident, UpdateIncident, ResolveIncident, LinkTicket)

COMMAND_MODELS: dict[str, type[Command]] = {
    model.command_type: model
    for model in (
        OpenTicket,
        AddMessage,
        UpdateTicket,
        EscalateTicket,
        ReceiveMail,
        SolveByArticle,
        *INCIDENT_COMMANDS,
    )
}


def parse_command(raw: bytes) -> CloudEvent[Command]:
    """A command from `helpstream.commands`: the same models as the HTTP API."""
    return parse_envelope(raw, COMMAND_MODELS)


def command_envelope(
    command_type: str,
    subject: str,
    data: Mapping[str, Any],
    *,
    source: str,
    command_id: str | None = None,
    correlation_id: str | None = None,
    **extensions: Any,
) -> bytes:
    """A command as a platform service puts it on `helpstream.commands` (CloudEvents JSON,
    structured mode), ready to be signed with `shared.command_signing.sign_headers`."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": command_id or new_id(),
            "source": source,
            "type": command_type,
            "subject": subject,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "correlationid": correlation_id or new_id(),
            "data": data,
            **extensions,
        },
        ensure_ascii=False,
    ).encode()
