"""Use cases: take a command, apply it to a ticket, store state and events together.

The HTTP API and the `helpstream.commands` consumer both come through here, so the
two doors behave the same. Commands from Kafka are applied in batches: one read of
all the tickets a batch touches and one write back.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from services.intake.audit import service_name
from services.intake.auth import required_scope, verify_command
from services.intake.domain import (
    DEFAULT_ESCALATION,
    DEFAULT_LIMITS,
    DomainError,
    EscalationPolicy,
    EscalationReason,
    Message,
    Ticket,
    TicketLimitExceeded,
    TicketLimits,
    ticket_number,
)
from services.intake.ports import NewTicket, TicketChange
from services.intake.triage import triage
from shared.command_signing import DEFAULT_REPLAY_WINDOW_S, SignatureError, read_headers
from shared.commands import (
    COMMAND_MODELS,
    INCIDENT_COMMANDS,
    AddMessage,
    Attachment,
    EscalateTicket,
    OpenTicket,
    ReceiveMail,
    SolveByArticle,
    UpdateTicket,
    parse_command,
)
from shared.errors import Invalid, Retryable
from shared.events import (
    Author,
    Category,
    Channel,
    CryptoContext,
    FeedbackSubmitted,
    Priority,
    Requester,
    SlaBreached,
    SlaMetric,
    Status,
    TicketRef,
    make_event,
)
from shared.ids import new_id, stable_id
from shared.kafka import Rejected, appended_at, decode_events
from shared.redaction import OFF_LOOP_CHARS, REDACTION_WARNING, Redaction, redact, redact_async

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import datetime

    from aiokafka.structs import ConsumerRecord

    from services.intake.audit import AuditEntry, AuditTrail
    from services.intake.auth import ApiKey, CommandKeys
    from services.intake.faq import ArticleIndex
    from services.intake.incident_service import IncidentService
    from services.intake.metrics import IntakeMetrics
    from services.intake.ports import TicketRepository
    from services.intake.store import GroupedOpens
    from services.intake.triage import TriageRules
    from shared.clock import Clock
    from shared.commands import Command
    from shared.events import CloudEvent, Contract, Outgoing
    from shared.topics import Topics

SOURCE = "/helpstream/intake"
SAVE_ATTEMPTS = 5


class TicketNotFound(DomainError):
    code = "ticket_not_found"

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"no ticket {ticket_id!r}")


class IdempotencyMismatch(DomainError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used before with a different request body")


class FollowUpNotFound(DomainError):
    """One answer for a missing ticket and another requester's: a caller learns nothing
    about tickets that are not its requester's."""

    code = "follow_up_not_found"

    def __init__(self, reference: str) -> None:
        # Echoed into problem bodies and DLQ headers: a caller's text, so kept secret-free.
        super().__init__(f"no ticket {safe_reference(reference)!r} of this requester to follow up")


class UnknownArticle(DomainError):
    code = "unknown_article"

    def __init__(self, article_id: str) -> None:
        super().__init__(f"no help article {article_id!r}")


class ConcurrentChange(DomainError):
    code = "concurrent_change"

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} kept changing while we wrote; try again")


@dataclass(frozen=True)
class Opened:
    ticket: Ticket
    created: bool  # False: an earlier request with the same key made this ticket


@dataclass(frozen=True)
class Changed:
    ticket: Ticket
    message: Message | None  # the message an AddMessage added
    replayed: bool = False  # True: an earlier request with the same Idempotency-Key did it


@dataclass(frozen=True)
class Escalations:
    """When automatic escalation applies (by default every breach and every low rating)."""

    on_breach: frozenset[SlaMetric] = frozenset(
        {SlaMetric.first_reply, SlaMetric.next_reply, SlaMetric.resolution}
    )
    on_follow_up: bool = True
    policy: EscalationPolicy = DEFAULT_ESCALATION


CRYPTO_TEXT_FIELDS = ("asset", "network", "tx_hash", "address", "withdrawal_id", "deposit_id")


async def _redact_crypto(
    crypto: CryptoContext | None, redact: Callable[[str], Awaitable[Redaction]]
) -> tuple[CryptoContext | None, set[str]]:
    """Structured fields are free text too: a seed phrase pasted into `address` is a leak."""
    if crypto is None:
        return None, set()
    changes: dict[str, str] = {}
    kinds: set[str] = set()
    for name in CRYPTO_TEXT_FIELDS:
        value = getattr(crypto, name)
        if value:
            result = await redact(value)
            if result.redacted:
                changes[name] = result.text
                kinds.update(result.kinds)
    return (crypto.model_copy(update=changes) if changes else crypto), kinds


async def _redact_attachments(
    attachments: Sequence[Attachment], redact: Callable[[str], Awaitable[Redaction]]
) -> tuple[list[Attachment], set[str]]:
    """A file name is typed by the requester (``my seed words.txt`` or the words themselves),
    and a URL can carry them in its path or query."""
    kept: list[Attachment] = []
    kinds: set[str] = set()
    for attachment in attachments:
        changes: dict[str, str] = {}
        for name in ("name", "url"):
            value = getattr(attachment, name)
            if value:
                result = await redact(value)
                if result.redacted:
                    changes[name] = result.text
                    kinds.update(result.kinds)
        kept.append(attachment.model_copy(update=changes) if changes else attachment)
    return kept, kinds


NEW_MAIL_PREFIX = "mail:"  # the subject of a ReceiveMail that threads into no ticket
MailOutcome = Literal["reply", "unverified", "follow_up", "new_ticket"]


def is_new_mail(subject: str) -> bool:
    return subject.startswith(NEW_MAIL_PREFIX)


def mail_requester_id(address: str) -> str:
    """A requester known only by an address gets an id that does not spell it out."""
    return "mail-" + hashlib.sha256(address.lower().encode()).hexdigest()[:24]


def mail_decision(mail: ReceiveMail, ticket: Ticket | None) -> tuple[Command, str, MailOutcome]:
    """A received mail as the command it becomes, the ticket (or caller reference) it is
    for, and the outcome counted.

    - The requester writing into an open ticket: their reply (which reopens a solved one).
    - Anyone else writing into it: an unverified message, held internal, never their words.
    - The requester writing into a closed ticket: a follow-up ticket linked to it.
    - Anything else (threads nowhere, or a stranger answering a closed ticket): a new
      ticket from the sender, linked to nothing, so a stranger learns nothing of the old."""
    sender = mail.sender.lower()
    theirs = ticket is not None and (ticket.requester.email or "").lower() == sender
    if ticket is not None and ticket.status != Status.closed:
        claimed = f"{mail.sender_name} <{mail.sender}>" if mail.sender_name else mail.sender
        reply = AddMessage(
            author=Author.requester,
            body=mail.body,
            attachments=mail.attachments,
            verified=theirs,
            claimed_from=None if theirs else claimed,
        )
        return reply, ticket.id, "reply" if theirs else "unverified"
    if ticket is not None and theirs:
        follow_up = OpenTicket(
            requester=ticket.requester,
            channel=Channel.email,
            subject=mail.subject.strip() or ticket.subject,
            description=mail.body,
            attachments=mail.attachments,
            follow_up_of=ticket.id,
        )
        return follow_up, f"{NEW_MAIL_PREFIX}{ticket.id}", "follow_up"
    requester = Requester(id=mail_requester_id(mail.sender), email=mail.sender, locale=mail.locale)
    subject = mail.subject.strip() or (
        "(无主题)" if mail.locale.startswith("zh") else "(no subject)"
    )
    opened = OpenTicket(
        requester=requester,
        channel=Channel.email,
        subject=subject,
        description=mail.body,
        attachments=mail.attachments,
    )
    return opened, f"{NEW_MAIL_PREFIX}{mail_requester_id(mail.sender)}", "new_ticket"


def safe_reference(value: str) -> str:
    """A caller's reference (correlation id, command id, Idempotency-Key, requester or agent
    id) as intake may keep and pass on: unchanged, unless it holds a secret; then a stable
    digest of it, so the same reference still matches itself (dedupe, identity) and the
    secret is kept nowhere. References travel into every event, store and log."""
    if not redact(value).redacted:
        return value
    return "redacted-" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _safe_ids(cmd: Command) -> Command:
    changes: dict[str, str] = {}
    for name in ("author_id", "assignee", "group"):
        value = getattr(cmd, name, None)
        if isinstance(value, str) and (safe := safe_reference(value)) != value:
            changes[name] = safe
    return cmd.model_copy(update=changes) if changes else cmd


def request_hash(cmd: Command) -> str:
    return hashlib.sha256(f"{cmd.command_type} {cmd.model_dump_json()}".encode()).hexdigest()


def applied_request(key: str, digest: str) -> str:
    """What the applied-ids ring keeps for a change made with an Idempotency-Key: the key
    (also the change's command id) and the digest of its body, so one ring answers both
    "was this applied?" and "with this body?"."""
    return f"{key}#{digest}"


def earlier_request(applied: Sequence[str], key: str) -> str | None:
    """The body digest recorded with `key`, if a change with that key was applied."""
    for entry in applied:
        recorded, separator, digest = entry.rpartition("#")
        if separator and recorded == key:
            return digest
    return None


def escalation_cause_id(event: CloudEvent[Contract]) -> str:
    """What an automatic escalation is for: a low rating escalates once per survey, however
    often its score changes (each change is a new event); anything else once per event."""
    if isinstance(event.data, FeedbackSubmitted):
        return f"low_rating:{event.data.survey_id}"
    return event.id


FIRST_SEEN_LIMIT = 200_000  # records whose first reading is remembered for retries


def _command_type(value: bytes | None) -> str:
    """The type of a command that was opened (valid JSON), for a metric label."""
    kind = json.loads(value or b"{}").get("type")
    return kind if isinstance(kind, str) and kind in COMMAND_MODELS else "unknown"


class CommandOpener(Protocol):
    """Opens the sealed fields of commands (`shared.keyring.EventOpener`)."""

    async def open_values(
        self, values: Sequence[bytes | None]
    ) -> list[tuple[bytes | None, int]]: ...


class TicketService:
    def __init__(
        self,
        *,
        store: TicketRepository,
        clock: Clock,
        topics: Topics,
        rules: TriageRules,
        metrics: IntakeMetrics,
        keys: CommandKeys,
        escalations: Escalations | None = None,
        on_events: Callable[[int], None] = lambda _: None,
        limits: TicketLimits = DEFAULT_LIMITS,
        replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
        answers: ArticleIndex | None = None,
        incidents: IncidentService | None = None,
        on_deflected: Callable[[Ticket], None] = lambda _: None,
        audit: AuditTrail | None = None,
        opener: CommandOpener | None = None,
        grouped: GroupedOpens | None = None,
    ) -> None:
        self.incidents = incidents
        self._grouped = grouped  # HTTP opens of the same moment share their writes
        self._opener = opener
        self._first_seen: dict[tuple[str, int, int], datetime] = {}
        self._audit = audit
        self._on_deflected = on_deflected  # a ticket solved by an article over Kafka
        self._store = store
        self._keys = keys
        self._replay_window_s = replay_window_s
        self._answers = answers
        self._clock = clock
        self._topics = topics
        self._rules = rules
        self._metrics = metrics
        self._escalations = escalations or Escalations()
        self._limits = limits
        self._on_events = on_events

    # --- opening ----------------------------------------------------------------------

    async def _redact(self, text: str) -> Redaction:
        """Every requester text goes through here: long ones off the event loop, all timed."""
        where = "worker_thread" if len(text) > OFF_LOOP_CHARS else "event_loop"
        started = time.perf_counter()
        result = await redact_async(text)
        self._metrics.redaction_seconds.labels(where).observe(time.perf_counter() - started)
        return result

    async def _redacted_body(self, cmd: Command) -> tuple[Command, Redaction | None]:
        """A message body (and an unverified sender's claimed address) redacted once per
        request, before any save attempt or retry."""
        if not isinstance(cmd, AddMessage):
            return cmd, None
        body = await self._redact(cmd.body)
        kinds = set(body.kinds)
        if cmd.claimed_from is not None:
            claimed = await self._redact(cmd.claimed_from)
            if claimed.redacted:
                kinds.update(claimed.kinds)
                cmd = cmd.model_copy(update={"claimed_from": claimed.text})
        if cmd.attachments:
            attachments, attachment_kinds = await _redact_attachments(cmd.attachments, self._redact)
            kinds.update(attachment_kinds)
            cmd = cmd.model_copy(update={"attachments": attachments})
        for kind in kinds:
            self._metrics.secrets_redacted.labels(kind).inc()
        return cmd, body

    async def _new_ticket(
        self,
        cmd: OpenTicket,
        ticket_id: str,
        number: int | None = None,
        follow_up_of: TicketRef | None = None,
    ) -> Ticket:
        subject, description = await self._redact(cmd.subject), await self._redact(cmd.description)
        crypto, crypto_kinds = await _redact_crypto(cmd.crypto, self._redact)
        attachments, attachment_kinds = await _redact_attachments(cmd.attachments, self._redact)
        kinds = set(subject.kinds) | set(description.kinds) | crypto_kinds | attachment_kinds
        requester = cmd.requester
        if (requester_id := safe_reference(requester.id)) != requester.id:
            requester = requester.model_copy(update={"id": requester_id})
        decided = triage(
            self._rules,
            subject=subject.text,
            description=description.text,
            category=cmd.category.value if cmd.category else None,
            asset=crypto.asset if crypto else None,
            amount=crypto.amount if crypto else None,
            tier=cmd.requester.tier,
        )
        for kind in kinds:
            self._metrics.secrets_redacted.labels(kind).inc()
        ticket = Ticket.open(
            ticket_id=ticket_id,
            requester=requester,
            channel=cmd.channel,
            subject=subject.text,
            description=description.text,
            category=Category(decided.category),
            priority=cmd.priority or Priority(decided.priority),
            group=decided.group,
            now=self._clock.now(),
            crypto=crypto,
            attachments=attachments,
            secret_redacted=bool(kinds),
            warning=self._warning(ticket_id, cmd.requester.locale) if kinds else None,
            number=number,
            follow_up_of=follow_up_of,
            suggested_articles=self._answers.suggest(
                subject=subject.text,
                description=description.text,
                locale=requester.locale,
                category=Category(decided.category),
                asset=crypto.asset if crypto else None,
                network=crypto.network if crypto else None,
            )
            if self._answers is not None
            else (),
        )
        if self.incidents is not None:
            self.incidents.link_new(ticket)
        return ticket

    @staticmethod
    def _warning(seed: str, locale: str) -> tuple[str, str]:
        text = REDACTION_WARNING["zh-CN" if locale.lower().startswith("zh") else "en"]
        return stable_id(seed, "redaction-warning", new_id()), text

    async def open(
        self, cmd: OpenTicket, *, correlation_id: str, open_key: str | None = None
    ) -> Opened:
        """`open_key` makes the request idempotent: the same key returns the first ticket."""
        open_key = safe_reference(open_key) if open_key is not None else None
        digest = request_hash(cmd) if open_key is not None else None
        if open_key is not None:
            existing = await self._store.by_open_key(open_key)
            if existing is not None:
                return self._repeat(existing, digest)
        follow_up_of = None
        if cmd.follow_up_of is not None:
            (follow_up_of,) = await self._follow_ups([cmd])
            if follow_up_of is None:
                raise FollowUpNotFound(cmd.follow_up_of)
        ticket = await self._new_ticket(cmd, new_id(), await self._next_number(), follow_up_of)
        outbox = self._outbox(ticket, correlation_id)
        if not await self._insert(NewTicket(ticket, outbox, self._clock.now(), open_key, digest)):
            assert open_key is not None
            existing = await self._store.by_open_key(open_key)
            assert existing is not None
            return self._repeat(existing, digest)
        self._count_created(ticket)
        self._on_events(len(outbox))
        return Opened(ticket, created=True)

    async def _next_number(self) -> int:
        """An HTTP open's number: shared with the opens of the same moment when grouped."""
        if self._grouped is not None:
            return await self._grouped.next_number()
        (number,) = await self._store.next_numbers(1)
        return number

    async def _insert(self, new: NewTicket) -> bool:
        if self._grouped is not None:
            return await self._grouped.insert(new)
        return await self._store.insert(
            new.ticket, new.events, new.now, open_key=new.open_key, request_hash=new.request_hash
        )

    async def _follow_ups(self, cmds: Sequence[OpenTicket]) -> list[TicketRef | None]:
        """For each command, the ticket its `follow_up_of` names if that ticket exists and
        is the same requester's, else None (one lookup of numbers and one of tickets for a
        whole batch). Counted both ways."""
        ids = await self.resolve_many([c.follow_up_of for c in cmds if c.follow_up_of])
        owners = await self._store.owners(list(set(ids.values())))
        found: list[TicketRef | None] = []
        for cmd in cmds:
            if cmd.follow_up_of is None:
                found.append(None)
                continue
            owner = owners.get(ids.get(cmd.follow_up_of, ""))
            mine = owner is not None and owner[1] == safe_reference(cmd.requester.id)
            found.append(owner[0] if owner is not None and mine else None)
            self._metrics.follow_ups.labels("opened" if mine else "refused").inc()
        return found

    # --- references: ids and numbers -----------------------------------------------------

    async def resolve(self, reference: str) -> str:
        """The id of the ticket `reference` names: its id, or its number (`482913`,
        `#482913`) as people say and type it. `TicketNotFound` for an unknown number."""
        if ticket_number(reference) is None:
            return reference
        ticket_id = await self._store.resolve(reference)
        self._metrics.number_lookups.labels("found" if ticket_id else "missing").inc()
        if ticket_id is None:
            raise TicketNotFound(reference)
        return ticket_id

    async def resolve_many(self, references: Sequence[str]) -> dict[str, str]:
        """`resolve` for a batch, in one lookup; unknown numbers are left out."""
        resolved = await self._store.resolve_many(references)
        for reference in references:
            if ticket_number(reference) is not None:
                outcome = "found" if reference in resolved else "missing"
                self._metrics.number_lookups.labels(outcome).inc()
        return resolved

    async def get(self, reference: str) -> Ticket:
        ticket = await self._store.get(await self.resolve(reference))
        if ticket is None:
            raise TicketNotFound(reference)
        return ticket

    @staticmethod
    def _repeat(existing: tuple[Ticket, str | None], digest: str | None) -> Opened:
        ticket, stored_digest = existing
        if stored_digest is not None and digest is not None and stored_digest != digest:
            raise IdempotencyMismatch()
        return Opened(ticket, created=False)

    def _count_created(self, ticket: Ticket) -> None:
        self._metrics.tickets_created.labels(
            ticket.channel.value, ticket.category.value, ticket.priority.value
        ).inc()

    # --- changes ----------------------------------------------------------------------

    def _apply(
        self, ticket: Ticket, cmd: Command, command_id: str, body: Redaction | None
    ) -> Message | None:
        """Apply one command to a ticket; raises `DomainError` when the state forbids it.
        `body` is `_redacted_body(cmd)`: pure work stays out of the retry loop."""
        cmd = _safe_ids(cmd)
        now = self._clock.now()
        if isinstance(cmd, AddMessage):
            assert body is not None
            by_requester = cmd.author == Author.requester
            try:
                message = ticket.add_message(
                    message_id=stable_id(command_id, "message"),
                    author=cmd.author,
                    author_id=cmd.author_id,
                    body=body.text,
                    public=cmd.public or by_requester,
                    now=now,
                    secret_redacted=body.redacted,
                    warning=(
                        self._warning(command_id, ticket.requester.locale)
                        if body.redacted and by_requester
                        else None
                    ),
                    limits=self._limits,
                    unverified=not cmd.verified,
                    claimed_from=cmd.claimed_from,
                    attachments=cmd.attachments,
                )
            except TicketLimitExceeded as exc:
                self._metrics.ticket_limit_refused.labels(exc.limit).inc()
                raise
            if message.unverified:
                self._metrics.unverified_messages.inc()
            return message
        if isinstance(cmd, UpdateTicket):
            if cmd.status is not None:
                ticket.change_status(cmd.status, now)
            if cmd.priority is not None:
                ticket.change_priority(cmd.priority, now, reason="agent")
            if cmd.assignee is not None or cmd.group is not None:
                ticket.assign(assignee=cmd.assignee, group=cmd.group, now=now)
            return None
        if isinstance(cmd, EscalateTicket):
            reason: EscalationReason = "requester_request" if cmd.by == "requester" else "agent"
            ticket.escalate(reason=reason, now=now, policy=self._escalations.policy)
            self._metrics.escalations.labels(reason).inc()
            return None
        if isinstance(cmd, SolveByArticle):
            article = self._answers.get(cmd.article_id) if self._answers else None
            if article is None:
                raise UnknownArticle(cmd.article_id)
            ticket.solve_by_article(article.id, article.language, now)
            return None
        raise Invalid("unsupported_command", type(cmd).__name__)

    async def change(
        self,
        reference: str,
        cmd: Command,
        *,
        correlation_id: str,
        idempotency_key: str | None = None,
    ) -> Changed:
        """Load, apply, write back if nobody raced us; reload and reapply if somebody did.

        `reference` is the ticket's id or number. With `idempotency_key` the change is made
        once: the key and the body's digest go into the ticket's applied-ids ring in the same
        write as the change (as Kafka command ids do), so a retry finds them and gets the
        first change back; the same key with another body is `IdempotencyMismatch`."""
        ticket_id = await self.resolve(reference)
        key = safe_reference(idempotency_key) if idempotency_key is not None else None
        digest = request_hash(cmd) if key is not None else ""
        command_id = key if key is not None else new_id()
        cmd, body = await self._redacted_body(cmd)
        for _ in range(SAVE_ATTEMPTS):
            ticket = await self._load(ticket_id, reference, key, digest)
            if isinstance(ticket, Changed):
                return ticket
            result = self._apply(ticket, cmd, command_id, body)
            outbox = self._outbox(ticket, correlation_id)
            if not outbox and key is None:
                return Changed(ticket, result)
            applied = [applied_request(key, digest)] if key is not None else []
            if await self._store.save_many(
                [TicketChange(ticket, outbox, applied)], self._clock.now()
            ):
                ticket.version += 1
                if key is not None:
                    self._metrics.idempotent_changes.labels("applied").inc()
                if outbox:
                    self._on_events(len(outbox))
                return Changed(ticket, result)
            self._metrics.save_conflicts.inc()
        raise ConcurrentChange(ticket_id)

    async def _load(
        self, ticket_id: str, reference: str, key: str | None, digest: str
    ) -> Ticket | Changed:
        """The ticket to change, or what an earlier request with the same key changed."""
        if key is None:
            ticket = await self._store.get(ticket_id)
            if ticket is None:
                raise TicketNotFound(reference)
            return ticket
        loaded = await self._store.get_applied(ticket_id)
        if loaded is None:
            raise TicketNotFound(reference)
        ticket, applied = loaded
        earlier = earlier_request(applied, key)
        if earlier is None:
            return ticket
        if earlier != digest:
            self._metrics.idempotent_changes.labels("refused").inc()
            raise IdempotencyMismatch()
        self._metrics.idempotent_changes.labels("replayed").inc()
        message_id = stable_id(key, "message")
        message = next((m for m in ticket.messages if m.id == message_id), None)
        return Changed(ticket, message, replayed=True)

    def _outbox(self, ticket: Ticket, correlation_id: str) -> list[Outgoing]:
        now = self._clock.now()
        correlation_id = safe_reference(correlation_id)
        return [
            (
                self._topics.tickets,
                make_event(data, source=SOURCE, time=now, correlationid=correlation_id),
            )
            for data in ticket.take_events()
        ]

    # --- Kafka: helpstream.commands ------------------------------------------------------

    async def on_commands(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Sequence[Rejected]:
        rejected: list[Rejected] = []
        opens: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]] = []
        changes: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]] = []
        mails: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]] = []
        incident_cmds: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command], str]] = []
        signers: dict[tuple[str, int, int], str] = {}  # record → the key that signed it
        authorized = await self._authorities(records, rejected)
        # sealed fields are opened once the signature (over the sealed bytes) is checked
        opened = (
            await self._opener.open_values([r.value for r, _ in authorized])
            if self._opener is not None
            else [(r.value, 0) for r, _ in authorized]
        )
        for (record, signer), (value, erased) in zip(authorized, opened, strict=True):
            signers[_where(record)] = signer.id
            if erased:  # its sender's data was erased after it was sent: nothing to keep
                self._metrics.commands.labels(_command_type(value), "erased").inc()
                continue
            try:
                command = parse_command(value or b"")
            except Invalid as exc:
                rejected.append(Rejected(record, exc))
                self._metrics.commands.labels("unknown", "rejected").inc()
                continue
            needed = required_scope(command.data)
            if needed not in signer.scopes:
                detail = f"{command.type} needs {needed.value}; key {signer.id} lacks it"
                self._refuse(record, rejected, "insufficient_scope", detail, command.type)
            elif isinstance(command.data, OpenTicket):
                opens.append((record, command))
            elif isinstance(command.data, ReceiveMail):
                mails.append((record, command))
            elif isinstance(command.data, INCIDENT_COMMANDS):
                if self.incidents is None:
                    detail = f"{command.type}: incidents are not handled here"
                    self._refuse(record, rejected, "unsupported_command", detail, command.type)
                else:
                    incident_cmds.append((record, command, signer.id))
            else:
                changes.append((record, command))
        for record, command in await self._from_mail(mails):
            (opens if isinstance(command.data, OpenTicket) else changes).append((record, command))
        audited: list[AuditEntry] = []
        rejected.extend(await self._open_from_commands(opens, signers, audited))
        rejected.extend(await self._change_from_commands(changes, signers, audited))
        await self._write_audit(audited, "commands")
        if incident_cmds and self.incidents is not None:  # after the batch's new tickets
            rejected.extend(await self.incidents.on_commands(incident_cmds))
        return rejected

    async def _from_mail(
        self, mails: Sequence[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]]
    ) -> list[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]]:
        """What each received mail becomes, decided here because intake holds the requester's
        address (one read for the batch). The command keeps its id, so a relay's second
        delivery of a mail is a duplicate of whatever the first became."""
        threaded = {command.subject for _, command in mails if not is_new_mail(command.subject)}
        loaded = await self._store.get_many(list(threaded)) if threaded else {}
        made = []
        for record, command in mails:
            mail = command.data
            assert isinstance(mail, ReceiveMail)
            found = loaded.get(command.subject)
            cmd, subject, outcome = mail_decision(mail, found[0] if found else None)
            self._metrics.mail_received.labels(outcome).inc()
            update = {"data": cmd, "type": cmd.command_type, "subject": subject}
            made.append((record, command.model_copy(update=update)))
        return made

    async def _authorities(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], rejected: list[Rejected]
    ) -> list[tuple[ConsumerRecord[bytes, bytes], ApiKey]]:
        """Each record with the API key that signed it; the rest refused with the reason.
        Same authority as HTTP: a command is only what its key may do (one read a batch)."""
        claims = []
        for record in records:
            try:
                claims.append((record, read_headers(record.headers)))
            except SignatureError as exc:
                self._refuse(record, rejected, exc.reason, exc.detail)
        stored = await self._keys.lookup_many({claim.key_id for _, claim in claims})
        now = self._clock.now()
        if len(self._first_seen) > FIRST_SEEN_LIMIT:
            self._first_seen.clear()
        signed = []
        for record, claim in claims:
            # Where the broker stamps arrival (LogAppendTime), a backlog after an outage
            # leaves fresh commands fresh; elsewhere the window runs to when this process
            # first read the record: a batch retried after a database timeout (a long
            # incident fan-out) is judged as when it arrived, never refused as stale
            # halfway through. A copy published again is another record, judged anew.
            received = appended_at(record) or self._first_seen.setdefault(_where(record), now)
            try:
                key = verify_command(
                    claim,
                    stored[claim.key_id],
                    record.value or b"",
                    received,
                    self._replay_window_s,
                )
            except SignatureError as exc:
                self._refuse(record, rejected, exc.reason, exc.detail)
            else:
                signed.append((record, key))
        return signed

    def _refuse(
        self,
        record: ConsumerRecord[bytes, bytes],
        rejected: list[Rejected],
        reason: str,
        detail: str,
        command_type: str = "unknown",
    ) -> None:
        rejected.append(Rejected(record, Invalid(reason, detail)))
        self._metrics.commands_refused.labels(reason).inc()
        self._metrics.commands.labels(command_type, "rejected").inc()

    def _command_audit(
        self,
        audited: list[AuditEntry],
        signers: dict[tuple[str, int, int], str],
        record: ConsumerRecord[bytes, bytes],
        command: CloudEvent[Command],
        ticket_id: str,
    ) -> None:
        """The trail's entry for a command applied to a ticket: the key that signed it, the
        service it came from. Its id is stable, so a retried batch writes it once."""
        if self._audit is None:
            return
        actor = f"key:{signers.get(_where(record), 'unknown')}"
        entry = self._audit.entry(
            actor,
            command.type,
            ticket_id,
            service=service_name(command.source),
            entry_id=stable_id("audit", actor, ticket_id, safe_reference(command.id)),
        )
        audited.append(entry)

    async def _write_audit(self, audited: list[AuditEntry], flow: str) -> None:
        """One insert for a batch's entries, in the flow that applies it (then emptied)."""
        if self._audit is not None and audited:
            await self._audit.record_many(audited, flow)
        audited.clear()

    async def _open_from_commands(
        self,
        opens: Sequence[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]],
        signers: dict[tuple[str, int, int], str] | None = None,
        audited: list[AuditEntry] | None = None,
    ) -> list[Rejected]:
        """One lookup for the follow-ups, one `$inc` for the numbers, one insert."""
        if not opens:
            return []
        now = self._clock.now()
        rejected: list[Rejected] = []
        cmds = [command.data for _, command in opens if isinstance(command.data, OpenTicket)]
        assert len(cmds) == len(opens)
        valid: list[
            tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command], OpenTicket, TicketRef | None]
        ] = []
        for (record, command), cmd, follow_up_of in zip(
            opens, cmds, await self._follow_ups(cmds), strict=True
        ):
            if cmd.follow_up_of is not None and follow_up_of is None:
                error = FollowUpNotFound(cmd.follow_up_of)
                rejected.append(Rejected(record, Invalid(error.code, str(error))))
                self._metrics.commands.labels(command.type, "rejected").inc()
            else:
                valid.append((record, command, cmd, follow_up_of))
        if not valid:
            return rejected
        batch = []
        numbers = await self._store.next_numbers(len(valid))
        for number, (_, command, cmd, follow_up_of) in zip(numbers, valid, strict=True):
            ticket = await self._new_ticket(cmd, new_id(), number, follow_up_of)
            open_key = f"cmd:{safe_reference(command.id)}"
            batch.append((ticket, self._outbox(ticket, command.correlationid), open_key))
        inserted = await self._store.insert_many(batch, now)
        for position in inserted:
            self._count_created(batch[position][0])
            if audited is not None and signers is not None:
                record, command = valid[position][:2]
                self._command_audit(audited, signers, record, command, batch[position][0].id)
        self._metrics.commands.labels(OpenTicket.command_type, "applied").inc(len(inserted))
        self._metrics.commands.labels(OpenTicket.command_type, "duplicate").inc(
            len(batch) - len(inserted)
        )
        if inserted:
            self._on_events(len(inserted))
        return rejected

    async def _change_from_commands(
        self,
        items: Sequence[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]],
        signers: dict[tuple[str, int, int], str] | None = None,
        audited: list[AuditEntry] | None = None,
    ) -> list[Rejected]:
        """Grouped by ticket in arrival order, whether the subject names it by id or number
        (numbers resolved in one lookup); one read of the tickets, one write back. The
        batch's audit entries are written just before it (stable ids: a save that loses a
        race retries the batch, which writes them once)."""
        if not items:
            return []
        ids = await self.resolve_many(list({command.subject for _, command in items}))
        changes: dict[str, list[tuple[ConsumerRecord[bytes, bytes], CloudEvent[Command]]]] = (
            defaultdict(list)
        )
        for record, command in items:
            changes[ids.get(command.subject, command.subject)].append((record, command))
        rejected: list[Rejected] = []
        loaded = await self._store.get_many(list(changes))
        ops = []
        deflected: list[Ticket] = []
        for ticket_id, items in changes.items():
            if ticket_id not in loaded:
                for record, command in items:
                    rejected.append(Rejected(record, Invalid("ticket_not_found", ticket_id)))
                    self._metrics.commands.labels(command.type, "rejected").inc()
                continue
            ticket, seen = loaded[ticket_id]
            applied_ids: list[str] = []
            outbox: list[Outgoing] = []
            for record, command in items:
                command_id = safe_reference(command.id)
                if command_id in seen:
                    self._metrics.commands.labels(command.type, "duplicate").inc()
                    continue
                data, body = await self._redacted_body(command.data)
                trial = copy.deepcopy(ticket)
                try:
                    self._apply(trial, data, command_id, body)
                except DomainError as exc:
                    rejected.append(Rejected(record, Invalid(exc.code, str(exc))))
                    self._metrics.commands.labels(command.type, "rejected").inc()
                    continue
                ticket = trial
                seen.add(command_id)
                applied_ids.append(command_id)
                outbox.extend(self._outbox(ticket, command.correlationid))
                self._metrics.commands.labels(command.type, "applied").inc()
                if audited is not None and signers is not None:
                    self._command_audit(audited, signers, record, command, ticket_id)
                if isinstance(data, SolveByArticle):
                    deflected.append(ticket)
            if applied_ids:
                ops.append(TicketChange(ticket, outbox, applied_ids))
        if audited is not None:
            await self._write_audit(audited, "commands")  # with the batch's opens: one insert
        if await self._store.save_many(ops, self._clock.now()) < len(ops):
            raise Retryable("a ticket changed while commands were applied; retrying the batch")
        if ops:
            self._on_events(len(ops))
        for ticket in deflected:  # counted once written (a retried batch finds them seen)
            self._on_deflected(ticket)
        return rejected

    # --- Kafka: escalation causes (helpstream.sla, helpstream.feedback) -----------------

    async def on_escalation_causes(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Sequence[Rejected]:
        accepted, rejected = decode_events(records)
        causes: dict[str, list[tuple[CloudEvent[Contract], EscalationReason]]] = defaultdict(list)
        for item in accepted:
            reason = self._escalation_reason(item.value.data)
            if reason is not None:
                causes[item.value.subject].append((item.value, reason))
        if not causes:
            return rejected
        loaded = await self._store.get_many(list(causes))
        ops = []
        audited: list[AuditEntry] = []
        for ticket_id, items in causes.items():
            if ticket_id not in loaded:
                continue  # a ticket of another intake deployment, or long deleted
            ticket, _ = loaded[ticket_id]
            outbox: list[Outgoing] = []
            causes_before = len(ticket.escalation_causes)
            for event, reason in items:
                if ticket.escalate(
                    reason=reason,
                    now=self._clock.now(),
                    policy=self._escalations.policy,
                    cause_id=escalation_cause_id(event),
                ):
                    self._metrics.escalations.labels(reason).inc()
                    if self._audit is not None:  # a service's word changed the ticket
                        cause = escalation_cause_id(event)
                        audited.append(
                            self._audit.entry(
                                f"service:{service_name(event.source)}",
                                f"escalate:{reason}",
                                ticket_id,
                                entry_id=stable_id("audit", "escalation", ticket_id, cause),
                            )
                        )
                outbox.extend(self._outbox(ticket, event.correlationid))
            if outbox or len(ticket.escalation_causes) != causes_before:
                ops.append(TicketChange(ticket, outbox))
        await self._write_audit(audited, "services")  # stable ids: a retry writes them once
        if await self._store.save_many(ops, self._clock.now()) < len(ops):
            raise Retryable("a ticket changed while escalating; retrying the batch")
        if ops:
            self._on_events(len(ops))
        return rejected

    def _escalation_reason(self, data: Any) -> EscalationReason | None:
        if isinstance(data, SlaBreached) and data.metric in self._escalations.on_breach:
            return "sla_breach"
        if isinstance(data, FeedbackSubmitted) and data.needs_follow_up:
            return "low_rating" if self._escalations.on_follow_up else None
        return None


def _where(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int]:
    """A record's place in the log: names it within a batch."""
    return (record.topic, record.partition, record.offset)
