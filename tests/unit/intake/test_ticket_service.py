"""TicketService on the in-memory repository: what a caller sees when it repeats a
request, types a number, or races another writer.

The same behaviour over HTTP on the real broker and MongoDB is in
`tests/integration/intake`; these run in milliseconds and reach the races a real
database rarely shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from services.intake.handlers import ConcurrentChange, IdempotencyMismatch, TicketService
from services.intake.memory_store import MemoryTicketRepository
from services.intake.metrics import intake_metrics
from services.intake.ports import TicketChange
from services.intake.triage import load_rules
from shared.clock import FixedClock
from shared.commands import AddMessage, OpenTicket
from shared.events import Author, TicketCreated, TicketMessageAdded
from shared.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from services.intake.auth import StoredKey
    from shared.events import Contract

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class NoKeys:
    """No command signing keys: these tests speak HTTP use cases only."""

    async def lookup_many(self, key_ids: Collection[str]) -> Mapping[str, StoredKey | None]:
        return {}


def service(repo: MemoryTicketRepository) -> TicketService:
    return TicketService(
        store=repo,
        clock=FixedClock(NOW),
        topics=Topics(),
        rules=load_rules(),
        metrics=intake_metrics(CollectorRegistry()),
        keys=NoKeys(),
    )


def open_command(subject: str = "USDT withdrawal stuck") -> OpenTicket:
    return OpenTicket.model_validate(
        {
            "requester": {"id": "u-42", "email": "li.wei@example.com", "locale": "zh-CN"},
            "channel": "app",
            "subject": subject,
            "description": "My TRC20 USDT withdrawal has been pending for 3 hours",
        }
    )


def published(repo: MemoryTicketRepository, kind: type[Contract]) -> list[str]:
    return [event.subject for _, event in repo.published if isinstance(event.data, kind)]


async def test_the_same_idempotency_key_opens_one_ticket_and_answers_with_it() -> None:
    repo = MemoryTicketRepository()
    tickets = service(repo)

    first = await tickets.open(open_command(), correlation_id="c-1", open_key="key-1")
    again = await tickets.open(open_command(), correlation_id="c-2", open_key="key-1")

    assert (first.created, again.created) == (True, False)
    assert again.ticket.id == first.ticket.id
    assert published(repo, TicketCreated) == [first.ticket.id]
    with pytest.raises(IdempotencyMismatch):
        await tickets.open(open_command("another"), correlation_id="c-3", open_key="key-1")


async def test_a_ticket_is_found_by_the_number_a_person_types() -> None:
    repo = MemoryTicketRepository()
    tickets = service(repo)
    opened = (await tickets.open(open_command(), correlation_id="c-1")).ticket

    assert opened.number is not None
    found = await tickets.get(f"#{opened.number}")
    assert found.id == opened.id


async def test_a_reply_sent_twice_with_one_idempotency_key_is_added_once() -> None:
    repo = MemoryTicketRepository()
    tickets = service(repo)
    ticket = (await tickets.open(open_command(), correlation_id="c-1")).ticket
    reply = AddMessage(author=Author.agent, author_id="agent-7", body="We are checking")

    first = await tickets.change(ticket.id, reply, correlation_id="c-2", idempotency_key="r-1")
    again = await tickets.change(ticket.id, reply, correlation_id="c-3", idempotency_key="r-1")

    assert (first.replayed, again.replayed) == (False, True)
    assert first.message is not None
    assert again.message == first.message
    assert published(repo, TicketMessageAdded) == [ticket.id]


class AlwaysRaced(MemoryTicketRepository):
    """Another writer changes every ticket between each read and its write."""

    async def save_many(self, changes: Sequence[TicketChange], now: datetime) -> int:
        for change in changes:
            current = await self.get(change.ticket.id)
            assert current is not None
            await super().save_many([TicketChange(current)], now)
        return await super().save_many(changes, now)


async def test_a_change_that_keeps_losing_races_is_refused_and_writes_nothing() -> None:
    repo = AlwaysRaced()
    tickets = service(repo)
    ticket = (await tickets.open(open_command(), correlation_id="c-1")).ticket
    reply = AddMessage(author=Author.agent, body="We are checking")

    with pytest.raises(ConcurrentChange):
        await tickets.change(ticket.id, reply, correlation_id="c-2")

    stored = await repo.get(ticket.id)
    assert stored is not None
    assert stored.messages == []
    assert published(repo, TicketMessageAdded) == []


async def test_a_lost_race_is_retried_on_the_fresh_ticket() -> None:
    class RacedOnce(MemoryTicketRepository):
        raced = False

        async def save_many(self, changes: Sequence[TicketChange], now: datetime) -> int:
            if not self.raced and changes:
                self.raced = True
                current = await self.get(changes[0].ticket.id)
                assert current is not None
                await super().save_many([TicketChange(current)], now)
            return await super().save_many(changes, now)

    repo = RacedOnce()
    tickets = service(repo)
    ticket = (await tickets.open(open_command(), correlation_id="c-1")).ticket
    reply = AddMessage(author=Author.agent, body="We are checking")

    changed = await tickets.change(ticket.id, reply, correlation_id="c-2")

    stored = await repo.get(ticket.id)
    assert stored is not None
    assert [m.body for m in stored.messages] == ["We are checking"]
    assert stored.version == 2  # the racer's write, then ours
    assert changed.message is not None
    assert published(repo, TicketMessageAdded) == [ticket.id]
