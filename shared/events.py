"""Wire contracts: the CloudEvents 1.0 envelope and the data of every event.

Events are named in the past tense. Schemas evolve additively: consumers ignore
fields they do not know (`extra="ignore"`), and a breaking change is a new `type`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import Invalid
from shared.ids import new_id
from shared.tracing import parse_traceparent, traceparent_for

if TYPE_CHECKING:
    from collections.abc import Mapping

# --- vocabulary -------------------------------------------------------------------


class Channel(StrEnum):
    web = "web"
    app = "app"
    email = "email"
    chat = "chat"
    phone = "phone"
    social = "social"
    community = "community"
    api = "api"


class Status(StrEnum):
    new = "new"
    open = "open"
    pending = "pending"
    on_hold = "on_hold"
    solved = "solved"
    closed = "closed"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Category(StrEnum):
    account_security = "account_security"
    scam_report = "scam_report"
    withdrawal_delay = "withdrawal_delay"
    deposit_missing = "deposit_missing"
    transfer_failed = "transfer_failed"
    wallet_recovery = "wallet_recovery"
    kyc = "kyc"
    trading = "trading"
    fees = "fees"
    complaint = "complaint"
    other = "other"


class Author(StrEnum):
    requester = "requester"
    agent = "agent"
    system = "system"


class SlaMetric(StrEnum):
    first_reply = "first_reply"
    next_reply = "next_reply"
    periodic_update = "periodic_update"
    resolution = "resolution"


class Contract(BaseModel):
    """Base of every event's data: tolerant of fields added by newer producers."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


# --- tickets (intake) ---------------------------------------------------------------


class Requester(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=128, examples=["u-10086"])
    email: str | None = Field(
        None,
        max_length=254,
        description=(
            "Checked with email-validator and stored normalized (domain lower-cased, "
            "Unicode NFC). Internationalized addresses (李伟@例子.cn) are accepted and "
            "mailed with SMTPUTF8."
        ),
        examples=["li.wei@example.com"],
    )
    locale: str = Field("en", max_length=16, examples=["zh-CN", "en"])
    timezone: str = Field("UTC", max_length=64, examples=["Asia/Shanghai"])
    tier: str = Field("standard", max_length=32, examples=["standard", "vip"])

    @field_validator("email")
    @classmethod
    def _deliverable_syntax(cls, value: str | None) -> str | None:
        """An address a relay can be given: mail built from anything else fails far from the
        caller who could fix it (notifier, after the ticket exists)."""
        return None if value is None else normalized_email(value)


@functools.lru_cache(maxsize=4096)  # every consumer re-validates the requester of each event
def normalized_email(value: str) -> str:
    """The address email-validator accepts, normalized; ValueError saying why otherwise."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


class CryptoContext(BaseModel):
    """What agents need to trace a transfer; never keys or seed phrases."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    asset: str | None = Field(None, max_length=16, examples=["USDT"])
    network: str | None = Field(None, max_length=32, examples=["TRC20"])
    tx_hash: str | None = Field(None, max_length=128)
    amount: Decimal | None = Field(None, ge=0, examples=["2500"])
    address: str | None = Field(None, max_length=128)
    withdrawal_id: str | None = Field(None, max_length=64)
    deposit_id: str | None = Field(None, max_length=64)


class TicketRef(BaseModel):
    """Another ticket, by id and by the number people say (`#482913`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    number: int | None = None


class TicketSummary(BaseModel):
    """The ticket's state after the change, so each event stands on its own."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    number: int | None = Field(
        None,
        description="The ticket's short number, shown to people as `#482913`; unique, "
        "never reused. None only on tickets opened before numbers existed.",
        examples=[482913],
    )
    status: Status
    priority: Priority
    category: Category
    channel: Channel
    group: str
    assignee: str | None = None
    escalation_level: int = Field(0, ge=0, le=3)
    requester_id: str
    requester_tier: str = "standard"
    created_at: datetime


class ArticleSuggestion(BaseModel):
    """A help article that may answer the ticket, as the requester is shown it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        examples=["usdt-trc20-withdrawal-pending-en"],
    )
    title: str = Field(max_length=200)
    language: str = Field(max_length=16, examples=["zh-CN", "en"])


class TicketCreated(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.created"

    ticket_id: str
    ticket: TicketSummary
    requester: Requester
    subject: str
    crypto: CryptoContext | None = None
    secret_redacted: bool = False
    follow_up_of: TicketRef | None = Field(
        None,
        description="The earlier ticket of the same requester this one follows up "
        "(a reply to a closed ticket opens one).",
    )
    suggested_articles: list[ArticleSuggestion] = Field(
        default_factory=list,
        max_length=3,
        description="Help articles that may answer the ticket, best first (shown in the "
        "acknowledgement and on the status page; public page /help/articles/{id} at intake).",
    )


class TicketMessageAdded(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.message_added"

    ticket_id: str
    ticket: TicketSummary
    message_id: str
    author: Author
    public: bool = True
    body: str | None = Field(None, description="Public messages only; already redacted.")
    secret_redacted: bool = False
    unverified: bool = Field(
        False,
        description="Claimed to come from the requester by a sender who could not be "
        "verified (mail from another address): held as internal, never the requester's words.",
    )
    incident_id: str | None = Field(
        None, description="A system message closing an incident: its resolution text."
    )


class TicketStatusChanged(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.status_changed"

    ticket_id: str
    ticket: TicketSummary
    old: Status
    new: Status
    incident_id: str | None = Field(None, description="Set when resolving an incident did it.")


class TicketPriorityChanged(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.priority_changed"

    ticket_id: str
    ticket: TicketSummary
    old: Priority
    new: Priority
    reason: str | None = None


class TicketAssigned(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.assigned"

    ticket_id: str
    ticket: TicketSummary
    assignee: str | None
    group: str


class TicketEscalated(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.escalated"

    ticket_id: str
    ticket: TicketSummary
    level: int = Field(ge=1, le=3)
    reason: Literal["requester_request", "agent", "sla_breach", "low_rating"]
    cause_id: str | None = Field(None, description="Event id that caused it, if any.")


class TicketReopened(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.reopened"

    ticket_id: str
    ticket: TicketSummary
    reason: str = "requester_reply"


class TicketSolvedByArticle(Contract):
    """The requester said a help article solved their problem (deflection). The ticket's
    `ticket.status_changed` to solved follows it."""

    event_type: ClassVar[str] = "helpstream.ticket.solved_by_article"

    ticket_id: str
    ticket: TicketSummary
    article_id: str = Field(max_length=100, examples=["usdt-trc20-withdrawal-pending-en"])
    language: str = Field(max_length=16, examples=["zh-CN", "en"])
    old: Status = Field(description="The status the ticket had before.")


# --- incidents (intake) ------------------------------------------------------------


class IncidentScope(BaseModel):
    """Which tickets an incident is about: all given facts must match (keywords: any one).
    Asset and network compare case-insensitively; the window bounds when a ticket was opened."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Category | None = Field(None, examples=["withdrawal_delay"])
    asset: str | None = Field(None, min_length=1, max_length=16, examples=["USDT"])
    network: str | None = Field(None, min_length=1, max_length=32, examples=["TRC20"])
    keywords: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Any one found in the subject or description (case-insensitive).",
        examples=[["stuck", "卡住"]],
    )
    opened_from: datetime | None = Field(None, description="Tickets opened at or after this.")
    opened_until: datetime | None = Field(
        None, description="Tickets opened before this; empty: while the incident is open."
    )

    @field_validator("keywords")
    @classmethod
    def _short_words(cls, value: list[str]) -> list[str]:
        if any(not 1 <= len(word.strip()) <= 64 for word in value):
            raise ValueError("each keyword holds 1 to 64 characters")
        return [word.strip() for word in value]


class IncidentText(BaseModel):
    """Public text in each requester language (zh-CN and en)."""

    en: str = Field(
        min_length=1, max_length=4000, examples=["TRC20 withdrawals resume at 14:00 UTC."]
    )
    zh_cn: str = Field(
        min_length=1, max_length=4000, alias="zh-CN", examples=["TRC20 提现将于 UTC 14:00 恢复。"]
    )

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    def for_locale(self, locale: str) -> str:
        return self.zh_cn if locale.lower().startswith("zh") else self.en


class IncidentDeclared(Contract):
    """Subject: the incident id (incident events are keyed by incident, ticket events by ticket)."""

    event_type: ClassVar[str] = "helpstream.incident.declared"

    incident_id: str
    title: IncidentText
    scope: IncidentScope
    status_text: IncidentText
    declared_by: str = Field(max_length=128, description="The API key that declared it.")


class IncidentUpdated(Contract):
    event_type: ClassVar[str] = "helpstream.incident.updated"

    incident_id: str
    update_id: str
    text: IncidentText
    linked: int = Field(ge=0, description="Tickets linked when the update was posted.")


class IncidentResolved(Contract):
    event_type: ClassVar[str] = "helpstream.incident.resolved"

    incident_id: str
    text: IncidentText
    ticket_status: Literal["solved", "pending"]
    linked: int = Field(ge=0)


class TicketLinkedToIncident(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.linked_to_incident"

    ticket_id: str
    ticket: TicketSummary
    incident_id: str
    by: Literal["scope", "agent"] = Field(description="Matched the scope, or linked by hand.")


class TicketUnlinkedFromIncident(Contract):
    event_type: ClassVar[str] = "helpstream.ticket.unlinked_from_incident"

    ticket_id: str
    ticket: TicketSummary
    incident_id: str


class TicketIncidentUpdate(Contract):
    """One incident update as one linked ticket's requester hears it: in their language.
    Requesters with several linked tickets get one of these per ticket and hear once
    (notifier keys the delivery by `update_id` and requester)."""

    event_type: ClassVar[str] = "helpstream.ticket.incident_update"

    ticket_id: str
    ticket: TicketSummary
    incident_id: str
    update_id: str
    body: str = Field(description="The update in the requester's language; public.")
    posted_at: datetime


# --- SLA (sla_monitor) --------------------------------------------------------------


class SlaClockData(Contract):
    ticket_id: str
    metric: SlaMetric
    cycle: int = Field(1, ge=1, description="Counts next_reply/periodic cycles.")
    target_s: float = Field(ge=0)
    elapsed_s: float = Field(ge=0)
    remaining_s: float
    deadline: datetime | None
    priority: Priority
    policy: str
    policy_version: str


class SlaApplied(SlaClockData):
    event_type: ClassVar[str] = "helpstream.sla.applied"


class SlaPaused(SlaClockData):
    event_type: ClassVar[str] = "helpstream.sla.paused"

    incident_id: str | None = Field(
        None, description="Set when linking the ticket to this incident paused the clock."
    )


class SlaResumed(SlaClockData):
    event_type: ClassVar[str] = "helpstream.sla.resumed"

    incident_id: str | None = Field(
        None, description="Set when the link to this incident ended (unlinked or resolved)."
    )


class SlaWarning(SlaClockData):
    event_type: ClassVar[str] = "helpstream.sla.warning"

    threshold: float = Field(gt=0, lt=1, examples=[0.75])


class SlaBreached(SlaClockData):
    event_type: ClassVar[str] = "helpstream.sla.breached"

    breached_at: datetime


class SlaFulfilled(SlaClockData):
    event_type: ClassVar[str] = "helpstream.sla.fulfilled"


# --- feedback -------------------------------------------------------------------------


class FeedbackRequested(Contract):
    event_type: ClassVar[str] = "helpstream.feedback.requested"

    ticket_id: str
    survey_id: str
    requester_id: str
    locale: str
    survey_url: str
    expires_at: datetime


class DimensionScores(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attitude: int | None = Field(None, ge=1, le=5)
    speed: int | None = Field(None, ge=1, le=5)
    clarity: int | None = Field(None, ge=1, le=5)


class FeedbackSubmitted(Contract):
    event_type: ClassVar[str] = "helpstream.feedback.submitted"

    ticket_id: str
    survey_id: str
    score: int = Field(ge=1, le=5)
    dimensions: DimensionScores = DimensionScores()
    reasons: list[str] = Field(default_factory=list)
    needs_follow_up: bool = False
    agent: str | None = None
    group: str | None = None
    category: Category | None = None
    channel: Channel | None = None


class FeedbackCancelled(Contract):
    event_type: ClassVar[str] = "helpstream.feedback.cancelled"

    ticket_id: str
    survey_id: str
    reason: str = "ticket_reopened"


# --- notifications (audit trail) --------------------------------------------------


class NotificationOutcome(Contract):
    ticket_id: str
    notification_id: str
    cause_event_id: str
    channel: Literal["email", "webhook", "inbox"]
    template: str
    recipient_kind: Literal["requester", "agent", "lead"]


class NotificationDelivered(NotificationOutcome):
    event_type: ClassVar[str] = "helpstream.notification.delivered"


class NotificationFailed(NotificationOutcome):
    event_type: ClassVar[str] = "helpstream.notification.failed"

    error: str


# --- mail (the inbound mail gateway) ---------------------------------------------


class MailBounced(Contract):
    """A message to `address` came back undeliverable (a DSN or a recognised bounce):
    notifier stops mailing the address for a while. Keyed (CloudEvent `subject`) by the
    ticket when the bounce names one, else by a digest of the address."""

    event_type: ClassVar[str] = "helpstream.mail.bounced"

    address: str = Field(min_length=3, max_length=254, examples=["li.wei@example.com"])
    reason: Literal["hard", "soft", "complaint", "unknown"] = Field(
        "unknown", description="hard = the mailbox does not exist; soft = full, over quota."
    )
    ticket_id: str | None = Field(None, max_length=128)
    diagnostic: str = Field(
        "", max_length=1000, examples=["550 5.1.1 <li.wei@example.com>: user unknown"]
    )


# --- requester data (privacy) --------------------------------------------------------


MAX_ERASURE_TICKETS = 5000
MAX_ERASURE_ATTACHMENTS = 10_000  # 64 hex digits each: well under a record's limit


class RequesterErasureRequested(Contract):
    """Every service erases or anonymizes what it holds about `requester_id` and confirms
    with its own `*.requester_erased` event. Keyed (CloudEvent `subject`) by the requester.
    Carries the requester's ticket ids so services that keep data per ticket need no index
    on requester ids; no contact details, no texts."""

    event_type: ClassVar[str] = "helpstream.requester.erasure_requested"

    erasure_id: str = Field(min_length=1, max_length=64)
    requester_id: str = Field(min_length=1, max_length=128, examples=["u-10086"])
    pseudonym: str = Field(
        min_length=1,
        max_length=64,
        description="What replaces the requester id wherever a record is kept (ratings).",
        examples=["erased-3f9a1c7e2b4d5a6b"],
    )
    ticket_ids: list[str] = Field(default_factory=list, max_length=MAX_ERASURE_TICKETS)
    attachment_digests: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list,
        max_length=MAX_ERASURE_ATTACHMENTS,
        description="sha256 of the files on the requester's tickets that no other "
        "requester's ticket names: the mail gateway deletes their contents. At most "
        f"{MAX_ERASURE_ATTACHMENTS}; empty for retention.",
    )
    tickets_only: bool = Field(
        False,
        description="Retention, not a requester's erasure: erase only the copies of these "
        "(long closed) tickets and keep the requester's other data.",
    )


class RequesterErasedData(Contract):
    """One service's confirmation: what it erased (`counts` per kind of record)."""

    erasure_id: str = Field(min_length=1, max_length=64)
    requester_id: str = Field(min_length=1, max_length=128)
    service: str = Field(min_length=1, max_length=32, examples=["notifier"])
    counts: dict[str, int] = Field(default_factory=dict, examples=[{"inbox_items": 3}])


class SlaRequesterErased(RequesterErasedData):
    event_type: ClassVar[str] = "helpstream.sla.requester_erased"


class FeedbackRequesterErased(RequesterErasedData):
    event_type: ClassVar[str] = "helpstream.feedback.requester_erased"


class NotificationRequesterErased(RequesterErasedData):
    event_type: ClassVar[str] = "helpstream.notification.requester_erased"


class MailRequesterErased(RequesterErasedData):
    """The mail gateway's: attachment contents deleted (`counts.attachments`: files)."""

    event_type: ClassVar[str] = "helpstream.mail.requester_erased"


ERASURE_CONFIRMATIONS: tuple[type[RequesterErasedData], ...] = (
    SlaRequesterErased,
    FeedbackRequesterErased,
    NotificationRequesterErased,
    MailRequesterErased,
)


EVENT_MODELS: dict[str, type[Contract]] = {
    model.event_type: model
    for model in (
        TicketCreated,
        TicketMessageAdded,
        TicketStatusChanged,
        TicketPriorityChanged,
        TicketAssigned,
        TicketEscalated,
        TicketReopened,
        TicketSolvedByArticle,
        TicketLinkedToIncident,
        TicketUnlinkedFromIncident,
        TicketIncidentUpdate,
        IncidentDeclared,
        IncidentUpdated,
        IncidentResolved,
        SlaApplied,
        SlaPaused,
        SlaResumed,
        SlaWarning,
        SlaBreached,
        SlaFulfilled,
        FeedbackRequested,
        FeedbackSubmitted,
        FeedbackCancelled,
        RequesterErasureRequested,
        SlaRequesterErased,
        FeedbackRequesterErased,
        NotificationRequesterErased,
        MailRequesterErased,
        NotificationDelivered,
        NotificationFailed,
        MailBounced,
    )
}

# --- envelope ---------------------------------------------------------------------

DataT = TypeVar("DataT")
CONTENT_TYPE = "application/cloudevents+json"


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0, structured mode; `correlationid` follows a request through every effect."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    source: str = Field(pattern=r"^/helpstream/|^/", examples=["/helpstream/intake"])
    type: str = Field(examples=["helpstream.ticket.created"])
    subject: str = Field(description="The ticket id; also the Kafka key.")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschemaversion: int = Field(1, ge=1)
    correlationid: str = Field(min_length=1, max_length=128)
    traceparent: str | None = Field(
        None,
        max_length=128,
        exclude_if=lambda value: value is None,
        description=(
            "W3C trace context of the span that produced the event (CloudEvents "
            "distributed-tracing extension); a malformed value is ignored, never refused."
        ),
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    )
    data: DataT

    @field_validator("traceparent", mode="before")
    @classmethod
    def _drop_malformed_traceparent(cls, value: object) -> object:
        """A bad trace context loses the trace, never the event."""
        return value if isinstance(value, str) and parse_traceparent(value) else None

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a UTC offset (RFC 3339)")
        return value.astimezone(UTC)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(serialize_as_any=True).encode()


Outgoing: TypeAlias = "tuple[str, CloudEvent[Contract]]"
"""An event to publish with a change, and its topic: written in the same write as the
change, relayed to Kafka afterwards (`shared.unit_of_work`, `shared.outbox`)."""


def make_event(
    data: Contract,
    *,
    source: str,
    time: datetime,
    correlationid: str,
    event_id: str | None = None,
    subject: str | None = None,
) -> CloudEvent[Contract]:
    ticket_id = subject or getattr(data, "ticket_id", None)
    if not isinstance(ticket_id, str):
        raise TypeError(f"{type(data).__name__} has no ticket_id to use as subject")
    return CloudEvent[Contract](
        id=event_id or new_id(),
        source=source,
        type=data.event_type,
        subject=ticket_id,
        time=time,
        dataschemaversion=data.schema_version,
        correlationid=correlationid,
        traceparent=traceparent_for(correlationid),  # None unless tracing is on
        data=data,
    )


class _RawEnvelope(CloudEvent[dict[str, Any]]):
    pass


def parse_event(raw: bytes, accept: frozenset[str] | None = None) -> CloudEvent[Contract]:
    """Decode and validate one event; every failure is `Invalid` with a reason code."""
    return parse_envelope(raw, EVENT_MODELS, accept)


M = TypeVar("M", bound=BaseModel)


def parse_envelope(
    raw: bytes, models: Mapping[str, type[M]], accept: frozenset[str] | None = None
) -> CloudEvent[M]:
    """Decode a CloudEvent whose `type` names one of `models` (events or commands)."""
    try:
        envelope = _RawEnvelope.model_validate_json(raw)
    except ValidationError as exc:
        reason = "invalid_json" if _is_json_error(exc) else "invalid_envelope"
        raise Invalid(reason, _short(exc)) from exc
    model = models.get(envelope.type)
    if model is None or (accept is not None and envelope.type not in accept):
        raise Invalid("unknown_type", f"type {envelope.type!r} is not handled here")
    known_version = getattr(model, "schema_version", 1)
    if envelope.dataschemaversion > known_version:
        raise Invalid(
            "unsupported_version",
            f"{envelope.type} v{envelope.dataschemaversion} is newer than "
            f"v{known_version} known here",
        )
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise Invalid("invalid_data", _short(exc)) from exc
    return CloudEvent[M](**{**envelope.__dict__, "data": data})


def _is_json_error(exc: ValidationError) -> bool:
    return any(err["type"] in ("json_invalid", "json_type") for err in exc.errors())


def _short(exc: ValidationError, limit: int = 500) -> str:
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors()[:5]
    ]
    return "; ".join(parts)[:limit]
