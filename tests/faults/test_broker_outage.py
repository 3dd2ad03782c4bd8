"""The broker stops answering for a while (SIGSTOP); services ride it out and catch up.

Tansu keeps everything in memory, so a restart would lose topics and offsets: an outage
is simulated by freezing the process (SIGSTOP) and thawing it (SIGCONT).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.faults.harness import http_load, settle_and_count

if TYPE_CHECKING:
    from shared.infra.mailcatcher import MailCatcher
    from tests.faults.harness import FaultInfra, System, WebhookReceiver

pytestmark = pytest.mark.faults

OUTAGE_S = 30.0
RATE = 15.0  # tickets/s over HTTP, before, during and after the outage
CATCH_UP_S = 180.0  # a bound on liveness, not a speed test (speed: bench/)
READINESS_OUTAGE_S = 12.0


async def poll_readiness(system: System, seconds: float) -> dict[str, Counter[str]]:
    """Every service's /readyz answers, once a second, for `seconds`."""
    seen: dict[str, Counter[str]] = {name: Counter() for name in system.names}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in system.names:
            seen[name][str(await asyncio.to_thread(system.readyz, name, 2.0))] += 1
        await asyncio.sleep(1.0)
    return seen


async def test_services_keep_running_through_a_broker_outage_and_catch_up_unaided(
    system: System, fault_infra: FaultInfra, mail: MailCatcher, webhook: WebhookReceiver
) -> None:
    started = time.monotonic()
    load_task = asyncio.create_task(
        http_load(system.url("intake"), RATE, OUTAGE_S + 10, run="broker", retry_unavailable=3)
    )
    await asyncio.sleep(4.0)
    fault_infra.pause(fault_infra.kafka)
    paused_at = time.monotonic()
    try:
        readiness = await poll_readiness(system, OUTAGE_S - 1)
        alive_during = system.alive()
        await asyncio.sleep(max(0.0, paused_at + OUTAGE_S - time.monotonic()))
    finally:
        fault_infra.resume(fault_infra.kafka)
    outage = time.monotonic() - paused_at
    load = await load_task
    print(f"\n[broker] outage {outage:.1f}s; /readyz during it: {readiness}")
    print(f"[broker] load: {load.summary()}")

    acc, waited = await settle_and_count(system, load, mail, webhook, timeout=CATCH_UP_S)
    print(f"[broker] counted {waited:.0f}s after the outage: {acc.summary()}")
    print(f"[broker] whole test {time.monotonic() - started:.0f}s")
    assert all(alive_during.values()), f"a service died while the broker was away: {alive_during}"
    assert all(system.alive().values()), system.alive()
    # intake writes tickets to MongoDB and its relay retries: the API does not need Kafka.
    # The catch-up after the broker returns loads the database; a request that waits past
    # the database timeout gets 503 with Retry-After, and the client repeats it with its
    # Idempotency-Key (200 if the first attempt was applied after all). The ticket count
    # below (no ghosts, no duplicates) shows that no repeat opened a second ticket.
    assert set(load.statuses) <= {"201", "200"}, load.summary()
    assert len(load.created) == len(set(load.created)) == load.planned, load.summary()
    assert not acc.problems(), f"{acc.problems()} | {acc.summary()}"


async def test_readyz_reports_not_ready_while_the_broker_is_stopped(
    system: System, fault_infra: FaultInfra
) -> None:
    fault_infra.pause(fault_infra.kafka)
    try:
        readiness = await poll_readiness(system, READINESS_OUTAGE_S)
    finally:
        fault_infra.resume(fault_infra.kafka)
    print(f"\n[broker] /readyz answers during a {READINESS_OUTAGE_S:.0f}s outage: {readiness}")
    never_unready = [name for name, seen in readiness.items() if seen["503"] == 0]
    assert not never_unready, f"/readyz never said 503 while the broker was stopped: {readiness}"
