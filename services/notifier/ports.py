"""What notifier needs from its storage, in its own terms.

Handlers, pages and the inbox stream speak these types only; how they are kept (MongoDB
documents with an outbox in `store.py`, dicts in `memory_store.py`) stays behind
`NotifierRepository`. Both implementations pass one contract suite
(`tests/contract/notifier_repository.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence
    from datetime import datetime, timedelta

    from services.notifier.domain import (
        Delivery,
        FactUpdate,
        FirstFacts,
        Preferences,
        Recipient,
        TicketFacts,
    )
    from services.notifier.mail import Email
    from shared.events import Outgoing

# pending: written, not yet sent (it waits in a digest, or in a crashed batch);
# queued: in its digest; sent and failed are final.
DeliveryState = Literal["pending", "queued", "sent", "failed"]
DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "queued", "sent", "failed")
FinalState = Literal["sent", "failed"]
DigestKind = Literal["digest", "sla_wait"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery, and the event that says so."""

    key: str
    state: FinalState
    error: str | None = None
    events: Sequence[Outgoing] = ()
    message_key: str | None = None  # the id the receiver saw (a digest's for its items)
    # the delivery itself, when this outcome may be its record's first write
    delivery: Delivery | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as recorded: the guard against sending it twice."""

    key: str
    ticket_id: str
    cause_event_id: str
    event_type: str
    channel: str
    recipient_kind: str
    template: str
    state: DeliveryState
    error: str | None = None
    message_key: str | None = None
    digest_id: str | None = None


@dataclass(frozen=True)
class DigestItem:
    """One delivery waiting in a digest: all it takes to render and record it later."""

    key: str  # the delivery's key
    template: str
    event_id: str
    event_type: str
    time: datetime  # the event's
    correlation_id: str
    ticket_id: str
    channel: str
    recipient_kind: str
    values: Mapping[str, Any]
    wait_for_sla: bool = False


@dataclass(frozen=True)
class QueuedItem:
    """An item for the digest `digest_id`; the other fields make the digest if it is new
    (a digest already there keeps its own)."""

    digest_id: str
    kind: DigestKind  # sla_wait: an acknowledgement held until the promise is known
    ticket_id: str
    recipient: Recipient
    first_at: datetime
    due_at: datetime
    item: DigestItem


@dataclass(frozen=True)
class LeasedDigest:
    """A due digest as its lease holder read it."""

    id: str
    kind: DigestKind
    ticket_id: str
    recipient: Recipient
    items: tuple[DigestItem, ...]
    attempts: int
    first_at: datetime
    due_at: datetime
    lease_owner: str
    lease_token: str
    lease_until: datetime


@dataclass(frozen=True)
class InboxItem:
    """One in-app message; its id is its delivery's key."""

    id: str
    requester_id: str
    ticket_id: str
    template: str
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None = None


@dataclass(frozen=True)
class Bounce:
    """What the mail gateway said about an address that bounced."""

    address: str
    reason: str
    diagnostic: str
    ticket_id: str | None
    event_id: str


class TicketFactsRepository(Protocol):
    """What earlier events taught about each ticket, and each requester's preferences."""

    async def record_facts(
        self, updates: Sequence[FactUpdate], now: datetime, first: Sequence[FirstFacts] = ()
    ) -> None:
        """Sets what each update says (replays set the same; None fields are kept).

        `first` facts are set only while the ticket has none yet; the earliest of a
        batch wins."""
        ...

    async def ticket_facts(self, ticket_ids: Iterable[str]) -> dict[str, TicketFacts]: ...

    async def preferences_of(self, requester_ids: Iterable[str]) -> dict[str, Preferences]:
        """Only those who stored preferences."""
        ...

    async def get_preferences(self, requester_id: str) -> Preferences: ...

    async def put_preferences(
        self, requester_id: str, preferences: Preferences, now: datetime
    ) -> None:
        """Replaces the opt-outs."""
        ...


class DeliveryRepository(Protocol):
    """One record per delivery key: whether it was sent, and its outcome event (outbox)."""

    async def claim(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        settled: Mapping[str, Outcome] | None = None,
        write: Collection[str] | None = None,
    ) -> tuple[dict[str, DeliveryState], set[str]]:
        """Every delivery's state ("pending": not yet done) and the keys written now.

        Only the deliveries in `write` (all when None) are written, and only if they have
        no record: as their `settled` outcome (with its events) or else pending. A
        delivery with a record keeps it as it is."""
        ...

    async def states(self, keys: Sequence[str]) -> dict[str, DeliveryState]:
        """Recorded deliveries only."""
        ...

    async def finish(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Records each final state with its events, in one write. An outcome naming its
        delivery creates the record if there is none; any other updates only."""
        ...

    async def failed_count(self) -> int: ...

    async def for_ticket(self, ticket_id: str) -> list[DeliveryRecord]: ...


class DigestRepository(Protocol):
    """Deliveries waiting to go out together; a due digest is sent by its lease holder."""

    async def queue(self, items: Sequence[QueuedItem], now: datetime) -> None:
        """Adds each item to its digest once, and marks its pending delivery queued."""
        ...

    async def claim_due_digests(
        self, now: datetime, owner: str, lease: timedelta, limit: int
    ) -> tuple[str, list[LeasedDigest]]:
        """Leases up to `limit` due digests no live lease holds to `owner` until
        `now + lease`; the lease's token and the digests it got, soonest due first. Of
        instances claiming at once, each digest goes to one."""
        ...

    async def drop_digest_items(self, digest_id: str, token: str, keys: Sequence[str]) -> None:
        """Takes out what was handled and ends the lease, if `token` still holds it; an
        empty digest goes."""
        ...

    async def digest_attempt_failed(self, digest_id: str, token: str, retry_at: datetime) -> None:
        """Counts a failed attempt and ends the lease (if `token` still holds it): any
        instance retries from `retry_at`."""
        ...

    async def release_sla_waits(self, ticket_ids: Iterable[str], now: datetime) -> int:
        """Held acknowledgements of these tickets are due now; returns how many."""
        ...


class InboxRepository(Protocol):
    """Requesters' in-app messages. Every read names the requester: another one's item
    is not found."""

    async def add_inbox(self, items: Sequence[InboxItem]) -> None:
        """Inserts each item once: one stored before (a redelivered event) is kept as is."""
        ...

    async def inbox_page(
        self, requester_id: str, *, unread_only: bool, limit: int
    ) -> list[InboxItem]:
        """Newest first."""
        ...

    async def inbox_since(self, requester_id: str, since: datetime) -> list[InboxItem]:
        """Created at or after `since`, oldest first (at most 100)."""
        ...

    async def inbox_item(self, requester_id: str, item_id: str) -> InboxItem | None: ...

    async def mark_read(self, requester_id: str, item_id: str, now: datetime) -> InboxItem | None:
        """The item as read; the first read time is kept."""
        ...


class BounceRepository(Protocol):
    """Addresses (compared in lower case) not to mail for a while."""

    async def mark_bouncing(
        self, bounces: Sequence[Bounce], now: datetime, until: datetime
    ) -> None:
        """Not mailed before `until`; a replayed or later bounce moves `until` on."""
        ...

    async def bouncing_among(self, addresses: Iterable[str], now: datetime) -> dict[str, datetime]:
        """address (lower case) → until when it is not mailed, for those still bouncing."""
        ...

    async def bouncing_count(self, now: datetime) -> int: ...


class NotifierRepository(
    TicketFactsRepository,
    DeliveryRepository,
    DigestRepository,
    InboxRepository,
    BounceRepository,
    Protocol,
):
    """All of notifier's storage, as the handlers use it."""


class MailChannel(Protocol):
    """Where email deliveries go: SMTP relays in production (`mail.SmtpSender`)."""

    async def send(self, email: Email) -> str:
        """Sends, or raises `shared.errors.Invalid` (this address will never take it) or
        `Retryable`; returns which relay took it ("primary" or "fallback")."""
        ...
