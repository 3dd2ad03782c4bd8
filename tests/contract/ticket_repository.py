"""The behaviour every `TicketRepository` promises, run against each implementation.

A test module subclasses `TicketRepositoryContract` and gives it a `harness` fixture: a
fresh, empty repository, and a way to read the events its writes left pending for
publication (what a relay would send next).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from services.intake.domain import Ticket
from services.intake.ports import NewTicket, TicketChange
from shared.events import (
    Category,
    Channel,
    Priority,
    Requester,
    Status,
    TicketRef,
    make_event,
)

if TYPE_CHECKING:
    from services.intake.ports import TicketRepository
    from shared.events import Outgoing

TOPIC = "helpstream.tickets"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Harness(Protocol):
    @property
    def repository(self) -> TicketRepository: ...

    async def pending(self) -> list[Outgoing]:
        """The events written with changes and not yet published, as (topic, event)."""
        ...


def opened(
    ticket_id: str,
    *,
    requester: str = "u-1",
    number: int | None = None,
    follow_up_of: TicketRef | None = None,
) -> Ticket:
    return Ticket.open(
        ticket_id=ticket_id,
        requester=Requester(id=requester, email=f"{requester}@example.com"),
        channel=Channel.web,
        subject=f"withdrawal {ticket_id} stuck",
        description="USDT on TRC20, two hours",
        category=Category.withdrawal_delay,
        priority=Priority.normal,
        group="payments",
        now=NOW,
        number=number,
        follow_up_of=follow_up_of,
    )


def events_of(ticket: Ticket) -> list[Outgoing]:
    return [
        (TOPIC, make_event(data, source="/helpstream/intake", time=NOW, correlationid="c-1"))
        for data in ticket.take_events()
    ]


async def open_ticket(
    repo: TicketRepository,
    ticket_id: str,
    *,
    requester: str = "u-1",
    number: int | None = None,
    follow_up_of: TicketRef | None = None,
) -> Ticket:
    ticket = opened(ticket_id, requester=requester, number=number, follow_up_of=follow_up_of)
    assert await repo.insert(ticket, events_of(ticket), NOW)
    return ticket


class TicketRepositoryContract:
    async def test_an_opened_ticket_reads_back_as_written_with_its_events_pending(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        ticket = opened("T-1", number=100_001)
        events = events_of(ticket)

        assert await repo.insert(ticket, events, NOW)

        stored = await repo.get("T-1")
        assert stored is not None
        assert (stored.subject, stored.number, stored.version) == (ticket.subject, 100_001, 0)
        assert stored.requester == ticket.requester
        assert [e.id for _, e in await harness.pending()] == [e.id for _, e in events]
        assert await repo.get("T-unknown") is None

    async def test_an_idempotency_key_opens_one_ticket_and_finds_it_again(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        first, again = opened("T-1"), opened("T-2")

        assert await repo.insert(first, events_of(first), NOW, open_key="k-1", request_hash="h")
        assert not await repo.insert(again, events_of(again), NOW, open_key="k-1")

        found = await repo.by_open_key("k-1")
        assert found is not None
        assert (found[0].id, found[1]) == ("T-1", "h")
        assert await repo.get("T-2") is None
        assert len(await harness.pending()) == 1
        assert await repo.by_open_key("k-2") is None

    async def test_opens_written_together_each_learn_whether_they_were_first(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        news = [
            NewTicket(t, events_of(t), NOW, open_key=key)
            for t, key in ((opened("T-1"), "k-1"), (opened("T-2"), "k-2"), (opened("T-3"), "k-1"))
        ]

        assert await repo.insert_group(news) == [True, True, False]
        assert await repo.get("T-3") is None
        assert await repo.insert_group([]) == []

    async def test_a_batch_of_opens_skips_the_keys_used_before(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.insert(opened("T-0"), [], NOW, open_key="cmd-0")
        batch = [(t, events_of(t), f"cmd-{n}") for n, t in enumerate(map(opened, ["A", "B"]))]

        assert await repo.insert_many(batch, NOW) == [1]
        assert await repo.get("A") is None
        assert await repo.get("B") is not None

    async def test_ticket_numbers_are_never_handed_out_twice(self, harness: Harness) -> None:
        repo = harness.repository
        first = await repo.next_numbers(3)
        second = await repo.next_numbers(2)

        assert len(first) == 3
        assert len(second) == 2
        assert min(first) >= 100_001
        assert max(first) < min(second)

    async def test_a_number_a_person_types_resolves_to_its_ticket(self, harness: Harness) -> None:
        repo = harness.repository
        await open_ticket(repo, "T-1", number=482_913)

        assert await repo.resolve("482913") == "T-1"
        assert await repo.resolve("#482913") == "T-1"
        assert await repo.resolve("T-9") == "T-9"  # an id is taken as it is
        assert await repo.resolve("#999999") is None
        assert await repo.resolve_many(["#482913", "T-9", "999999"]) == {
            "#482913": "T-1",
            "T-9": "T-9",
        }

    async def test_a_change_is_written_only_over_the_version_it_read(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await open_ticket(repo, "T-1")
        await open_ticket(repo, "T-2")
        read = await repo.get_many(["T-1", "T-2"])
        one, two = read["T-1"][0], read["T-2"][0]
        stale = await repo.get("T-2")
        assert stale is not None
        before = {e.id for _, e in await harness.pending()}

        one.status = two.status = Status.open
        events = [*events_of(opened("X")), *events_of(opened("Y"))]
        written = await repo.save_many(
            [TicketChange(one, events[:1], ["cmd-1"]), TicketChange(two, events[1:], ["cmd-2"])],
            NOW,
        )
        assert written == 2
        stale.status = Status.pending
        late = TicketChange(stale, events_of(opened("Z")), ["cmd-3"])
        assert await repo.save_many([late], NOW) == 0

        now = await repo.get_many(["T-1", "T-2", "T-3"])
        assert set(now) == {"T-1", "T-2"}
        assert (now["T-2"][0].status, now["T-2"][0].version) == (Status.open, 1)
        assert now["T-2"][1] == {"cmd-2"}
        after = {e.id for _, e in await harness.pending()}
        assert after - before == {e.id for _, e in events}  # not Z's: that change lost
        applied = await repo.get_applied("T-1")
        assert applied is not None
        assert applied[1] == ["cmd-1"]

    async def test_only_the_latest_applied_ids_are_remembered(self, harness: Harness) -> None:
        repo = harness.repository
        ticket = await open_ticket(repo, "T-1")
        ids = [f"cmd-{n}" for n in range(650)]
        await repo.save_many([TicketChange(ticket, (), ids[:300])], NOW)
        ticket.version += 1
        await repo.save_many([TicketChange(ticket, (), ids[300:])], NOW)

        applied = await repo.get_applied("T-1")
        assert applied is not None
        assert applied[1] == ids[150:]

    async def test_owners_and_follow_ups_are_read_for_many_tickets(self, harness: Harness) -> None:
        repo = harness.repository
        await open_ticket(repo, "T-1", requester="u-1", number=100_001)
        await open_ticket(repo, "T-2", requester="u-2")
        parent = TicketRef(id="T-1", number=100_001)
        await open_ticket(repo, "T-4", follow_up_of=parent, number=100_004)
        await open_ticket(repo, "T-3", follow_up_of=parent, number=100_003)

        owners = await repo.owners(["T-1", "T-2", "T-9"])
        assert owners == {
            "T-1": (TicketRef(id="T-1", number=100_001), "u-1"),
            "T-2": (TicketRef(id="T-2", number=None), "u-2"),
        }
        assert await repo.follow_ups(["T-1", "T-2"]) == {
            "T-1": [TicketRef(id="T-3", number=100_003), TicketRef(id="T-4", number=100_004)]
        }

    async def test_lists_are_newest_first_filtered_and_paged(self, harness: Harness) -> None:
        repo = harness.repository
        for n in range(1, 6):
            ticket = await open_ticket(repo, f"T-{n}", requester="u-1" if n % 2 else "u-2")
            if n == 5:
                ticket.status = Status.solved
                assert await repo.save_many([TicketChange(ticket)], NOW) == 1

        def ids(tickets: list[Ticket]) -> list[str]:
            return [t.id for t in tickets]

        mine = await repo.list(requester_id="u-1", status=None, before=None, limit=10)
        assert ids(mine) == ["T-5", "T-3", "T-1"]
        page = await repo.list(requester_id=None, status=None, before=None, limit=2)
        assert ids(page) == ["T-5", "T-4"]
        page = await repo.list(requester_id=None, status=None, before="T-4", limit=2)
        assert ids(page) == ["T-3", "T-2"]
        solved = await repo.list(requester_id=None, status=Status.solved, before=None, limit=9)
        assert ids(solved) == ["T-5"]
