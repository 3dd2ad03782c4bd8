"""The behaviour every `SlaRepository` promises, run against each implementation.

A test module subclasses `SlaRepositoryContract` and gives it a `harness` fixture: a
fresh, empty repository, and a way to read the events its saves left pending for
publication (what a relay would send next).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from services.sla_monitor.domain import TicketSla
from services.sla_monitor.policy import load_policies, parse_policies
from services.sla_monitor.ports import SlaChange
from shared.events import Category, Priority, SlaMetric, SlaWarning, Status, make_event

if TYPE_CHECKING:
    from services.sla_monitor.policy import PolicySet
    from services.sla_monitor.ports import SlaRepository
    from shared.events import Outgoing

TOPIC = "helpstream.sla"
OPENED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW = OPENED + timedelta(seconds=1)
OTHER_POLICIES = """
warnings: [0.5]
policies:
  - name: everything
    match: {}
    targets:
      first_reply: {target: 1h}
      resolution: {target: 3d}
"""


class Harness(Protocol):
    @property
    def repository(self) -> SlaRepository: ...

    async def pending(self) -> list[Outgoing]:
        """The events saved with changes and not yet published, as (topic, event)."""
        ...


def opened(ticket_id: str, policies: PolicySet, *, partition: int = 0) -> TicketSla:
    return TicketSla.start(
        ticket_id=ticket_id,
        partition=partition,
        priority=Priority.high,
        category=Category.withdrawal_delay,
        tier="standard",
        status=Status.new,
        created_at=OPENED,
        policies=policies,
    )


def warning(ticket_id: str, event_id: str) -> Outgoing:
    data = SlaWarning.model_validate(
        {
            "ticket_id": ticket_id,
            "metric": "first_reply",
            "priority": "high",
            "policy": "urgent",
            "policy_version": "v1-00000000",
            "target_s": 600.0,
            "elapsed_s": 450.0,
            "remaining_s": 150.0,
            "threshold": 0.75,
            "deadline": (OPENED + timedelta(minutes=10)).isoformat(),
        }
    )
    return TOPIC, make_event(
        data, source="/helpstream/sla_monitor", time=NOW, correlationid="c-1", event_id=event_id
    )


class SlaRepositoryContract:
    async def test_a_new_ticket_is_saved_with_its_events_and_the_ids_it_applied(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        policies = load_policies()
        sla = opened("T-1", policies)

        lost = await repo.save(
            [SlaChange(sla, NOW, [warning("T-1", "w-1")], ["e-1"], new=True)], NOW
        )

        assert lost == 0
        loaded = await repo.load(["T-1", "T-unknown"])
        assert set(loaded) == {"T-1"}
        stored, seen = loaded["T-1"]
        assert seen == {"e-1"}
        assert stored.version == 0
        assert stored.timers.keys() == sla.timers.keys()
        assert stored.timers[SlaMetric.first_reply] == sla.timers[SlaMetric.first_reply]
        assert [event.id for _, event in await harness.pending()] == ["w-1"]
        assert (await repo.get("T-1")) == stored

    async def test_a_ticket_created_twice_is_written_once_and_publishes_once(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        policies = load_policies()
        first = SlaChange(opened("T-1", policies), NOW, [warning("T-1", "w-1")], ["e-1"], new=True)
        again = SlaChange(opened("T-1", policies), NOW, [warning("T-1", "w-2")], ["e-2"], new=True)

        assert await repo.save([first], NOW) == 0
        assert await repo.save([again], NOW) == 1

        _, seen = (await repo.load(["T-1"]))["T-1"]
        assert seen == {"e-1"}
        assert [event.id for _, event in await harness.pending()] == ["w-1"]

    async def test_a_change_saves_only_over_the_version_it_read(self, harness: Harness) -> None:
        repo = harness.repository
        policies = load_policies()
        await repo.save([SlaChange(opened("T-1", policies), NOW, new=True)], NOW)
        read, _ = (await repo.load(["T-1"]))["T-1"]
        stale = replace(read, status=Status.pending)

        read.status = Status.open
        assert await repo.save([SlaChange(read, NOW, [warning("T-1", "w-1")], ["e-2"])], NOW) == 0
        assert await repo.save([SlaChange(stale, NOW, [warning("T-1", "w-2")], ["e-3"])], NOW) == 1

        saved, seen = (await repo.load(["T-1"]))["T-1"]
        assert (saved.status, saved.version) == (Status.open, 1)
        assert seen == {"e-2"}
        assert [event.id for _, event in await harness.pending()] == ["w-1"]

    async def test_a_batch_that_lost_some_races_tells_which_changes_were_written(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        policies = load_policies()
        await repo.save([SlaChange(opened("T-2", policies), NOW, new=True)], NOW)
        current, _ = (await repo.load(["T-2"]))["T-2"]
        stale = replace(current, version=current.version + 7)

        lost = await repo.save(
            [
                SlaChange(opened("T-1", policies), NOW, seen=["e-1"], new=True),
                SlaChange(stale, NOW, seen=["e-2"]),
                SlaChange(opened("T-3", policies), NOW, seen=["e-3"], new=True),
            ],
            NOW,
        )

        assert lost == 1
        assert await repo.applied({"T-1": "e-1", "T-2": "e-2", "T-3": "e-3"}) == {"T-1", "T-3"}

    async def test_only_the_latest_applied_ids_are_remembered(self, harness: Harness) -> None:
        repo = harness.repository
        policies = load_policies()
        ids = [f"e-{n}" for n in range(250)]
        await repo.save([SlaChange(opened("T-1", policies), NOW, seen=ids[:150], new=True)], NOW)
        read, _ = (await repo.load(["T-1"]))["T-1"]
        await repo.save([SlaChange(read, NOW, seen=ids[150:])], NOW)

        _, seen = (await repo.load(["T-1"]))["T-1"]
        assert seen == set(ids[50:])

    async def test_due_tickets_are_those_of_the_partition_due_by_then_soonest_first(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        policies = load_policies()
        due_at = {
            "T-late": NOW + timedelta(minutes=3),
            "T-soon": NOW + timedelta(minutes=1),
            "T-later": NOW + timedelta(hours=1),
        }
        await repo.save(
            [SlaChange(opened(t, policies), at, new=True) for t, at in due_at.items()]
            + [
                SlaChange(opened("T-other", policies, partition=1), NOW, new=True),
                SlaChange(opened("T-never", policies), None, new=True),
            ],
            NOW,
        )

        until = NOW + timedelta(minutes=5)
        assert [s.ticket_id for s in await repo.due(0, until, 10)] == ["T-soon", "T-late"]
        assert [s.ticket_id for s in await repo.due(0, until, 1)] == ["T-soon"]
        assert [s.ticket_id for s in await repo.due(1, until, 10)] == ["T-other"]
        assert await repo.due(2, until, 10) == []

    async def test_policy_versions_are_numbered_once_and_found_by_any_instance(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        first = load_policies()
        first_hash = first.version
        known = await repo.register(first)
        assert list(known) == [f"v1-{first_hash[:8]}"]
        assert first.version == f"v1-{first_hash[:8]}"

        other = parse_policies(OTHER_POLICIES)
        other_hash = other.version
        known = await repo.register(other)  # a newer instance, one step along a deploy
        assert set(known) == {f"v1-{first_hash[:8]}", f"v2-{other_hash[:8]}"}
        assert set(await repo.register(load_policies())) == set(known)  # numbered once

        found = await repo.find_versions({f"v2-{other_hash[:8]}", first_hash, "v9-00000000"})
        assert set(found) == {f"v2-{other_hash[:8]}", first_hash}
        assert found[first_hash].version == f"v1-{first_hash[:8]}"
        assert found[f"v2-{other_hash[:8]}"].policy("everything") is not None

    async def test_open_timer_counts_move_and_a_recount_replaces_them(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        policies = load_policies()
        assert await repo.open_counts() is None

        assert (await repo.add_open({"first_reply": 3, "resolution": 1}))["first_reply"] == 3
        moved = await repo.add_open({"first_reply": -1})
        assert (moved["first_reply"], moved["resolution"]) == (2, 1)

        sla = opened("T-1", policies)
        await repo.save([SlaChange(sla, NOW, new=True)], NOW)
        counts = await repo.reconcile_open(NOW)
        expected = {m.value: int(m in sla.timers) for m in SlaMetric}
        assert counts == expected
        assert await repo.open_counts() == expected

    async def test_a_warned_timer_counts_as_at_risk_until_it_breaches(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        policies = load_policies()
        sla = opened("T-1", policies)
        await repo.save([SlaChange(sla, NOW, new=True)], NOW)
        assert not any((await repo.at_risk_counts()).values())

        read, _ = (await repo.load(["T-1"]))["T-1"]
        target = read.timers[SlaMetric.first_reply].target
        read.fire(OPENED + target * 0.8, policies)
        await repo.save([SlaChange(read, NOW)], NOW)
        assert (await repo.at_risk_counts())["first_reply"] == 1

        read, _ = (await repo.load(["T-1"]))["T-1"]
        read.fire(OPENED + target * 2, policies)
        await repo.save([SlaChange(read, NOW)], NOW)
        assert (await repo.at_risk_counts())["first_reply"] == 0
