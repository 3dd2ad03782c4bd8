"""Sends are recorded in rounds, and a crash can leave at most `max_parallel_sends` messages
accepted by their channel but not yet recorded (each would be resent once, same id)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from services.notifier.config import load_rules
from services.notifier.domain import Delivery
from services.notifier.handlers import Notifications
from services.notifier.inbox import InboxHub
from services.notifier.mail import Email
from services.notifier.memory_store import MemoryNotifierRepository
from services.notifier.metrics import notifier_metrics
from services.notifier.ports import DeliveryState, InboxItem, Outcome, QueuedItem
from services.notifier.recorder import GroupCommit
from services.notifier.settings import NotifierSettings
from services.notifier.templates import Templates
from shared.clock import FixedClock
from shared.errors import Retryable
from shared.events import Requester, TicketCreated, TicketSummary, make_event
from shared.topics import Topics
from tests.support import secret_settings

NOW = datetime(2030, 3, 1, 8, 30, tzinfo=UTC)


# --- GroupCommit -----------------------------------------------------------------------------


async def test_callers_arriving_together_are_written_in_one_round() -> None:
    rounds: list[list[int]] = []

    async def write(items: Sequence[int]) -> None:
        rounds.append(list(items))
        await asyncio.sleep(0.01)

    commit = GroupCommit(write)
    await asyncio.gather(*(commit.submit(i) for i in range(10)))
    assert rounds == [list(range(10))]


async def test_what_arrives_during_a_round_goes_into_the_next_one() -> None:
    rounds: list[list[str]] = []
    writing = asyncio.Event()

    async def write(items: Sequence[str]) -> None:
        rounds.append(list(items))
        writing.set()
        await asyncio.sleep(0.01)

    commit = GroupCommit(write)
    first = asyncio.create_task(commit.submit("a"))
    await writing.wait()
    await asyncio.gather(commit.submit("b"), commit.submit("c"), first)
    assert rounds == [["a"], ["b", "c"]]


async def test_every_caller_of_a_failed_round_learns_of_the_failure_and_later_rounds_work() -> None:
    calls = 0

    async def write(items: Sequence[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")

    commit = GroupCommit(write)
    results = await asyncio.gather(commit.submit("a"), commit.submit("b"), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    await commit.submit("c")  # the database is back


# --- the consumer ------------------------------------------------------------------------------


class SlowStore(MemoryNotifierRepository):
    """The in-memory repository, whose every write of a send takes a while, as a busy
    database does."""

    def __init__(self, write_s: float) -> None:
        super().__init__()
        self.write_s = write_s
        self.down = False
        self.down_after_claim = False

    async def _write(self) -> None:
        await asyncio.sleep(self.write_s)
        if self.down:
            raise ConnectionError("database away")

    async def claim(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        settled: Mapping[str, Outcome] | None = None,
        write: Collection[str] | None = None,
    ) -> tuple[dict[str, DeliveryState], set[str]]:
        found = await super().claim(deliveries, now, settled, write)
        if self.down_after_claim:
            self.down, self.down_after_claim = True, False
        return found

    async def queue(self, items: Sequence[QueuedItem], now: datetime) -> None:
        assert not items

    async def add_inbox(self, items: Sequence[InboxItem]) -> None:
        if not items:
            return
        await self._write()
        await super().add_inbox(items)

    async def finish(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        if not outcomes:
            return
        await self._write()
        await super().finish(outcomes, now)

    def state(self, key: str) -> str | None:
        record = self.deliveries.get(key)
        return record.state if record is not None else None

    def sent(self) -> int:
        return sum(1 for record in self.deliveries.values() if record.state == "sent")


class Relay:
    """Accepts every mail after a short while, and checks what a crash could resend."""

    def __init__(self, store: SlowStore) -> None:
        self.store = store
        self.accepted: list[str] = []
        self.worst = 0

    async def send(self, email: Email) -> str:
        await asyncio.sleep(0.001)
        self.accepted.append(email.key)
        sent_mail = sum(1 for k in self.accepted if self.store.state(k) == "sent")
        self.worst = max(self.worst, len(self.accepted) - sent_mail)
        return "primary"


def created(i: int) -> ConsumerRecord[bytes, bytes]:
    event = make_event(
        TicketCreated(
            ticket_id=f"T-{i}",
            ticket=TicketSummary.model_validate(
                {
                    "status": "new",
                    "priority": "normal",
                    "category": "withdrawal_delay",
                    "channel": "app",
                    "group": "payments",
                    "requester_id": f"u-{i}",
                    "created_at": NOW,
                }
            ),
            requester=Requester(id=f"u-{i}", email=f"u{i}@example.com"),
            subject=f"Withdrawal {i} pending",
        ),
        source="/helpstream/intake",
        time=NOW,
        correlationid=f"c-{i}",
    )
    return ConsumerRecord(
        topic="helpstream.tickets",
        partition=0,
        offset=i,
        timestamp=0,
        timestamp_type=0,
        key=f"T-{i}".encode(),
        value=event.to_bytes(),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(),
    )


def notifications(store: SlowStore, relay: Relay, max_parallel_sends: int) -> Notifications:
    settings = NotifierSettings(
        max_parallel_sends=max_parallel_sends,
        digest_window_s=0,
        ack_sla_wait_s=0,  # acknowledgements go out at once, as these tests count them
        **secret_settings(NotifierSettings),
    )
    templates = Templates(settings.templates_dir)
    return Notifications(
        store=store,
        rules=load_rules(settings.rules_file),
        templates=templates,
        mail=relay,  # type: ignore[arg-type]
        webhook=None,
        hub=InboxHub(),
        settings=settings,
        clock=FixedClock(NOW),
        metrics=notifier_metrics(CollectorRegistry()),
        topics=Topics(""),
    )


async def test_at_most_max_parallel_sends_mails_are_ever_accepted_but_not_yet_recorded() -> None:
    store = SlowStore(write_s=0.02)
    relay = Relay(store)
    handler = notifications(store, relay, max_parallel_sends=5)

    rejected = await handler.on_events([created(i) for i in range(60)])

    assert rejected == []
    assert len(relay.accepted) == len(set(relay.accepted)) == 60
    assert 0 < relay.worst <= 5
    assert store.sent() == 120  # the mail and the inbox item of each ticket
    assert len(store.inbox) == 60


async def test_mail_accepted_while_the_database_is_away_is_recorded_later_not_sent_again() -> None:
    store = SlowStore(write_s=0.001)
    relay = Relay(store)
    handler = notifications(store, relay, max_parallel_sends=20)
    batch = [created(i) for i in range(10)]

    store.down_after_claim = True  # the database goes away while the mails are sent
    with pytest.raises(Retryable, match="could not be sent yet"):
        await handler.on_events(batch)
    store.down = False
    await handler.on_events(batch)  # the consumer retries the batch

    assert sorted(relay.accepted) == sorted(set(relay.accepted))
    assert len(relay.accepted) == 10
    assert store.sent() == 20
    assert len(store.inbox) == 10


async def test_a_redelivered_batch_stores_no_inbox_item_twice_and_counts_each_once() -> None:
    store = SlowStore(write_s=0.001)
    relay = Relay(store)
    handler = notifications(store, relay, max_parallel_sends=20)
    batch = [created(i) for i in range(10)]

    await handler.on_events(batch)
    await handler.on_events(batch)  # redelivered after a rebalance

    sent = handler._metrics.sent.labels("inbox", "ticket_acknowledged")._value.get()
    assert len(store.inbox) == 10
    assert sent == 10
    assert len(relay.accepted) == 10
