"""SLA of tickets linked to an incident, on the real broker and MongoDB: updates answer the
reply clocks, resolution waits for the incident, and the SLA events say so."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.events import (
    Author,
    Status,
    TicketIncidentUpdate,
    TicketLinkedToIncident,
    TicketStatusChanged,
)
from shared.ids import new_id
from tests.integration.sla_monitor.conftest import T0, Sla, TicketStory, sla_events
from tests.support import Tap


def linked(story: TicketStory, incident_id: str, at: datetime) -> tuple[bytes, bytes]:
    data = TicketLinkedToIncident(
        ticket_id=story.ticket_id, ticket=story._summary(), incident_id=incident_id, by="scope"
    )
    return story._event(data, at)


def update(story: TicketStory, incident_id: str, at: datetime) -> tuple[bytes, bytes]:
    data = TicketIncidentUpdate(
        ticket_id=story.ticket_id,
        ticket=story._summary(),
        incident_id=incident_id,
        update_id=new_id(),
        body="TRC20 withdrawals resume at 14:00 UTC.",
        posted_at=at,
    )
    return story._event(data, at)


def solved_by(story: TicketStory, incident_id: str, at: datetime) -> tuple[bytes, bytes]:
    old, story.status = story.status, Status.solved
    data = TicketStatusChanged(
        ticket_id=story.ticket_id,
        ticket=story._summary(),
        old=old,
        new=Status.solved,
        incident_id=incident_id,
    )
    return story._event(data, at)


def incident_ids(records: list[Any], ticket_id: str, kind: str) -> list[str | None]:
    """The `incident_id` of each SLA event of one kind for one ticket."""
    out = []
    for record in records:
        event = json.loads(record.value)
        if event["subject"] == ticket_id and event["type"] == f"helpstream.sla.{kind}":
            out.append(event["data"].get("incident_id"))
    return out


async def test_updates_keep_linked_tickets_answered_while_unlinked_ones_breach(
    sla: Sla, sla_tap: Tap
) -> None:
    incident = new_id()
    storm, bystander = TicketStory(), TicketStory()
    await sla.send(
        storm.created(),
        bystander.created(),
        storm.message(Author.agent, T0 + timedelta(minutes=5)),
        bystander.message(Author.agent, T0 + timedelta(minutes=5)),
        linked(storm, incident, T0 + timedelta(minutes=6)),
        storm.message(Author.requester, T0 + timedelta(minutes=10)),
        bystander.message(Author.requester, T0 + timedelta(minutes=10)),
        update(storm, incident, T0 + timedelta(hours=1)),
        storm.message(Author.requester, T0 + timedelta(hours=1, minutes=30)),
        update(storm, incident, T0 + timedelta(hours=2)),
    )
    await sla.wait_for(
        storm.ticket_id,
        lambda v: any(
            c["metric"] == "next_reply" and c["cycle"] == 2 and c["state"] == "stopped"
            for c in v["clocks"]
        ),
    )
    sla.clock.set(T0 + timedelta(hours=2, minutes=11))
    await sla_tap.collect(1, timeout=20)
    records = list(await sla_tap.settle(2.0))  # everything read so far

    storm_replies = [e for e in sla_events(records, storm.ticket_id) if e[1] == "next_reply"]
    assert storm_replies == [
        ("applied", "next_reply", 1),
        ("fulfilled", "next_reply", 1),
        ("applied", "next_reply", 2),
        ("fulfilled", "next_reply", 2),
    ]
    bystander_replies = [
        e[0] for e in sla_events(records, bystander.ticket_id) if e[1] == "next_reply"
    ]
    assert "breached" in bystander_replies
    assert "fulfilled" not in bystander_replies


async def test_resolution_waits_for_the_incident_and_its_history_says_why(
    sla: Sla, sla_tap: Tap
) -> None:
    incident = new_id()
    story = TicketStory()
    await sla.send(
        story.created(),
        story.message(Author.agent, T0 + timedelta(minutes=5)),
        linked(story, incident, T0 + timedelta(hours=1)),
    )
    await sla.wait_for(
        story.ticket_id,
        lambda v: any(c["metric"] == "resolution" and c["paused"] for c in v["clocks"]),
    )
    sla.clock.set(T0 + timedelta(hours=20))  # far past the 8 h target: the storm lasts
    await sla.send(solved_by(story, incident, T0 + timedelta(hours=20)))
    await sla.wait_for(
        story.ticket_id,
        lambda v: all(c["state"] == "stopped" for c in v["clocks"]),
    )
    records = list(await sla_tap.settle(2.0))

    resolution = [e[0] for e in sla_events(records, story.ticket_id) if e[1] == "resolution"]
    assert resolution == ["applied", "paused", "fulfilled"]
    assert incident_ids(records, story.ticket_id, "paused") == [incident]
    view = await sla.clocks(story.ticket_id)
    clock = next(c for c in view["clocks"] if c["metric"] == "resolution")
    assert clock["elapsed_s"] == 3600  # only the hour before the link counted
    assert clock["breached_at"] is None
