"""Events in, messages out, each at most once per (event, channel, recipient).

The delivery protocol, per batch: note bounced addresses; remember ticket facts; plan the
deliveries (domain), each under a deterministic key; read which of them are done already
(a redelivered batch); send the rest; record each with its outcome. The consumer commits
the batch's offsets only after this returns. What is written, and when:

- **email, webhook** (sent at once): nothing before the send. Once the channel accepted
  the message, the delivery is written for the first time, as sent, together with its
  outcome event (outbox), in one upsert; messages accepted at about the same time are
  recorded together, one write per round (`GroupCommit`). A send keeps its slot
  (`max_parallel_sends`) until it is recorded. A send that fails for good is written
  failed the same way (and its event dead-lettered); a bounced address, failed unsent.
- **inbox**: the item is stored under the delivery key (a second insert of it is a no-op)
  and the delivery is written sent, with its event, in the same batch: no pending write.
- **digest and held acknowledgements**: written pending, added to their digest, then marked
  queued; the flusher sends the digest and writes each item sent or failed.

What a crash leads to (the consumer then reads the batch again):
- before a send: the delivery has no record, so it is sent, once, by the retried batch;
- after the channel accepted a message and before its record was written: the retried
  batch sends it again, with the same Message-ID / Idempotency-Key, so the receiver drops
  it; at most `max_parallel_sends` messages can be in that window at the instant of a
  crash. This is the one resend, and the same as when a pending record was written first:
  a pending record was sent again too, so it bought nothing but a second write;
- after the record: the retried batch finds the delivery sent and sends nothing.
So no notification is ever delivered twice under two ids, and no receiver that drops
repeated ids sees it twice. If the database is away after a send, the outcome waits in
memory (`_unrecorded`) and the retried batch records it instead of sending again.

An acknowledgement (`wait_for_sla` rule) whose ticket has no promised first reply time yet
is not sent by the consumer: it joins the digest queue with its own short deadline
(`ack_sla_wait_s`). The batch bringing the ticket's `sla.applied` makes it due at once and
wakes the flusher, which reads the ticket's facts afresh when it renders; so the consumer
never waits, and the order in which instances see the two events does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from jinja2 import TemplateError

from services.notifier.domain import (
    BLOCKS,
    DIGEST_TEMPLATE,
    Delivery,
    Incoming,
    Preferences,
    Recipient,
    TicketFacts,
    digest_due,
    digest_id,
    digest_message_key,
    fact_updates,
    first_facts,
    is_repeated_creation,
    plan,
    requester_of,
    sla_known,
    sla_wait_id,
    ticket_ref,
    waits_for_sla,
)
from services.notifier.mail import Email
from services.notifier.pages import link_values
from services.notifier.ports import Bounce, DigestItem, InboxItem, Outcome, QueuedItem
from services.notifier.recorder import GroupCommit
from services.notifier.threads import ThreadHeaders
from shared.errors import Invalid, Retryable
from shared.events import (
    FeedbackRequested,
    IncidentDeclared,
    IncidentResolved,
    IncidentUpdated,
    MailBounced,
    NotificationDelivered,
    NotificationFailed,
    TicketCreated,
    make_event,
)
from shared.ids import new_id, stable_id
from shared.kafka import Rejected, decode_events, handler_error, is_transient
from shared.tracing import send_span

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from aiokafka.structs import ConsumerRecord

    from services.notifier.domain import RuleSet
    from services.notifier.inbox import InboxHub
    from services.notifier.metrics import NotifierMetrics
    from services.notifier.ports import LeasedDigest, MailChannel, NotifierRepository
    from services.notifier.settings import NotifierSettings
    from services.notifier.templates import Rendered, Templates
    from services.notifier.webhook import WebhookSender
    from shared.clock import Clock
    from shared.events import CloudEvent, Contract, Outgoing
    from shared.kafka import Accepted
    from shared.topics import Topics

log = structlog.get_logger(__name__)
SOURCE = "/helpstream/notifier"
INCIDENT_UPDATE_TEMPLATE = "incident_update"
# Incident-level events name no ticket: the per-ticket events they cause are what is told.
INCIDENT_EVENTS = (IncidentDeclared, IncidentUpdated, IncidentResolved)
DIGESTS_PER_ROUND = 100  # the most one flusher round sends before it sleeps


class Notifications:
    def __init__(
        self,
        *,
        store: NotifierRepository,
        rules: RuleSet,
        templates: Templates,
        mail: MailChannel,
        webhook: WebhookSender | None,
        hub: InboxHub,
        settings: NotifierSettings,
        clock: Clock,
        metrics: NotifierMetrics,
        topics: Topics,
        on_outbox: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._store = store
        self._rules = rules
        self._templates = templates
        self._mail = mail
        self._webhook = webhook
        self._hub = hub
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._topics = topics
        self._on_outbox = on_outbox
        self._gate = asyncio.Semaphore(settings.max_parallel_sends)
        self._owner = new_id()  # this instance, as the holder of digest leases
        self._lease = timedelta(seconds=settings.digest_lease_s)
        # Accepted by their channel but not yet recorded as sent (the database was away):
        # a retried batch records these instead of sending them again.
        self._unrecorded: dict[str, Outcome] = {}
        self._recording = GroupCommit(self._record_round)
        self._window = timedelta(seconds=settings.digest_window_s)
        self._sla_wait = timedelta(seconds=settings.ack_sla_wait_s)
        self._threads = ThreadHeaders.of(settings)
        self._wake = asyncio.Event()  # held acknowledgements became due: flush now

    # --- the consumer ------------------------------------------------------------------------

    async def on_events(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Sequence[Rejected]:
        accepted, rejected = decode_events(records)
        now = self._clock.now()
        bounces = [item.value for item in accepted if isinstance(item.value.data, MailBounced)]
        accepted = [
            item
            for item in accepted
            if not isinstance(item.value.data, (MailBounced, *INCIDENT_EVENTS))
        ]
        await self._note_bounces(bounces, now)
        events = [item.value for item in accepted]
        if not events:
            return rejected
        await self._store.record_facts(
            [fact_updates(e.subject, e.data) for e in events],
            now,
            first=[
                f for f in (first_facts(e.subject, e.id, e.data) for e in events) if f is not None
            ],
        )
        tickets = await self._store.ticket_facts(e.subject for e in events)
        accepted, repeated = self._without_repeated_creations(accepted, tickets)
        rejected = [*rejected, *repeated]
        requester_ids = {t.requester.id for t in tickets.values() if t.requester} | {
            e.data.requester_id for e in events if isinstance(e.data, FeedbackRequested)
        }
        preferences = await self._store.preferences_of(requester_ids)

        deliveries: list[Delivery] = []
        record_of: dict[str, ConsumerRecord[bytes, bytes]] = {}
        for item in accepted:
            event = item.value
            ticket = tickets.get(event.subject) or TicketFacts(event.subject)
            requester = requester_of(event.data, ticket)
            planned = plan(
                self._rules,
                Incoming(event.id, event.type, event.time, event.correlationid, event.data),
                ticket,
                preferences.get(requester.id, Preferences()) if requester else Preferences(),
                requester_webhook=self._settings.webhook_url is not None,
            )
            for channel, category in planned.muted:
                self._metrics.muted.labels(channel, category.value).inc()
            for d in planned.deliveries:
                if d.key not in record_of:
                    deliveries.append(d)
                    record_of[d.key] = item.record

        held = {
            d.key
            for d in deliveries
            if self._sla_wait > timedelta(0) and waits_for_sla(d, tickets.get(d.ticket_id))
        }
        items, settled = self._inbox_items(
            [d for d in deliveries if d.recipient.channel == "inbox" and d.key not in held]
        )
        await self._store.add_inbox(items)  # delivered: an item stored before is kept as is
        later = {
            d.key for d in deliveries if d.key in held or (d.digest and self._window > timedelta(0))
        }
        states, written = await self._store.claim(
            deliveries, now, settled, write=later | settled.keys()
        )
        self._delivered_to_inbox([d for d in deliveries if d.key in settled and d.key in written])
        fresh = [d for d in deliveries if states.get(d.key) == "pending"]
        for key, state in states.items():
            if state != "pending":
                self._unrecorded.pop(key, None)
        waiting = [d for d in fresh if d.key in held]
        queued = [d for d in fresh if d.key in later and d.key not in held]
        ready = [d for d in fresh if d.key not in later and d.key not in self._unrecorded]
        bouncing = await self._store.bouncing_among(
            (d.recipient.address for d in ready if d.recipient.channel == "email"), now
        )
        unsent = [d for d in ready if _to_bouncing(d.recipient, bouncing)]
        direct = [d for d in ready if not _to_bouncing(d.recipient, bouncing)]
        await self._record_accepted([d.key for d in fresh if d.key in self._unrecorded])
        await self._store.queue(
            [self._digest_entry(d, now) for d in queued]
            + [self._digest_entry(d, now, held=True) for d in waiting],
            now,
        )
        for d in queued:
            self._metrics.digested.labels(d.recipient.channel).inc()
        released = await self._store.release_sla_waits(
            {t for t in (sla_known(e.data) for e in events) if t is not None}, now
        )
        if released:
            self._wake.set()

        results = await asyncio.gather(
            *(self._deliver_and_mark(d) for d in direct), return_exceptions=True
        )
        outcomes: list[Outcome] = [
            self._suppressed(_Notice.of(d), d.key, d.recipient.address, bouncing, now)
            for d in unsent
        ]
        failures: dict[str, Invalid] = {
            key: Invalid("delivery_failed", "a delivery of this event failed earlier")
            for key, state in states.items()
            if state == "failed"
        }
        transient: BaseException | None = None
        done = self._clock.now()
        for d, result in zip(direct, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Invalid):
                if is_transient(result) or not isinstance(result, Exception):
                    transient = result
                    continue
                # Not an outage: this delivery's own fault (a bug on hostile input, say).
                # It fails for good instead of holding up the batch.
                self._metrics.send_errors.labels(d.recipient.channel, type(result).__name__).inc()
                result = handler_error(result)
            if isinstance(result, Invalid):
                outcomes.append(self._failed(_Notice.of(d), d.key, result, done))
                failures[d.key] = result
        await self._store.finish(outcomes, done)
        if outcomes or direct or settled:
            # a backlog's events may wait a little
            self._on_outbox(len(outcomes) + len(direct) + len(settled))
        if transient is not None:
            raise Retryable("some messages could not be sent yet") from transient
        return [*rejected, *self._reject(failures, record_of)]

    async def _note_bounces(self, bounces: Sequence[CloudEvent[Contract]], now: datetime) -> None:
        """Each bounced address is not mailed for `bounce_suppress_s` (a replay sets the same)."""
        found: list[Bounce] = []
        for event in bounces:
            data = event.data
            assert isinstance(data, MailBounced)
            found.append(
                Bounce(data.address, data.reason, data.diagnostic[:300], data.ticket_id, event.id)
            )
            self._metrics.bounces.labels(data.reason).inc()
        if found:
            until = now + timedelta(seconds=self._settings.bounce_suppress_s)
            await self._store.mark_bouncing(found, now, until)
            log.info("addresses_bouncing", count=len(found))  # never the addresses

    def _suppressed(
        self,
        d: _Notice,
        message_key: str,
        address: str,
        bouncing: Mapping[str, datetime],
        now: datetime,
    ) -> Outcome:
        """A mail to an address that bounced is recorded failed, not sent (nor dead-lettered:
        a replay could not deliver it either)."""
        until = bouncing.get(address.lower())
        detail = f"the address bounced; not mailed before {until.isoformat() if until else '?'}"
        self._metrics.suppressed.inc()
        return self._failed(d, message_key, Invalid("address_bouncing", detail), now)

    def _reject(
        self, failures: Mapping[str, Invalid], record_of: Mapping[str, ConsumerRecord[bytes, bytes]]
    ) -> list[Rejected]:
        """One DLQ entry per event whose delivery failed for good."""
        out: dict[tuple[str, int, int], Rejected] = {}
        for key, error in failures.items():
            record = record_of[key]
            slot = (record.topic, record.partition, record.offset)
            out.setdefault(slot, Rejected(record, error))
        for item in out.values():
            self._metrics.dead_lettered.labels(item.record.topic, item.error.reason).inc()
        return list(out.values())

    @staticmethod
    def _without_repeated_creations(
        accepted: Sequence[Accepted[CloudEvent[Contract]]], tickets: Mapping[str, TicketFacts]
    ) -> tuple[list[Accepted[CloudEvent[Contract]]], list[Rejected]]:
        """A second `ticket.created` for a ticket is dead-lettered: it may not mail anyone."""
        kept: list[Accepted[CloudEvent[Contract]]] = []
        repeated: list[Rejected] = []
        for item in accepted:
            event = item.value
            ticket = tickets.get(event.subject) or TicketFacts(event.subject)
            if is_repeated_creation(event.id, event.data, ticket):
                detail = f"ticket {event.subject[:64]} was created by event {ticket.created_by}"
                repeated.append(Rejected(item.record, Invalid("repeated_ticket_created", detail)))
            else:
                kept.append(item)
        return kept, repeated

    def _inbox_items(self, inbox: Sequence[Delivery]) -> tuple[list[InboxItem], dict[str, Outcome]]:
        """The inbox items of a batch, and their outcomes: storing an item is its delivery,
        so it is stored before the claim, and the claim writes it as sent (one write
        fewer per item). One that cannot be rendered takes the ordinary way, to fail."""
        items: list[InboxItem] = []
        settled: dict[str, Outcome] = {}
        now = self._clock.now()
        for d in inbox:
            try:
                rendered = self._render(d.template, d.recipient, BLOCKS["inbox"], d.values)
            except Invalid:
                continue
            items.append(self._inbox_item(d.recipient, d.key, d.ticket_id, d.template, rendered))
            settled[d.key] = self._sent(_Notice.of(d), d.key, now, count=False)
            self._count_promise(d.wait_for_sla, d.values, "inbox")
        return items, settled

    def _delivered_to_inbox(self, written: Sequence[Delivery]) -> None:
        """Counts the inbox items this batch delivered and tells their open pages."""
        now = self._clock.now()
        for d in written:
            self._count_sent(_Notice.of(d), now)
            if d.recipient.user_id is not None:
                self._hub.notify(d.recipient.user_id)

    async def _deliver_and_mark(self, d: Delivery) -> None:
        """Marks the delivery sent as soon as the channel accepted it, and keeps its slot
        until then: a crash can resend only what was accepted and not yet recorded at that
        instant (at most `max_parallel_sends` messages), each with the same Message-ID /
        Idempotency-Key so the receiver can drop it. If the database is away, the outcome
        waits in memory for the retried batch to record.

        An inbox item is delivered by storing it, in the same round that records it: it
        takes no slot, as a crash cannot make it appear twice (it is stored under its key)."""
        if d.recipient.channel == "inbox":
            await self._recording.submit(_Accepted(d, await self._deliver(d)))
            return
        async with self._gate:
            await self._deliver(d)
            self._unrecorded[d.key] = self._sent(_Notice.of(d), d.key, self._clock.now())
            await self._recording.submit(_Accepted(d, None))

    async def _record_round(self, batch: Sequence[_Accepted]) -> None:
        """One round of the group commit: the inbox items (the inbox's "send"), then every
        outcome of the round in one write."""
        items = [a.inbox_item for a in batch if a.inbox_item is not None]
        if items:
            await self._store.add_inbox(items)
            now = self._clock.now()
            for a in batch:
                if a.inbox_item is not None:
                    self._unrecorded[a.delivery.key] = self._sent(
                        _Notice.of(a.delivery), a.delivery.key, now
                    )
                    self._hub.notify(a.inbox_item.requester_id)
        await self._record_accepted([a.delivery.key for a in batch])

    async def _record_accepted(self, keys: Sequence[str]) -> None:
        outcomes = [self._unrecorded[key] for key in keys if key in self._unrecorded]
        if outcomes:
            await self._store.finish(outcomes, self._clock.now())
            for outcome in outcomes:
                self._unrecorded.pop(outcome.key, None)

    async def _deliver(self, d: Delivery) -> InboxItem | None:
        """Sends; an inbox item is returned for the caller to store instead."""
        channel = d.recipient.channel
        rendered = self._render(d.template, d.recipient, BLOCKS[channel], d.values)
        self._count_promise(d.wait_for_sla, d.values, channel)
        with send_span(channel, d.correlation_id):
            return await self._send(
                d.recipient,
                d.key,
                d.ticket_id,
                rendered,
                {
                    "template": d.template,
                    "cause_event_id": d.event_id,
                    "cause_event_type": d.event_type,
                    "occurred_at": d.event_time.isoformat(),
                },
            )

    # --- channels ------------------------------------------------------------------------------

    def _render(
        self,
        template: str,
        recipient: Recipient,
        blocks: tuple[str, ...],
        values: Mapping[str, Any],
    ) -> Rendered:
        values = {
            **values,
            **link_values(self._settings, recipient, values, self._clock.now()),
            # "reply to this email" only where something reads the replies
            "reply_by_email": self._threads.mailbox is not None,
        }
        try:
            return self._templates.render(
                template, recipient.language, recipient.timezone, blocks, values
            )
        except TemplateError as exc:
            raise Invalid("template_error", f"{template}.{recipient.language}: {exc}") from exc

    async def _send(
        self,
        recipient: Recipient,
        key: str,
        ticket_id: str,
        rendered: Rendered,
        meta: Mapping[str, Any],
    ) -> InboxItem | None:
        """Sends by email or webhook; for the inbox, returns the item to store (storing it
        is its delivery)."""
        if recipient.channel == "email":
            is_root = meta["cause_event_type"] == TicketCreated.event_type
            to_requester = recipient.kind == "requester"
            headers = self._threads.headers(
                ticket_id, key, is_root=is_root and to_requester, to_requester=to_requester
            )
            via = await self._mail.send(
                Email(
                    key,
                    ticket_id,
                    recipient.address,
                    rendered.subject,
                    rendered.text,
                    rendered.html,
                    headers,
                )
            )
            if via == "fallback":
                self._metrics.smtp_fallbacks.inc()
        elif recipient.channel == "webhook":
            if self._webhook is None:
                raise Invalid("webhook_unconfigured", "no webhook secret configured")
            url = self._settings.webhook_url if recipient.kind == "requester" else recipient.address
            assert url is not None
            body = {
                "id": key,
                "ticket_id": ticket_id,
                "recipient": {"kind": recipient.kind, "requester_id": recipient.user_id},
                "language": recipient.language,
                "title": rendered.title,
                "body": rendered.body,
                **meta,
            }
            await self._webhook.send(url, json.dumps(body, ensure_ascii=False).encode(), key)
        else:
            return self._inbox_item(recipient, key, ticket_id, meta["template"], rendered)
        return None

    def _inbox_item(
        self, recipient: Recipient, key: str, ticket_id: str, template: str, rendered: Rendered
    ) -> InboxItem:
        assert recipient.user_id is not None
        return InboxItem(
            key,
            recipient.user_id,
            ticket_id,
            template,
            rendered.title,
            rendered.body,
            self._clock.now(),
        )

    # --- outcomes ------------------------------------------------------------------------------

    def _outcome_event(self, d: _Notice, key: str, error: str | None, now: datetime) -> Outgoing:
        common = {
            "ticket_id": d.ticket_id,
            "notification_id": d.key,
            "cause_event_id": d.event_id,
            "channel": d.channel,
            "template": d.template,
            "recipient_kind": d.recipient_kind,
        }
        data = (
            NotificationFailed(**common, error=error)
            if error is not None
            else NotificationDelivered(**common)
        )
        event = make_event(
            data,
            source=SOURCE,
            time=now,
            correlationid=d.correlation_id or key,
            event_id=stable_id(d.key, "failed" if error else "delivered"),
        )
        return self._topics.notifications, event

    def _sent(self, d: _Notice, message_key: str, now: datetime, *, count: bool = True) -> Outcome:
        if count:
            self._count_sent(d, now)
        return Outcome(
            d.key,
            "sent",
            events=[self._outcome_event(d, message_key, None, now)],
            message_key=message_key,
            delivery=d.delivery,
        )

    def _count_sent(self, d: _Notice, now: datetime) -> None:
        self._metrics.sent.labels(d.channel, d.template).inc()
        waited = max(0.0, (now - d.event_time).total_seconds())
        self._metrics.latency.labels(d.channel).observe(waited)
        if d.template == INCIDENT_UPDATE_TEMPLATE:  # its event time is the update's posting
            self._metrics.incident_updates_sent.labels(d.channel).inc()
            self._metrics.incident_update_seconds.labels(d.channel).observe(waited)

    def _count_promise(self, waits: bool, values: Mapping[str, Any], channel: str) -> None:
        """An acknowledgement that goes out without the promised first reply time."""
        if waits and values.get("first_reply_due") is None:
            self._metrics.ack_without_sla.labels(channel).inc()

    def _failed(self, d: _Notice, message_key: str, error: Invalid, now: datetime) -> Outcome:
        self._metrics.failed.labels(d.channel, d.template).inc()
        detail = f"{error.reason}: {error.detail}"[:500]
        return Outcome(
            d.key,
            "failed",
            detail,
            events=[self._outcome_event(d, message_key, detail, now)],
            message_key=message_key,
            delivery=d.delivery,
        )

    # --- digests -------------------------------------------------------------------------------

    def _digest_entry(self, d: Delivery, now: datetime, *, held: bool = False) -> QueuedItem:
        """A digest item; `held`: an acknowledgement waiting alone for its promised time."""
        r = d.recipient
        place = sla_wait_id if held else digest_id
        return QueuedItem(
            digest_id=place(d.ticket_id, r.channel, r.address),
            kind="sla_wait" if held else "digest",
            ticket_id=d.ticket_id,
            recipient=r,
            first_at=now,
            due_at=digest_due(now, self._sla_wait if held else self._window),
            item=DigestItem(
                key=d.key,
                template=d.template,
                event_id=d.event_id,
                event_type=d.event_type,
                time=d.event_time,
                correlation_id=d.correlation_id,
                ticket_id=d.ticket_id,
                channel=r.channel,
                recipient_kind=r.kind,
                values=dict(d.values),
                wait_for_sla=d.wait_for_sla,
            ),
        )

    async def flush_digests(self) -> int:
        """Send the due digests this instance can lease, in waves of `max_parallel_sends`
        (held acknowledgements come through here on a busy day: one at a time, their round
        trips would cap them far below the rate tickets arrive), at most `DIGESTS_PER_ROUND`
        in a round; returns how many went out.

        Each digest is sent by one instance only, the holder of its lease: a claim writes
        an owner, a token and an expiry into the digest (`claim_due_digests`), and whatever
        the holder writes afterwards names the token. A lease rather than ownership by the
        Kafka partition of the digest's ticket: the flusher is not the consumer (a digest
        falls due with no message arriving), the consumer reads four topics whose partition
        counts need not agree, and between a partition's revocation and its new owner's
        first scan two instances would both think it theirs; the lease is decided by the
        database that already records each delivery. A wave is leased just before it is
        sent, and the lease (`digest_lease_s`) must outlast the slowest send (a setting
        check), so it cannot run out under a holder still sending; a holder that dies
        leaves its digests to another instance once the lease ends. Instances' clocks must
        agree to well within the lease."""
        sent = 0
        failure: BaseException | None = None
        waves = max(1, DIGESTS_PER_ROUND // self._settings.max_parallel_sends)
        for _ in range(waves):
            now = self._clock.now()
            token, held = await self._store.claim_due_digests(
                now, self._owner, self._lease, self._settings.max_parallel_sends
            )
            results = await asyncio.gather(
                *(self._flush(digest, token, now + self._lease) for digest in held),
                return_exceptions=True,
            )
            failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
            sent += sum(r for r in results if isinstance(r, int))
            if len(held) < self._settings.max_parallel_sends:
                break
        if failure is not None:
            raise failure  # the others went through; this one is retried once its lease ends
        self._metrics.dlq_size.set(await self._store.failed_count())
        self._metrics.bouncing.set(await self._store.bouncing_count(self._clock.now()))
        return sent

    async def _flush(self, digest: LeasedDigest, token: str, lease_until: datetime) -> int:
        items = sorted(digest.items, key=lambda i: i.time)
        keys = [i.key for i in items]
        states = await self._store.states(keys)
        live = [i for i in items if states.get(i.key) == "queued"]
        sent = 0
        if live:
            recipient = digest.recipient
            message_key = digest_message_key(i.key for i in live)
            now = self._clock.now()
            if now + timedelta(seconds=self._settings.slowest_send_s) >= lease_until:
                log.warning("digest_lease_too_short", channel=recipient.channel)
                return 0  # the database was slow: sent by whoever holds it next
            live = await self._with_promise(digest, live)
            notices = [_Notice.in_digest(i) for i in live]
            bouncing = await self._store.bouncing_among(
                [recipient.address] if recipient.channel == "email" else [], now
            )
            if bouncing:
                outcomes = [
                    self._suppressed(n, message_key, recipient.address, bouncing, now)
                    for n in notices
                ]
                await self._store.finish(outcomes, now)
                await self._store.drop_digest_items(digest.id, token, keys)
                self._on_outbox(1)
                return 0
            try:
                rendered = self._render_digest(recipient, live)
                with send_span(recipient.channel, live[-1].correlation_id or None):
                    item = await self._send(
                        recipient,
                        message_key,
                        digest.ticket_id,
                        rendered,
                        {
                            "template": live[0].template if len(live) == 1 else DIGEST_TEMPLATE,
                            "cause_event_id": live[0].event_id,
                            "cause_event_type": live[0].event_type,
                            "occurred_at": live[0].time.isoformat(),
                            "digest_of": [i.event_id for i in live],
                        },
                    )
                if item is not None:
                    await self._store.add_inbox([item])
                    self._hub.notify(item.requester_id)
            except Invalid as exc:
                outcomes = [self._failed(n, message_key, exc, now) for n in notices]
            except Retryable as exc:
                if digest.attempts + 1 < self._settings.digest_max_attempts:
                    log.warning("digest_retry", attempts=digest.attempts + 1, error=str(exc))
                    retry_at = self._clock.now() + timedelta(seconds=self._settings.digest_poll_s)
                    await self._store.digest_attempt_failed(digest.id, token, retry_at)
                    return 0
                given_up = Invalid("digest_failed", str(exc))
                outcomes = [self._failed(n, message_key, given_up, now) for n in notices]
            else:
                outcomes = [self._sent(n, message_key, self._clock.now()) for n in notices]
                for i in live:
                    self._count_promise(i.wait_for_sla, i.values, i.channel)
                sent = 1
            await self._store.finish(outcomes, self._clock.now())
            self._on_outbox(1)
        await self._store.drop_digest_items(digest.id, token, keys)
        return sent

    async def _with_promise(
        self, digest: LeasedDigest, items: list[DigestItem]
    ) -> list[DigestItem]:
        """Held acknowledgements print the ticket's promised time as known now."""
        if digest.kind != "sla_wait":
            return items
        facts = (await self._store.ticket_facts([digest.ticket_id])).get(digest.ticket_id)
        due = facts.first_reply_due if facts else None
        number = facts.number if facts else None
        self._metrics.ack_held.labels("sla" if due else "deadline").inc()
        out = []
        for item in items:
            values = {**item.values}
            values["first_reply_due"] = due or values.get("first_reply_due")
            if number and not values.get("ticket_number"):
                values.update(ticket_ref(item.ticket_id, number))
            out.append(replace(item, values=values))
        return out

    def _render_digest(self, recipient: Recipient, items: Sequence[DigestItem]) -> Rendered:
        blocks = BLOCKS[recipient.channel]
        if len(items) == 1:
            return self._render(items[0].template, recipient, blocks, items[0].values)
        parts = []
        for item in items:
            one = self._render(item.template, recipient, BLOCKS["inbox"], item.values)
            parts.append({"title": one.title, "body": one.body, "time": item.time})
        first = items[0].values
        values = {
            **ticket_ref(items[0].ticket_id, first.get("ticket_number")),
            "ticket_id": items[0].ticket_id,
            "items": parts,
        }
        return self._render(DIGEST_TEMPLATE, recipient, blocks, values)

    async def run_flusher(self) -> None:
        """Background loop of the app: flush due digests; a failed round is retried next tick."""
        while True:
            try:
                await self.flush_digests()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("digest_flush_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(TimeoutError):  # woken early by a released hold
                await asyncio.wait_for(self._wake.wait(), self._settings.digest_poll_s)
            self._wake.clear()


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A delivery its channel accepted (or, for the inbox, the item to store), to record."""

    delivery: Delivery
    inbox_item: InboxItem | None


@dataclass(frozen=True, slots=True)
class _Notice:
    """The delivery an outcome is about, sent alone or as an item of a digest."""

    key: str
    ticket_id: str
    event_id: str
    event_time: datetime
    correlation_id: str
    channel: str
    recipient_kind: str
    template: str
    delivery: Delivery | None  # when its outcome may be its record's first write

    @classmethod
    def of(cls, d: Delivery) -> _Notice:
        r = d.recipient
        return cls(
            d.key,
            d.ticket_id,
            d.event_id,
            d.event_time,
            d.correlation_id,
            r.channel,
            r.kind,
            d.template,
            d,
        )

    @classmethod
    def in_digest(cls, i: DigestItem) -> _Notice:
        """A queued item's record exists already (written pending)."""
        return cls(
            i.key,
            i.ticket_id,
            i.event_id,
            i.time,
            i.correlation_id,
            i.channel,
            i.recipient_kind,
            i.template,
            None,
        )


def _to_bouncing(recipient: Recipient, bouncing: Mapping[str, datetime]) -> bool:
    return recipient.channel == "email" and recipient.address.lower() in bouncing
