"""When the outbox relay runs: at once after a small write, after the consumer's bulk writes
pause (at most `max_defer_s` later), and never without a round when writes keep coming."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry

from shared.clock import SystemClock
from shared.metrics import outbox_metrics
from shared.outbox import OutboxRelay


class CountingRelay(OutboxRelay):
    """A relay over no collections that records when each round starts."""

    def __init__(self, **pacing: Any) -> None:
        super().__init__(
            [],
            producer=None,  # type: ignore[arg-type]
            metrics=outbox_metrics(CollectorRegistry(), "test"),
            clock=SystemClock(),
            idle_interval_s=30.0,
            **pacing,
        )
        self.rounds: list[float] = []

    async def relay_once(self) -> int:
        self.rounds.append(time.monotonic())
        return 0


async def test_a_small_write_is_relayed_at_once() -> None:
    relay = CountingRelay(quiet_s=0.3, max_defer_s=2.0)
    relay.start()
    try:
        await asyncio.sleep(0.05)  # the first round, at start
        woken = time.monotonic()
        relay.wake(1)
        await asyncio.sleep(0.1)
    finally:
        await relay.stop()
    assert len(relay.rounds) == 2
    assert relay.rounds[1] - woken < 1.0  # not the 30 s idle poll


async def test_bulk_writes_hold_the_relay_off_until_they_pause() -> None:
    relay = CountingRelay(quiet_s=0.2, max_defer_s=3.0, bulk_events=50)
    relay.start()
    try:
        await asyncio.sleep(0.05)
        for _ in range(6):  # a consumer working through a backlog, one batch every 0.1 s
            relay.wake(500)
            await asyncio.sleep(0.1)
        last = time.monotonic() - 0.1
        await asyncio.sleep(0.5)
    finally:
        await relay.stop()
    # one round at start, then none until the writes paused for `quiet_s` or more
    assert len(relay.rounds) == 2
    assert relay.rounds[1] - last >= 0.19


async def test_under_endless_bulk_writes_a_round_still_comes_within_max_defer() -> None:
    relay = CountingRelay(quiet_s=0.2, max_defer_s=0.4, bulk_events=50)
    relay.start()
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            relay.wake(500)
            await asyncio.sleep(0.05)
    finally:
        await relay.stop()
    gaps = [b - a for a, b in zip(relay.rounds[1:], relay.rounds[2:], strict=False)]
    assert len(relay.rounds) >= 3  # without the bound, no round at all until the writes stop
    assert max(gaps) < 1.5


async def test_a_small_write_ends_a_deferral_for_bulk_writes_at_once() -> None:
    # a breach fired by a timer, or an HTTP ticket, while a consumer works through a backlog
    relay = CountingRelay(quiet_s=5.0, max_defer_s=10.0, bulk_events=50)
    relay.start()
    try:
        await asyncio.sleep(0.05)
        relay.wake(500)
        await asyncio.sleep(0.05)
        relay.wake(500)  # the relay now defers for seconds
        await asyncio.sleep(0.2)
        rounds_before = len(relay.rounds)
        woken = time.monotonic()
        relay.wake(1)
        await asyncio.sleep(0.3)
    finally:
        await relay.stop()
    assert len(relay.rounds) == rounds_before + 1
    assert relay.rounds[-1] - woken < 1.0
