"""Two instances split the partitions and fire each breach once, across rebalances and restarts."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from shared.clock import FixedClock
from shared.events import Author
from tests.integration.sla_monitor.conftest import T0, Sla, TicketStory, sla_events
from tests.support import Tap, eventually


async def both_assigned(one: Sla, two: Sla) -> None:
    async def split() -> bool:
        a = (await one.http.get("/readyz")).json()["checks"]["consumer:tickets"]
        b = (await two.http.get("/readyz")).json()["checks"]["consumer:tickets"]
        return bool(a and b)

    await eventually(split, timeout=30)


def count(records: list[Any], stories: list[TicketStory], kind: str, metric: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for story in stories:
        for event in sla_events(records, story.ticket_id):
            if event[0] == kind and event[1] == metric:
                found[story.ticket_id] += 1
    return found


async def test_two_instances_fire_each_breach_exactly_once_even_when_one_leaves(
    make_sla: Any,
) -> None:
    clock = FixedClock(T0)
    stories = [TicketStory() for _ in range(12)]
    async with make_sla(clock) as one:
        topic = one.settings.topic_prefix + "helpstream.sla"
        async with Tap(one.infra.kafka_bootstrap, topic) as tap:
            async with make_sla(clock) as two:
                await both_assigned(one, two)
                await one.send(*(s.created() for s in stories))
                await tap.collect(24)  # two sla.applied per ticket
                clock.set(T0 + timedelta(minutes=61))
                await tap.collect(24 + 12)
            # `two` has left: `one` owns every partition now
            await one.send(
                *(s.message(Author.requester, T0 + timedelta(minutes=62)) for s in stories)
            )
            await tap.collect(24 + 12 + 12)
            clock.set(T0 + timedelta(hours=4))
            await tap.collect(24 + 12 + 12 + 12)
            records = await tap.settle(1.5)

    first = count(records, stories, "breached", "first_reply")
    following = count(records, stories, "breached", "next_reply")
    assert first == {s.ticket_id: 1 for s in stories}
    assert following == {s.ticket_id: 1 for s in stories}


async def test_a_restart_between_warning_and_deadline_neither_loses_nor_repeats_anything(
    make_sla: Any,
) -> None:
    clock = FixedClock(T0)
    stories = [TicketStory() for _ in range(5)]
    async with make_sla(clock) as first:
        topic = first.settings.topic_prefix + "helpstream.sla"
        async with Tap(first.infra.kafka_bootstrap, topic) as tap:
            await first.send(*(s.created() for s in stories))
            await tap.collect(10)
            clock.set(T0 + timedelta(minutes=46))
            await tap.collect(15)  # one 75% warning each
    clock.set(T0 + timedelta(minutes=61))  # the deadline passes while nobody runs
    await asyncio.sleep(0)
    async with make_sla(clock) as second, Tap(second.infra.kafka_bootstrap, topic) as tap:
        await tap.collect(20)
        records = await tap.settle(1.5)

    assert count(records, stories, "warning", "first_reply") == {s.ticket_id: 1 for s in stories}
    assert count(records, stories, "breached", "first_reply") == {s.ticket_id: 1 for s in stories}
