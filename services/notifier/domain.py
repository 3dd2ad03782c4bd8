"""What to tell whom, on which channel, in which language. Pure: no I/O, no clock.

The rules come from `rules.yaml` (loaded by `config.py`); this module only applies them:
which rules an event matches, who receives each message on which channel, which
preferences may silence it, the delivery key that makes it happen once, and how
several updates to one ticket are grouped into a digest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from shared.events import (
    FeedbackRequested,
    FeedbackSubmitted,
    SlaApplied,
    SlaBreached,
    SlaClockData,
    SlaMetric,
    SlaWarning,
    TicketCreated,
    TicketEscalated,
    TicketIncidentUpdate,
    TicketMessageAdded,
    TicketStatusChanged,
)
from shared.ids import stable_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime, timedelta

    from shared.events import Contract

ChannelName = Literal["email", "webhook", "inbox"]
CHANNELS: tuple[ChannelName, ...] = ("email", "webhook", "inbox")
RecipientKind = Literal["requester", "agent", "lead"]

# Template blocks each channel renders (one template file per template and language).
BLOCKS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "webhook": ("title", "body"),
    "inbox": ("title", "body"),
}
DIGEST_TEMPLATE = "digest"
# Only pushed channels are coalesced: an inbox is already a list the user reads at leisure.
DIGEST_CHANNELS = frozenset({"email", "webhook"})


class Audience(StrEnum):
    requester = "requester"
    group = "group"  # the agents of the ticket's group (config: group → contacts)
    leads = "leads"  # the default lead contacts


class Category(StrEnum):
    """Preference categories: what a user can opt out of, per channel."""

    progress = "progress"
    replies = "replies"
    surveys = "surveys"
    security = "security"
    alerts = "alerts"
    breach = "breach"


MANDATORY = frozenset({Category.security, Category.breach})
# Every message about a hacked account or a scam is a security notice: never muted.
SECURITY_TICKET_CATEGORIES = frozenset({"account_security", "scam_report"})


@dataclass(frozen=True)
class Rule:
    name: str
    event_type: str
    template: str
    audience: tuple[Audience, ...]
    category: Category
    channels: tuple[ChannelName, ...]
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    digest: bool = False
    # waits (bounded) for the ticket's promised first reply time before it goes out
    wait_for_sla: bool = False

    def matches(self, event_type: str, facts: Mapping[str, Any]) -> bool:
        if event_type != self.event_type:
            return False
        return all(facts.get(name) in allowed for name, allowed in self.when.items())


@dataclass(frozen=True)
class Contacts:
    emails: tuple[str, ...] = ()
    webhook: str | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    languages: tuple[str, ...] = ("en", "zh-CN")
    fallback_language: str = "en"
    agent_language: str = "en"
    agent_timezone: str = "UTC"
    groups: Mapping[str, Contacts] = field(default_factory=dict)
    leads: Contacts = Contacts()

    def matching(self, event_type: str, facts: Mapping[str, Any]) -> list[Rule]:
        return [rule for rule in self.rules if rule.matches(event_type, facts)]

    def languages_of(self, rule: Rule) -> tuple[str, ...]:
        """Every language a rule's template may be rendered in (checked at start)."""
        if Audience.requester in rule.audience:
            return self.languages
        return (self.agent_language,)


@dataclass(frozen=True)
class Requester:
    id: str
    email: str | None
    locale: str = "en"
    timezone: str = "UTC"


@dataclass(frozen=True)
class TicketFacts:
    """What the notifier remembers of a ticket from earlier events."""

    ticket_id: str
    requester: Requester | None = None
    subject: str | None = None
    created_by: str | None = None  # id of the ticket.created that named the requester
    group: str | None = None
    category: str | None = None
    first_reply_due: datetime | None = None
    number: int | None = None  # the short number people say (`#482913`)


@dataclass(frozen=True)
class FactUpdate:
    """What one event taught about its ticket; None: the event did not say (kept as is)."""

    ticket_id: str
    group: str | None = None
    category: str | None = None
    number: int | None = None
    first_reply_due: datetime | None = None

    def __bool__(self) -> bool:
        return any(
            v is not None for v in (self.group, self.category, self.number, self.first_reply_due)
        )


@dataclass(frozen=True)
class FirstFacts:
    """Who a ticket belongs to and what it is about: kept from its first `ticket.created`."""

    ticket_id: str
    requester: Requester
    subject: str | None
    created_by: str  # the id of that event


@dataclass(frozen=True)
class Preferences:
    """Per requester: channel → categories muted. Mandatory categories are never muted."""

    opt_out: Mapping[str, frozenset[Category]] = field(default_factory=dict)

    def allows(self, channel: str, category: Category, mandatory: bool) -> bool:
        return mandatory or category not in self.opt_out.get(channel, frozenset())


def unmutable(opt_out: Mapping[Any, Iterable[Category]]) -> list[str]:
    """The `channel:category` pairs a preference update may not mute (answered with 422)."""
    return sorted(f"{ch}:{cat}" for ch, cats in opt_out.items() for cat in cats if cat in MANDATORY)


@dataclass(frozen=True)
class Recipient:
    kind: RecipientKind
    channel: ChannelName
    address: str  # email address, webhook URL, or requester id (inbox)
    user_id: str | None  # requester id, for preferences and the inbox
    language: str
    timezone: str


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient on one channel, caused by one event."""

    key: str
    event_id: str
    event_type: str
    event_time: datetime
    correlation_id: str
    ticket_id: str
    rule: str
    template: str
    category: Category
    mandatory: bool
    digest: bool
    recipient: Recipient
    values: Mapping[str, Any]
    wait_for_sla: bool = False  # held until the promised time is known (or the wait ends)


def delivery_key(event_id: str, channel: str, address: str) -> str:
    """Same event, channel and recipient → same key, however often the event is redelivered."""
    return stable_id(event_id, channel, address)


def once_per(event: Incoming) -> str:
    """What a delivery happens once for: the event, or for an incident update the update,
    so a requester with several linked tickets hears it once."""
    if isinstance(event.data, TicketIncidentUpdate):
        return f"incident-update:{event.data.update_id}"
    return event.id


def language(locale: str, languages: Sequence[str], fallback: str) -> str:
    """Exact locale, else the first language with the same primary subtag, else the fallback."""
    wanted = locale.replace("_", "-").lower()
    for lang in languages:
        if lang.lower() == wanted:
            return lang
    primary = wanted.split("-")[0]
    for lang in languages:
        if lang.lower().split("-")[0] == primary:
            return lang
    return fallback


# --- events → facts (for conditions) and values (for templates) --------------------------


def facts_of(data: Contract) -> dict[str, Any]:
    """The fields rules may test in `when:`."""
    facts: dict[str, Any] = {}
    summary = getattr(data, "ticket", None)
    if summary is not None:
        facts.update(
            status=summary.status.value,
            priority=summary.priority.value,
            category=summary.category.value,
            group=summary.group,
            escalation_level=summary.escalation_level,
        )
    if isinstance(data, TicketCreated):
        facts["secret_redacted"] = data.secret_redacted
    elif isinstance(data, TicketMessageAdded):
        facts.update(
            author=data.author.value,
            public=data.public,
            secret_redacted=data.secret_redacted,
            incident=data.incident_id is not None,
        )
    elif isinstance(data, TicketStatusChanged):
        facts.update(old=data.old.value, new=data.new.value, incident=data.incident_id is not None)
    elif isinstance(data, TicketEscalated):
        facts.update(level=data.level, reason=data.reason)
    elif isinstance(data, SlaClockData):
        facts.update(metric=data.metric.value, priority=data.priority.value)
    elif isinstance(data, FeedbackSubmitted):
        facts.update(score=data.score, needs_follow_up=data.needs_follow_up)
        if data.category is not None:
            facts["category"] = data.category.value
        if data.group is not None:
            facts["group"] = data.group
    return facts


def values_of(data: Contract, ticket: TicketFacts) -> dict[str, Any]:
    """What templates may print. Bodies only of public messages (already redacted)."""
    values: dict[str, Any] = {
        "ticket_id": ticket.ticket_id,
        "subject": ticket.subject,
        "first_reply_due": ticket.first_reply_due,
    }
    summary = getattr(data, "ticket", None)
    number = getattr(summary, "number", None) or ticket.number
    values.update(ticket_ref(ticket.ticket_id, number))
    if summary is not None:
        values.update(
            status=summary.status.value,
            priority=summary.priority.value,
            category=summary.category.value,
            group=summary.group,
            assignee=summary.assignee,
        )
    if isinstance(data, TicketCreated):
        values["subject"] = data.subject
        values["suggested_articles"] = [a.model_dump() for a in data.suggested_articles]
    elif isinstance(data, TicketMessageAdded):
        values["body"] = data.body if data.public else None
    elif isinstance(data, TicketStatusChanged):
        values.update(old=data.old.value, new=data.new.value)
    elif isinstance(data, TicketIncidentUpdate):
        values.update(body=data.body, posted_at=data.posted_at)
    elif isinstance(data, TicketEscalated):
        values.update(level=data.level, reason=data.reason)
    elif isinstance(data, SlaClockData):
        values.update(
            metric=data.metric.value,
            deadline=data.deadline,
            remaining_s=data.remaining_s,
            priority=data.priority.value,
            policy=data.policy,
        )
        if isinstance(data, SlaWarning):
            values["threshold"] = data.threshold
        if isinstance(data, SlaBreached):
            values["breached_at"] = data.breached_at
    elif isinstance(data, FeedbackRequested):
        values.update(survey_url=data.survey_url, expires_at=data.expires_at)
    elif isinstance(data, FeedbackSubmitted):
        values.update(
            score=data.score,
            reasons=list(data.reasons),
            agent=data.agent,
            attitude=data.dimensions.attitude,
            speed=data.dimensions.speed,
            clarity=data.dimensions.clarity,
        )
    return values


def ticket_ref(ticket_id: str, number: int | None) -> dict[str, Any]:
    """`ticket_number` (None before numbers existed) and `ticket_ref`, what people read:
    `#482913`, else the internal id."""
    valid = number if isinstance(number, int) and number > 0 else None
    return {"ticket_number": valid, "ticket_ref": f"#{valid}" if valid else ticket_id}


def first_reply_due(data: Contract) -> datetime | None:
    """The promised first reply time, from sla_monitor's `sla.applied`."""
    if isinstance(data, SlaApplied) and data.metric == SlaMetric.first_reply:
        return data.deadline
    return None


def requester_of(data: Contract, ticket: TicketFacts) -> Requester | None:
    if isinstance(data, TicketCreated) and ticket.requester is None:
        r = data.requester
        return Requester(r.id, r.email, r.locale, r.timezone)
    if isinstance(data, FeedbackRequested):
        known = ticket.requester
        if known is not None and known.id == data.requester_id:
            return Requester(known.id, known.email, data.locale, known.timezone)
        return Requester(data.requester_id, None, data.locale)
    return ticket.requester


# --- planning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """An event as the planner sees it."""

    id: str
    type: str
    time: datetime
    correlation_id: str
    data: Contract


@dataclass(frozen=True)
class Planned:
    deliveries: list[Delivery]
    muted: list[tuple[str, Category]]  # (channel, category) a preference silenced


def plan(
    rules: RuleSet,
    event: Incoming,
    ticket: TicketFacts,
    preferences: Preferences,
    *,
    requester_webhook: bool,
) -> Planned:
    """Every message this event owes, after preferences; one per (channel, recipient)."""
    facts = facts_of(event.data)
    ticket_category = facts.get("category") or ticket.category
    group = facts.get("group") or ticket.group
    values = values_of(event.data, ticket)
    requester = requester_of(event.data, ticket)
    out: dict[tuple[str, str], Delivery] = {}
    muted: list[tuple[str, Category]] = []
    for rule in rules.matching(event.type, facts):
        mandatory = rule.category in MANDATORY or ticket_category in SECURITY_TICKET_CATEGORIES
        for recipient in _recipients(rules, rule, requester, group, requester_webhook):
            if recipient.kind == "requester" and not preferences.allows(
                recipient.channel, rule.category, mandatory
            ):
                muted.append((recipient.channel, rule.category))
                continue
            slot = (recipient.channel, recipient.address)
            if slot in out:
                continue
            out[slot] = Delivery(
                key=delivery_key(once_per(event), recipient.channel, recipient.address),
                event_id=event.id,
                event_type=event.type,
                event_time=event.time,
                correlation_id=event.correlation_id,
                ticket_id=ticket.ticket_id,
                rule=rule.name,
                template=rule.template,
                category=rule.category,
                mandatory=mandatory,
                digest=rule.digest and recipient.channel in DIGEST_CHANNELS,
                recipient=recipient,
                values=values,
                wait_for_sla=rule.wait_for_sla,
            )
    return Planned(list(out.values()), muted)


def _recipients(
    rules: RuleSet,
    rule: Rule,
    requester: Requester | None,
    group: str | None,
    requester_webhook: bool,
) -> list[Recipient]:
    found: list[Recipient] = []
    for audience in rule.audience:
        if audience == Audience.requester:
            if requester is None:
                continue
            lang = language(requester.locale, rules.languages, rules.fallback_language)
            for channel in rule.channels:
                address = {
                    "email": requester.email,
                    "webhook": requester.id if requester_webhook else None,
                    "inbox": requester.id,
                }[channel]
                if address is not None:
                    found.append(
                        Recipient(
                            "requester", channel, address, requester.id, lang, requester.timezone
                        )
                    )
            continue
        if audience == Audience.group:
            contacts = rules.groups.get(group or "") or rules.leads
            kind: RecipientKind = "agent" if group in rules.groups else "lead"
        else:
            contacts, kind = rules.leads, "lead"
        for channel in rule.channels:
            addresses: tuple[str, ...] = ()
            if channel == "email":
                addresses = contacts.emails
            elif channel == "webhook" and contacts.webhook:
                addresses = (contacts.webhook,)
            for address in addresses:
                found.append(
                    Recipient(
                        kind, channel, address, None, rules.agent_language, rules.agent_timezone
                    )
                )
    return found


# --- digest -------------------------------------------------------------------------------


def digest_id(ticket_id: str, channel: str, address: str) -> str:
    """Updates to one ticket for one recipient on one channel share a digest."""
    return stable_id("digest", ticket_id, channel, address)


def digest_message_key(item_keys: Iterable[str]) -> str:
    """The key of one coalesced message: the same items always give the same key."""
    keys = sorted(item_keys)
    return keys[0] if len(keys) == 1 else stable_id("digest-message", *keys)


def digest_due(first_at: datetime, window: timedelta) -> datetime:
    return first_at + window


def sla_wait_id(ticket_id: str, channel: str, address: str) -> str:
    """Held acknowledgements wait apart from digests: they leave on their own clock."""
    return stable_id("sla-wait", ticket_id, channel, address)


def waits_for_sla(d: Delivery, ticket: TicketFacts | None) -> bool:
    """Held: it prints the promised first reply time, and that time is not known yet."""
    return d.wait_for_sla and (ticket is None or ticket.first_reply_due is None)


def sla_known(data: Contract) -> str | None:
    """The ticket whose promised first reply time this event brings, if any."""
    if isinstance(data, SlaApplied) and data.metric == SlaMetric.first_reply:
        return data.ticket_id
    return None


# --- retries --------------------------------------------------------------------------------


def backoff_delay(attempt: int, base_s: float, cap_s: float, jitter: float) -> float:
    """Exponential backoff, equal jitter: half the step fixed, half random (`jitter` in [0, 1))."""
    step = min(cap_s, base_s * math.pow(2, max(0, attempt - 1)))
    return step / 2 + step / 2 * jitter


def fact_updates(ticket_id: str, data: Contract) -> FactUpdate:
    """What an event teaches about its ticket (replays teach the same).

    Who the ticket belongs to is not among it: see `first_facts`."""
    summary = getattr(data, "ticket", None)
    return FactUpdate(
        ticket_id,
        group=summary.group if summary is not None else None,
        category=summary.category.value if summary is not None else None,
        number=getattr(summary, "number", None) or None,
        first_reply_due=first_reply_due(data),
    )


def first_facts(ticket_id: str, event_id: str, data: Contract) -> FirstFacts | None:
    """Facts only a ticket's first `ticket.created` may set: who is mailed, and about what.

    A later `ticket.created` for the same ticket (a replay carries the same event id; a
    forgery or a misbehaving producer another) never redirects mail or status links."""
    if not isinstance(data, TicketCreated):
        return None
    r = data.requester
    return FirstFacts(
        ticket_id, Requester(r.id, r.email, r.locale, r.timezone), data.subject, event_id
    )


def is_repeated_creation(event_id: str, data: Contract, ticket: TicketFacts) -> bool:
    """A `ticket.created` that is not the one that created the ticket."""
    return isinstance(data, TicketCreated) and ticket.created_by not in (None, event_id)
