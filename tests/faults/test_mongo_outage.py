"""MongoDB goes away for 30 s: frozen (SIGSTOP/SIGCONT), or killed and restarted on its
data directory. Nothing that was not persisted may be committed; nothing is lost after.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.faults.harness import (
    command_load,
    committed_offsets,
    http_load,
    settle_and_count,
)

if TYPE_CHECKING:
    from shared.infra.mailcatcher import MailCatcher
    from tests.faults.harness import FaultInfra, LoadResult, System, WebhookReceiver

pytestmark = pytest.mark.faults

OUTAGE_S = 30.0
HTTP_RATE = 15.0  # tickets/s over HTTP, before, during and after the outage
COMMAND_RATE = 15.0  # ticket.open commands/s on Kafka during the outage
CATCH_UP_S = 180.0  # a bound on liveness, not a speed test (speed: bench/)
DROPPED_CONNECTION = {"ReadError", "RemoteProtocolError"}
SETTLE_S = 4.0  # a batch persisted just before the outage may still commit meanwhile


def groups(system: System) -> dict[str, tuple[str, str]]:
    """Consumer group → the topic whose offsets it must not move without MongoDB."""
    prefix = system.topics.prefix
    return {
        f"{prefix}helpstream-intake-commands": ("intake", system.topics.commands),
        f"{prefix}helpstream-sla_monitor-tickets": ("sla_monitor", system.topics.tickets),
        f"{prefix}helpstream-feedback-tickets": ("feedback", system.topics.tickets),
        f"{prefix}helpstream-notifier-events": ("notifier", system.topics.tickets),
    }


async def offsets(system: System) -> dict[str, dict[int, int]]:
    return {
        group: await committed_offsets(system.infra.bootstrap, group, topic)
        for group, (_, topic) in groups(system).items()
    }


async def ride_out(
    system: System,
    infra: FaultInfra,
    mail: MailCatcher,
    webhook: WebhookReceiver,
    *,
    label: str,
    kill: bool,
) -> None:
    started = time.monotonic()
    http_task = asyncio.create_task(
        http_load(system.url("intake"), HTTP_RATE, OUTAGE_S + 16, run=label, timeout=15)
    )
    await asyncio.sleep(6.0)  # a backlog builds up in the slower consumers
    if kill:
        infra.kill_mongo()
    else:
        infra.pause(infra.mongo)
    down_at = time.monotonic()
    restart_s = 0.0
    try:
        commands_task = asyncio.create_task(
            command_load(
                infra.bootstrap, system.topics.commands, COMMAND_RATE, OUTAGE_S - SETTLE_S - 4
            )
        )
        await asyncio.sleep(SETTLE_S)
        before = await offsets(system)
        readiness: dict[str, Counter[str]] = {name: Counter() for name in system.names}
        while time.monotonic() < down_at + OUTAGE_S - 2:
            for name in system.names:
                readiness[name][str(await asyncio.to_thread(system.readyz, name, 2.0))] += 1
            await asyncio.sleep(1.0)
        after = await offsets(system)
        commands = await commands_task
        alive_during = system.alive()
        await asyncio.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
    finally:
        if kill:
            restart_s = infra.restart_mongo()
        else:
            infra.resume(infra.mongo)
    outage = time.monotonic() - down_at
    http: LoadResult = await http_task
    print(f"\n[{label}] outage {outage:.1f}s (restart took {restart_s:.1f}s)")
    print(f"[{label}] HTTP load: {http.summary()}")
    print(f"[{label}] HTTP answers other than 201: {http.samples}")
    print(f"[{label}] commands during the outage: {commands.summary()}")
    print(f"[{label}] /readyz during the outage: {readiness}")
    moved = {
        group: (before[group], after[group]) for group in before if before[group] != after[group]
    }
    print(f"[{label}] committed offsets {SETTLE_S:.0f}s into the outage: {before}")
    print(f"[{label}] committed offsets at its end: {after}")

    everything = http
    everything.created = [*http.created, *commands.created]
    # notifier keeps what its channels accepted while the database was away and records it
    # when the database returns. A webhook whose answer was lost to the outage's timeouts is
    # retried with the same Idempotency-Key, which the receiver drops (seen: 0 to 1).
    acc, waited = await settle_and_count(
        system, everything, mail, webhook, timeout=CATCH_UP_S, allowed_resends=20
    )
    print(f"[{label}] counted {waited:.0f}s after MongoDB returned: {acc.summary()}")
    print(f"[{label}] whole test {time.monotonic() - started:.0f}s")

    assert all(alive_during.values()), f"a service died without MongoDB: {alive_during}"
    assert all(system.alive().values()), system.alive()
    assert not moved, f"offsets committed while MongoDB could persist nothing: {moved}"
    errors = {s: n for s, n in http.statuses.items() if s != "201"}
    assert errors, f"intake answered every request while MongoDB was down: {http.summary()}"
    # A dropped connection counts as an error answer too: uvicorn closes the connection after
    # an unhandled exception, so a keep-alive request racing that close sees ReadError.
    not_5xx = {
        s: n
        for s, n in errors.items()
        if not (s.isdigit() and int(s) >= 500) and s not in DROPPED_CONNECTION
    }
    assert not not_5xx, f"HTTP during the outage neither 201 nor 5xx: {http.summary()}"
    assert not any("Traceback" in body for body in http.samples.values()), http.samples
    ready_200 = {name: seen["200"] for name, seen in readiness.items() if seen["200"]}
    assert not ready_200, f"/readyz said 200 without MongoDB: {readiness}"
    assert not acc.problems(), f"{acc.problems()} | {acc.summary()}"


async def test_a_frozen_mongodb_commits_nothing_and_loses_nothing_after_it_thaws(
    system: System, fault_infra: FaultInfra, mail: MailCatcher, webhook: WebhookReceiver
) -> None:
    await ride_out(system, fault_infra, mail, webhook, label="mongo-SIGSTOP", kill=False)


async def test_a_killed_mongodb_restarted_on_its_data_commits_nothing_and_loses_nothing(
    system: System, fault_infra: FaultInfra, mail: MailCatcher, webhook: WebhookReceiver
) -> None:
    await ride_out(system, fault_infra, mail, webhook, label="mongo-kill9", kill=True)
