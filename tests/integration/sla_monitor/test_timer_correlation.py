"""Warnings and breaches fired by a timer keep the correlation id of the request behind them."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.integration.sla_monitor.conftest import T0, Sla, TicketStory
from tests.support import Tap

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_timer_events_carry_the_requests_correlation_id_not_the_ticket_id(
    sla: Sla, sla_tap: Tap, uid: str
) -> None:
    story = TicketStory()
    key, value = story.created()
    event = json.loads(value) | {"correlationid": f"req-{uid}", "traceparent": TRACEPARENT}
    await sla.send((key, json.dumps(event).encode()))
    await sla.wait_for(story.ticket_id, lambda v: len(v["clocks"]) == 2)

    sla.clock.set(T0 + timedelta(hours=3))
    await sla_tap.collect(4, timeout=20)
    records = [json.loads(r.value) for r in await sla_tap.settle(1.0)]
    fired = [
        e
        for e in records
        if e["subject"] == story.ticket_id and e["type"] != "helpstream.sla.applied"
    ]
    assert "helpstream.sla.breached" in {e["type"] for e in fired}
    assert {e["correlationid"] for e in fired} == {f"req-{uid}"}
