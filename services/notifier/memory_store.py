"""`NotifierRepository` in memory, for unit tests: dicts, and the outcome events the
MongoDB store would leave in its outboxes kept in `published`, in the order written."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from services.notifier.domain import Preferences, TicketFacts
from services.notifier.ports import DeliveryRecord, LeasedDigest
from shared.ids import new_id

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence
    from datetime import datetime, timedelta

    from services.notifier.domain import Delivery, FactUpdate, FirstFacts, Recipient
    from services.notifier.ports import (
        Bounce,
        DeliveryState,
        DigestItem,
        DigestKind,
        InboxItem,
        Outcome,
        QueuedItem,
    )
    from shared.events import Outgoing


@dataclass
class _Digest:
    kind: DigestKind
    ticket_id: str
    recipient: Recipient
    first_at: datetime
    due_at: datetime
    items: list[DigestItem] = field(default_factory=list)
    attempts: int = 0
    lease: tuple[str, str, datetime] | None = None  # owner, token, until


class MemoryNotifierRepository:
    def __init__(self) -> None:
        self.tickets: dict[str, TicketFacts] = {}
        self.preferences: dict[str, Preferences] = {}
        self.deliveries: dict[str, DeliveryRecord] = {}
        self.digests: dict[str, _Digest] = {}
        self.inbox: dict[str, InboxItem] = {}
        self.bouncing: dict[str, tuple[Bounce, datetime]] = {}  # lower-cased address
        self.published: list[Outgoing] = []

    # --- ticket facts and preferences ------------------------------------------------------

    async def record_facts(
        self, updates: Sequence[FactUpdate], now: datetime, first: Sequence[FirstFacts] = ()
    ) -> None:
        for update in updates:
            if not update:
                continue
            known = self.tickets.get(update.ticket_id) or TicketFacts(update.ticket_id)
            self.tickets[update.ticket_id] = replace(
                known,
                group=update.group if update.group is not None else known.group,
                category=update.category if update.category is not None else known.category,
                number=update.number if update.number is not None else known.number,
                first_reply_due=update.first_reply_due or known.first_reply_due,
            )
        for facts in first:
            known = self.tickets.get(facts.ticket_id) or TicketFacts(facts.ticket_id)
            if known.created_by is None:
                self.tickets[facts.ticket_id] = replace(
                    known,
                    requester=facts.requester,
                    subject=facts.subject,
                    created_by=facts.created_by,
                )

    async def ticket_facts(self, ticket_ids: Iterable[str]) -> dict[str, TicketFacts]:
        return {t: self.tickets[t] for t in ticket_ids if t in self.tickets}

    async def preferences_of(self, requester_ids: Iterable[str]) -> dict[str, Preferences]:
        return {r: self.preferences[r] for r in requester_ids if r in self.preferences}

    async def get_preferences(self, requester_id: str) -> Preferences:
        return self.preferences.get(requester_id, Preferences())

    async def put_preferences(
        self, requester_id: str, preferences: Preferences, now: datetime
    ) -> None:
        self.preferences[requester_id] = Preferences(
            {ch: frozenset(cats) for ch, cats in preferences.opt_out.items()}
        )

    # --- deliveries ------------------------------------------------------------------------

    async def claim(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        settled: Mapping[str, Outcome] | None = None,
        write: Collection[str] | None = None,
    ) -> tuple[dict[str, DeliveryState], set[str]]:
        settled = settled or {}
        written: set[str] = set()
        for d in deliveries:
            if (write is not None and d.key not in write) or d.key in self.deliveries:
                continue
            outcome = settled.get(d.key)
            self.deliveries[d.key] = _record(d, outcome)
            written.add(d.key)
            if outcome is not None:
                self.published.extend(outcome.events)
        return {
            d.key: self.deliveries[d.key].state if d.key in self.deliveries else "pending"
            for d in deliveries
        }, written

    async def states(self, keys: Sequence[str]) -> dict[str, DeliveryState]:
        return {k: self.deliveries[k].state for k in keys if k in self.deliveries}

    async def finish(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        for o in outcomes:
            known = self.deliveries.get(o.key)
            if known is None:
                if o.delivery is None:
                    continue  # an update of nothing, as in MongoDB
                known = _record(o.delivery, None)
            self.deliveries[o.key] = replace(
                known,
                state=o.state,
                error=o.error,
                message_key=o.message_key if o.message_key is not None else known.message_key,
            )
            self.published.extend(o.events)

    async def failed_count(self) -> int:
        return sum(1 for r in self.deliveries.values() if r.state == "failed")

    async def for_ticket(self, ticket_id: str) -> list[DeliveryRecord]:
        return sorted(
            (r for r in self.deliveries.values() if r.ticket_id == ticket_id), key=lambda r: r.key
        )

    # --- digests ---------------------------------------------------------------------------

    async def queue(self, items: Sequence[QueuedItem], now: datetime) -> None:
        for q in items:
            digest = self.digests.setdefault(
                q.digest_id, _Digest(q.kind, q.ticket_id, q.recipient, q.first_at, q.due_at)
            )
            if q.item not in digest.items:
                digest.items.append(q.item)
        for q in items:
            known = self.deliveries.get(q.item.key)
            if known is not None and known.state == "pending":
                self.deliveries[q.item.key] = replace(known, state="queued", digest_id=q.digest_id)

    async def claim_due_digests(
        self, now: datetime, owner: str, lease: timedelta, limit: int
    ) -> tuple[str, list[LeasedDigest]]:
        token = new_id()
        free = sorted(
            (
                (digest_id, d)
                for digest_id, d in self.digests.items()
                if d.due_at <= now and (d.lease is None or d.lease[2] <= now)
            ),
            key=lambda pair: pair[1].due_at,
        )[:limit]
        held = []
        for digest_id, d in free:
            d.lease = (owner, token, now + lease)
            held.append(_leased(digest_id, d))
        return token, held

    async def drop_digest_items(self, digest_id: str, token: str, keys: Sequence[str]) -> None:
        d = self.digests.get(digest_id)
        if d is None:
            return
        if d.lease is not None and d.lease[1] == token:
            d.items = [i for i in d.items if i.key not in keys]
            d.lease = None
        if not d.items:
            del self.digests[digest_id]

    async def digest_attempt_failed(self, digest_id: str, token: str, retry_at: datetime) -> None:
        d = self.digests.get(digest_id)
        if d is not None and d.lease is not None and d.lease[1] == token:
            d.attempts += 1
            d.due_at = retry_at
            d.lease = None

    async def release_sla_waits(self, ticket_ids: Iterable[str], now: datetime) -> int:
        ids = set(ticket_ids)
        released = 0
        for d in self.digests.values():
            if d.ticket_id in ids and d.kind == "sla_wait" and d.due_at > now:
                d.due_at = now
                released += 1
        return released

    # --- bouncing addresses ----------------------------------------------------------------

    async def mark_bouncing(
        self, bounces: Sequence[Bounce], now: datetime, until: datetime
    ) -> None:
        for b in bounces:
            self.bouncing[b.address.lower()] = (b, until)

    async def bouncing_among(self, addresses: Iterable[str], now: datetime) -> dict[str, datetime]:
        wanted = {a.lower() for a in addresses}
        return {a: until for a, (_, until) in self.bouncing.items() if a in wanted and until > now}

    async def bouncing_count(self, now: datetime) -> int:
        return sum(1 for _, until in self.bouncing.values() if until > now)

    # --- inbox -----------------------------------------------------------------------------

    async def add_inbox(self, items: Sequence[InboxItem]) -> None:
        for item in items:
            self.inbox.setdefault(item.id, item)

    async def inbox_page(
        self, requester_id: str, *, unread_only: bool, limit: int
    ) -> list[InboxItem]:
        mine = [
            i
            for i in self.inbox.values()
            if i.requester_id == requester_id and not (unread_only and i.read_at is not None)
        ]
        return sorted(mine, key=lambda i: (i.created_at, i.id), reverse=True)[:limit]

    async def inbox_since(self, requester_id: str, since: datetime) -> list[InboxItem]:
        mine = [
            i
            for i in self.inbox.values()
            if i.requester_id == requester_id and i.created_at >= since
        ]
        return sorted(mine, key=lambda i: (i.created_at, i.id))[:100]

    async def inbox_item(self, requester_id: str, item_id: str) -> InboxItem | None:
        item = self.inbox.get(item_id)
        return item if item is not None and item.requester_id == requester_id else None

    async def mark_read(self, requester_id: str, item_id: str, now: datetime) -> InboxItem | None:
        item = await self.inbox_item(requester_id, item_id)
        if item is not None and item.read_at is None:
            item = self.inbox[item_id] = replace(item, read_at=now)
        return item


def _record(d: Delivery, outcome: Outcome | None) -> DeliveryRecord:
    return DeliveryRecord(
        key=d.key,
        ticket_id=d.ticket_id,
        cause_event_id=d.event_id,
        event_type=d.event_type,
        channel=d.recipient.channel,
        recipient_kind=d.recipient.kind,
        template=d.template,
        state=outcome.state if outcome is not None else "pending",
        error=outcome.error if outcome is not None else None,
        message_key=outcome.message_key if outcome is not None else None,
    )


def _leased(digest_id: str, d: _Digest) -> LeasedDigest:
    assert d.lease is not None
    owner, token, until = d.lease
    return LeasedDigest(
        id=digest_id,
        kind=d.kind,
        ticket_id=d.ticket_id,
        recipient=d.recipient,
        items=tuple(d.items),
        attempts=d.attempts,
        first_at=d.first_at,
        due_at=d.due_at,
        lease_owner=owner,
        lease_token=token,
        lease_until=until,
    )
