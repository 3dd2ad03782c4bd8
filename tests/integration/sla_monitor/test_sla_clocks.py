"""SLA clocks on the real broker and MongoDB, driven by event times and a moved clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.clock import FixedClock
from shared.events import Author, Category, Priority, Status
from tests.integration.sla_monitor.conftest import T0, Sla, TicketStory, sla_events
from tests.support import Tap


async def advance_to(sla: Sla, at: datetime, tap: Tap, expected: int) -> list[object]:
    sla.clock.set(at)
    await tap.collect(expected, timeout=20)
    return list(await tap.settle(1.0))


async def test_first_reply_warns_at_75_and_90_percent_then_breaches_once(
    sla: Sla, sla_tap: Tap
) -> None:
    story = TicketStory()
    await sla.send(story.created())
    await sla.wait_for(story.ticket_id, lambda v: len(v["clocks"]) == 2)

    await advance_to(sla, T0 + timedelta(minutes=46), sla_tap, 3)
    await advance_to(sla, T0 + timedelta(minutes=55), sla_tap, 4)
    records = await advance_to(sla, T0 + timedelta(minutes=61), sla_tap, 5)
    records = await advance_to(sla, T0 + timedelta(hours=3), sla_tap, 5)

    first_reply = [e for e in sla_events(records, story.ticket_id) if e[1] == "first_reply"]
    assert first_reply == [
        ("applied", "first_reply", 1),
        ("warning", "first_reply", 0.75),
        ("warning", "first_reply", 0.9),
        ("breached", "first_reply", 1),
    ]
    view = await sla.clocks(story.ticket_id)
    clock = next(c for c in view["clocks"] if c["metric"] == "first_reply")
    assert clock["breached_at"].startswith("2026-11-23T03:00:00")


async def test_an_agent_reply_before_the_deadline_fulfils_and_cancels_the_warnings(
    sla: Sla, sla_tap: Tap
) -> None:
    story = TicketStory()
    reply_at = T0 + timedelta(minutes=40)
    await sla.send(story.created(), story.message(Author.agent, reply_at))
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(
            c["metric"] == "first_reply" and c["state"] == "stopped" for c in v["clocks"]
        ),
    )
    records = await advance_to(sla, T0 + timedelta(hours=2), sla_tap, 3)

    first_reply = [e for e in sla_events(records, story.ticket_id) if e[1] == "first_reply"]
    assert first_reply == [("applied", "first_reply", 1), ("fulfilled", "first_reply", 1)]
    metrics = (await sla.http.get("/metrics")).text
    assert "helpstream_sla_monitor_time_to_first_reply_seconds_count" in metrics


async def test_next_reply_runs_per_requester_message_cycle(sla: Sla, sla_tap: Tap) -> None:
    story = TicketStory()
    await sla.send(
        story.created(),
        story.message(Author.agent, T0 + timedelta(minutes=5)),
        story.message(Author.requester, T0 + timedelta(minutes=10)),
        story.message(Author.agent, T0 + timedelta(minutes=20)),
        story.message(Author.requester, T0 + timedelta(minutes=30)),
    )
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(c["metric"] == "next_reply" and c["cycle"] == 2 for c in v["clocks"]),
    )
    records = await advance_to(sla, T0 + timedelta(minutes=30, hours=2, seconds=1), sla_tap, 7)

    next_reply = [e for e in sla_events(records, story.ticket_id) if e[1] == "next_reply"]
    assert next_reply == [
        ("applied", "next_reply", 1),
        ("fulfilled", "next_reply", 1),
        ("applied", "next_reply", 2),
        ("breached", "next_reply", 2),
    ]


async def test_pending_pauses_resolution_and_the_paused_time_does_not_count(
    sla: Sla, sla_tap: Tap
) -> None:
    story = TicketStory()
    await sla.send(
        story.created(),
        story.message(Author.agent, T0 + timedelta(minutes=10)),
        story.status_to(Status.open, T0 + timedelta(minutes=10)),
        story.status_to(Status.pending, T0 + timedelta(hours=1)),
    )
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(c["metric"] == "resolution" and c["paused"] for c in v["clocks"]),
    )
    await sla.send(story.status_to(Status.open, T0 + timedelta(hours=5)))
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(c["metric"] == "resolution" and c["state"] == "running" for c in v["clocks"]),
    )
    view = await sla.clocks(story.ticket_id)
    resolution = next(c for c in view["clocks"] if c["metric"] == "resolution")
    # 8h target, 1h spent before the pause, 4h paused: due 12h after creation
    assert resolution["deadline"].startswith("2026-11-23T14:00:00")

    records = await advance_to(sla, T0 + timedelta(hours=12, seconds=1), sla_tap, 6)
    kinds = [e[0] for e in sla_events(records, story.ticket_id) if e[1] == "resolution"]
    assert kinds == ["applied", "paused", "resumed", "breached"]  # late: no stale warnings


async def test_priority_change_reapplies_the_policy_from_the_tickets_start(
    sla: Sla, sla_tap: Tap
) -> None:
    story = TicketStory()
    await sla.send(story.created())
    await sla.wait_for(story.ticket_id, lambda v: v["policy"] == "standard")
    await sla.send(story.priority_to(Priority.urgent, T0 + timedelta(minutes=5)))
    await sla.wait_for(story.ticket_id, lambda v: v["policy"] == "urgent")

    # urgent: first reply within 15 min of creation, already 5 min spent
    records = await advance_to(sla, T0 + timedelta(minutes=16), sla_tap, 5)
    first_reply = [e for e in sla_events(records, story.ticket_id) if e[1] == "first_reply"]
    assert first_reply[-1] == ("breached", "first_reply", 1)
    assert [e[0] for e in first_reply].count("applied") == 2


async def test_a_reopened_ticket_resumes_resolution_with_the_time_already_spent(
    sla: Sla, sla_tap: Tap
) -> None:
    story = TicketStory()
    await sla.send(
        story.created(),
        story.message(Author.agent, T0 + timedelta(minutes=10)),
        story.status_to(Status.open, T0 + timedelta(minutes=10)),
        story.status_to(Status.solved, T0 + timedelta(hours=2)),
    )
    await sla.wait_for(story.ticket_id, lambda v: v["status"] == "solved")
    await sla.send(story.status_to(Status.open, T0 + timedelta(hours=20)))
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(c["metric"] == "resolution" and c["state"] == "running" for c in v["clocks"]),
    )
    view = await sla.clocks(story.ticket_id)
    resolution = next(c for c in view["clocks"] if c["metric"] == "resolution")
    assert resolution["deadline"].startswith("2026-11-24T04:00:00")  # reopen + (8h - 2h)


async def test_business_hours_skip_nights_weekends_and_holidays(sla: Sla) -> None:
    # Thursday 2026-12-24 17:00 in Shanghai; Friday the 25th is a holiday here.
    created = datetime.fromisoformat("2026-12-24T09:00:00+00:00")
    story = TicketStory(category=Category.kyc, created_at=created)
    await sla.send(story.created())
    await sla.wait_for(story.ticket_id, lambda v: v["policy"] == "kyc-office-hours")
    view = await sla.clocks(story.ticket_id)
    # 1h on Thursday, then Monday 09:00-10:00 Shanghai (02:00 UTC) for the second hour
    assert view["clocks"][0]["deadline"].startswith("2026-12-28T02:00:00")


async def test_redelivered_ticket_events_change_nothing(sla: Sla, sla_tap: Tap) -> None:
    story = TicketStory()
    created = story.created()
    reply = story.message(Author.agent, T0 + timedelta(minutes=5))
    await sla.send(created, reply)
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(
            c["metric"] == "first_reply" and c["state"] == "stopped" for c in v["clocks"]
        ),
    )
    await sla.send(created, reply, created)
    records = await advance_to(sla, T0 + timedelta(minutes=30), sla_tap, 3)
    assert [e[0] for e in sla_events(records, story.ticket_id)] == [
        "applied",
        "applied",
        "fulfilled",
    ]


async def test_a_late_agent_reply_counts_at_its_event_time_not_its_arrival(
    sla: Sla, sla_tap: Tap
) -> None:
    story = TicketStory()
    await sla.send(story.created())
    await sla.wait_for(story.ticket_id, lambda v: len(v["clocks"]) == 2)
    await advance_to(sla, T0 + timedelta(minutes=50), sla_tap, 3)  # the 75% warning fired

    await sla.send(story.message(Author.agent, T0 + timedelta(minutes=40)))  # arrives late
    records = await advance_to(sla, T0 + timedelta(hours=2), sla_tap, 4)

    events = [
        json.loads(r.value) for r in records if json.loads(r.value)["subject"] == story.ticket_id
    ]
    first_reply = [
        (e["type"].removeprefix("helpstream.sla."), e["data"]["elapsed_s"])
        for e in events
        if e["data"]["metric"] == "first_reply"
    ]
    assert [kind for kind, _ in first_reply] == ["applied", "warning", "fulfilled"]
    assert first_reply[-1][1] == 40 * 60


async def test_the_operator_reapply_needs_the_operator_key(make_sla: Any) -> None:
    key = {"Authorization": "Bearer op-key-7f3a-0123456789abcdefghijklmnop"}
    async with make_sla(
        FixedClock(T0), operator_api_key="op-key-7f3a-0123456789abcdefghijklmnop"
    ) as sla:
        story = TicketStory()
        await sla.send(story.created())
        await sla.wait_for(story.ticket_id, lambda v: len(v["clocks"]) == 2)
        route = f"/v1/tickets/{story.ticket_id}/sla/reapply"
        anonymous = await sla.http.post(route)
        wrong = await sla.http.post(route, headers={"Authorization": "Bearer op-key-guess"})
        allowed = await sla.http.post(route, headers=key)
        unknown = await sla.http.post("/v1/tickets/no-such-ticket/sla/reapply", headers=key)
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert "operator API key" in anonymous.json()["detail"]
    assert allowed.status_code == 200
    assert allowed.json()["ticket_id"] == story.ticket_id
    assert unknown.status_code == 404
