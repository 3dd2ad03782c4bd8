"""notifier's use cases on the in-memory repository: what a requester is mailed, sees in
the inbox and what the outcome events say, without a broker, a database or an SMTP server
(the mail channel is a fake that keeps what it was given)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from services.notifier.config import load_rules
from services.notifier.domain import Category, Preferences
from services.notifier.handlers import Notifications
from services.notifier.inbox import InboxHub
from services.notifier.memory_store import MemoryNotifierRepository
from services.notifier.metrics import notifier_metrics
from services.notifier.settings import NotifierSettings
from services.notifier.templates import Templates
from shared.clock import FixedClock
from shared.events import (
    Author,
    MailBounced,
    NotificationDelivered,
    NotificationFailed,
    Requester,
    TicketCreated,
    TicketMessageAdded,
    TicketSummary,
    make_event,
)
from shared.topics import Topics, owner_of
from tests.support import secret_settings

if TYPE_CHECKING:
    from services.notifier.mail import Email
    from shared.events import Contract

NOW = datetime(2030, 3, 1, 8, 30, tzinfo=UTC)
TOPICS = Topics("")
LI = "li.wei@example.com"


class Mailbox:
    """The mail channel: accepts every message and keeps it."""

    def __init__(self) -> None:
        self.sent: list[Email] = []

    async def send(self, email: Email) -> str:
        self.sent.append(email)
        return "primary"

    def to(self, address: str) -> list[Email]:
        return [e for e in self.sent if e.to == address]


class Service:
    def __init__(self, **settings: Any) -> None:
        values: dict[str, Any] = {"digest_window_s": 0, "ack_sla_wait_s": 0, **settings}
        cfg = NotifierSettings(**values, **secret_settings(NotifierSettings))
        self.store = MemoryNotifierRepository()
        self.mail = Mailbox()
        self.clock = FixedClock(NOW)
        self.handler = Notifications(
            store=self.store,
            rules=load_rules(cfg.rules_file),
            templates=Templates(cfg.templates_dir),
            mail=self.mail,
            webhook=None,
            hub=InboxHub(),
            settings=cfg,
            clock=self.clock,
            metrics=notifier_metrics(CollectorRegistry()),
            topics=TOPICS,
        )
        self._offset = 0

    def record(self, data: Contract, topic: str = TOPICS.tickets) -> ConsumerRecord[bytes, bytes]:
        self._offset += 1
        event = make_event(
            data,
            source=owner_of(topic) or "/helpstream/test",
            time=self.clock.now(),
            correlationid="c-1",
            subject=getattr(data, "ticket_id", None) or "no-ticket",
        )
        value = event.to_bytes()
        return ConsumerRecord(topic, 0, self._offset, 0, 0, b"T-1", value, None, 0, len(value), ())

    def outcomes(self) -> list[NotificationDelivered | NotificationFailed]:
        return [
            e.data
            for _, e in self.store.published
            if isinstance(e.data, (NotificationDelivered, NotificationFailed))
        ]


def summary() -> TicketSummary:
    return TicketSummary.model_validate(
        {
            "status": "open",
            "priority": "high",
            "category": "withdrawal_delay",
            "channel": "app",
            "group": "payments",
            "requester_id": "u-42",
            "created_at": NOW,
        }
    )


def created(ticket_id: str = "T-1") -> TicketCreated:
    return TicketCreated(
        ticket_id=ticket_id,
        ticket=summary(),
        requester=Requester(id="u-42", email=LI, locale="en", timezone="UTC"),
        subject="Withdrawal not received",
    )


def reply(body: str, ticket_id: str = "T-1") -> TicketMessageAdded:
    return TicketMessageAdded(
        ticket_id=ticket_id,
        ticket=summary(),
        message_id=f"m-{body[:8]}",
        author=Author.agent,
        public=True,
        body=body,
    )


async def test_a_requester_is_told_once_even_when_the_event_is_redelivered() -> None:
    service = Service()
    event = service.record(created())

    assert await service.handler.on_events([event]) == []
    assert await service.handler.on_events([event]) == []  # after a rebalance

    [mail] = service.mail.to(LI)
    assert "Withdrawal not received" in mail.subject
    [item] = await service.store.inbox_page("u-42", unread_only=False, limit=10)
    assert item.ticket_id == "T-1"
    told = [(o.channel, o.notification_id) for o in service.outcomes()]
    assert len(told) == len(set(told))  # each delivery's event once
    assert sorted(channel for channel, _ in told) == ["email", "inbox"]
    assert all(isinstance(o, NotificationDelivered) for o in service.outcomes())


async def test_a_muted_category_is_not_mailed_but_still_reaches_the_inbox() -> None:
    service = Service()
    await service.store.put_preferences(
        "u-42", Preferences({"email": frozenset({Category.replies})}), NOW
    )
    await service.handler.on_events([service.record(created())])

    await service.handler.on_events([service.record(reply("We found your withdrawal."))])

    assert len(service.mail.to(LI)) == 1  # the acknowledgement; the reply was muted
    assert "We found your withdrawal." not in service.mail.to(LI)[0].text
    inbox = await service.store.inbox_page("u-42", unread_only=False, limit=10)
    assert sorted(i.template for i in inbox) == ["agent_reply", "ticket_acknowledged"]


async def test_a_bouncing_address_is_not_mailed_and_a_failure_event_says_why() -> None:
    service = Service()
    bounced = MailBounced(address="Li.Wei@Example.com", reason="hard", ticket_id="T-0")
    assert await service.handler.on_events([service.record(bounced, TOPICS.mail)]) == []

    rejected = await service.handler.on_events([service.record(created())])

    assert rejected == []  # not dead-lettered: a replay could not deliver it either
    assert service.mail.to(LI) == []
    [failed] = [o for o in service.outcomes() if isinstance(o, NotificationFailed)]
    assert failed.channel == "email"
    assert failed.error.startswith("address_bouncing: the address bounced")
    records = {r.channel: r.state for r in await service.store.for_ticket("T-1")}
    assert records == {"email": "failed", "inbox": "sent"}


async def test_replies_within_the_digest_window_reach_the_requester_as_one_mail() -> None:
    service = Service(digest_window_s=60)
    await service.handler.on_events([service.record(created())])
    await service.handler.on_events(
        [service.record(reply("First we looked.")), service.record(reply("Then we found it."))]
    )
    assert len(service.mail.to(LI)) == 1  # only the acknowledgement so far
    assert await service.handler.flush_digests() == 0  # the window is still open

    service.clock.advance(timedelta(seconds=61))
    assert await service.handler.flush_digests() == 1
    assert await service.handler.flush_digests() == 0  # sent once

    digest = service.mail.to(LI)[-1]
    assert digest.subject == "[T-1] 2 updates on your request"
    assert "First we looked." in digest.text
    assert "Then we found it." in digest.text
    replies = [
        r
        for r in await service.store.for_ticket("T-1")
        if r.template == "agent_reply" and r.channel == "email"
    ]
    assert [r.state for r in replies] == ["sent", "sent"]
    assert len({r.message_key for r in replies}) == 1  # one message for both items


async def test_an_acknowledgement_held_for_the_promised_time_goes_out_when_the_wait_ends() -> None:
    service = Service(ack_sla_wait_s=30)
    await service.handler.on_events([service.record(created())])
    assert service.mail.to(LI) == []  # no promised first reply time yet: held

    assert await service.store.inbox_page("u-42", unread_only=False, limit=10) == []

    service.clock.advance(timedelta(seconds=31))
    assert await service.handler.flush_digests() == 2  # the mail and the inbox item

    [mail] = service.mail.to(LI)
    assert "Withdrawal not received" in mail.subject
    assert len(await service.store.inbox_page("u-42", unread_only=False, limit=10)) == 1
    states = {r.channel: r.state for r in await service.store.for_ticket("T-1")}
    assert states == {"email": "sent", "inbox": "sent"}
