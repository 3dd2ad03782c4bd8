"""kill -9 each service in turn while tickets flow; restarted, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from shared.infra.services import SERVICES
from tests.faults.harness import command_load, events_on_topics, settle_and_count

if TYPE_CHECKING:
    from shared.infra.mailcatcher import MailCatcher
    from tests.faults.harness import System, WebhookReceiver

pytestmark = pytest.mark.faults

# With the test's own receivers beside them, the four services carry ~25 tickets/s (~170
# events/s over all topics) on this machine's two cores; 60 commands/s (~200 events/s while
# it lasts, 120/s gave ~290/s and a 54 s catch-up) leaves a backlog that drains well
# within the test's bound.
RATE = 60.0  # ticket.open commands per second
SECONDS = 16.0
KILL_EVERY_S = 3.0
CATCH_UP_S = 180.0  # a bound on liveness, not a speed test (speed: bench/)


# accepted-but-unrecorded messages at the kill, both channels together: at most notifier's
# max_parallel_sends (20), plus a webhook retried after an answer lost to the kill
RESEND_BOUND = 30


async def test_kill_9_of_each_service_under_load_loses_and_doubles_nothing(
    system: System, mail: MailCatcher, webhook: WebhookReceiver
) -> None:
    started = time.monotonic()
    events_before = await events_on_topics(system.infra.bootstrap, system.topics)
    load_task = asyncio.create_task(
        command_load(system.infra.bootstrap, system.topics.commands, RATE, SECONDS)
    )
    restarts: dict[str, float] = {}
    for name in SERVICES:
        await asyncio.sleep(KILL_EVERY_S)
        await asyncio.to_thread(system.kill, name)
        await asyncio.sleep(0.5)
        begun = time.monotonic()
        await asyncio.to_thread(system.start, name)
        restarts[name] = round(time.monotonic() - begun, 1)
    load = await load_task
    load_s = time.monotonic() - started
    events_in_load = await events_on_topics(system.infra.bootstrap, system.topics) - events_before
    print(f"\n[kill -9] load: {load.summary()}")
    print(f"[kill -9] killed and restarted (seconds to ready again): {restarts}")

    # notifier records each message sent the moment its channel accepts it, and a send keeps
    # its slot until then, so a kill can resend only what was accepted and not yet recorded
    # (at most max_parallel_sends), always with the same Message-ID or Idempotency-Key,
    # which receivers drop. Every notification arrives once by its id.
    acc, waited = await settle_and_count(
        system, load, mail, webhook, timeout=CATCH_UP_S, allowed_resends=RESEND_BOUND
    )
    alive = system.alive()
    events = await events_on_topics(system.infra.bootstrap, system.topics) - events_before
    print(
        f"[kill -9] events on all topics: {events_in_load} while the load ran "
        f"({events_in_load / load_s:.0f}/s), {events} in all "
        f"({events / (time.monotonic() - started):.0f}/s until counted)"
    )
    print(f"[kill -9] counted after {waited:.0f}s of catch-up: {acc.summary()}")
    print(f"[kill -9] whole test {time.monotonic() - started:.0f}s; alive={alive}")
    assert all(alive.values()), alive
    assert acc.tickets == len(load.created), acc.summary()
    assert not acc.problems(), f"{acc.problems()} | {acc.summary()}"
