"""Rolling deploys: a ticket keeps the policy version its clocks began under, even when an
instance that started with another policy file handles it.

The two instances share one database; each reads its own topic, so the test decides which
one handles which event (in a deployment, whichever owns the ticket's partition does)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient

from shared.clock import FixedClock
from shared.events import Author, Status
from tests.integration.sla_monitor.conftest import POLICIES, T0, Sla, TicketStory

if TYPE_CHECKING:
    from pathlib import Path

NEWER = POLICIES.replace(
    """  - name: standard
    targets:
      first_reply: {target: 1h}
      next_reply: {target: 2h}
      resolution: {target: 8h}
""",
    """  - name: standard
    pause_resolution_on_hold: false
    targets:
      first_reply: {target: 3h}
      next_reply: {target: 5h}
      resolution: {target: 20h}
""",
)
HOUR = 3600.0


@pytest.fixture
def newer_file(tmp_path: Path) -> Path:
    path = tmp_path / "newer.yaml"
    path.write_text(NEWER)
    return path


def clock_of(view: dict[str, Any], metric: str) -> dict[str, Any] | None:
    return next((c for c in view["clocks"] if c["metric"] == metric), None)


async def opened_by_newer(
    make_sla: Any, clock: FixedClock, older: Sla, newer_file: Path, story: TicketStory
) -> str:
    """An instance started after `older`, with the newer file, opens the ticket; returns
    the version its clocks began under."""
    prefix = older.settings.topic_prefix + "newer."
    async with make_sla(clock, sla_policies=newer_file, topic_prefix=prefix) as newer:
        await newer.send(story.created())
        await newer.wait_for(story.ticket_id, lambda v: len(v["clocks"]) == 2)
        return str((await newer.clocks(story.ticket_id))["policy_version"])


def lookups(metrics_text: str, outcome: str) -> float:
    name = f'helpstream_sla_monitor_policy_version_lookups_total{{outcome="{outcome}"}}'
    line = next((ln for ln in metrics_text.splitlines() if ln.startswith(name)), None)
    return float(line.split()[-1]) if line else 0.0


async def test_an_older_instance_pauses_and_resumes_a_ticket_on_the_newer_versions_targets(
    make_sla: Any, newer_file: Path
) -> None:
    clock = FixedClock(T0)
    story = TicketStory()
    async with make_sla(clock) as older:  # started first: its memory holds its own file only
        newer_version = await opened_by_newer(make_sla, clock, older, newer_file, story)
        await older.send(
            story.message(Author.agent, T0 + timedelta(minutes=10)),
            story.message(Author.requester, T0 + timedelta(minutes=20)),
            story.status_to(Status.on_hold, T0 + timedelta(minutes=30)),  # newer: keeps running
            story.status_to(Status.pending, T0 + timedelta(minutes=40)),  # pauses both
            story.status_to(Status.open, T0 + timedelta(minutes=50)),  # resumes both
        )
        await older.wait_for(story.ticket_id, lambda v: v["status"] == "open")
        clock.set(T0 + timedelta(hours=1))
        view = await older.clocks(story.ticket_id)
        metrics = (await older.http.get("/metrics")).text

    resolution, next_reply = clock_of(view, "resolution"), clock_of(view, "next_reply")
    assert view["policy_version"] == newer_version
    assert resolution is not None
    assert next_reply is not None
    assert resolution["target_s"] == 20 * HOUR
    assert resolution["state"] == "running"
    assert resolution["elapsed_s"] == 50 * 60  # paused only while pending
    assert next_reply["target_s"] == 5 * HOUR
    assert next_reply["deadline"].startswith("2026-11-23T07:30:00")  # 20m + 5h + 10m paused
    assert lookups(metrics, "loaded") == 1
    assert lookups(metrics, "missing") == 0


async def test_a_version_found_nowhere_keeps_the_recorded_targets_and_is_counted(
    make_sla: Any, newer_file: Path
) -> None:
    clock = FixedClock(T0)
    story = TicketStory()
    async with make_sla(clock) as older:
        newer_version = await opened_by_newer(make_sla, clock, older, newer_file, story)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(older.settings.mongo_url)
        try:
            versions = client[f"{older.settings.mongo_db_prefix}_sla_monitor"]["policy_versions"]
            await versions.delete_many({"number": int(newer_version[1:].split("-")[0])})
        finally:
            await client.close()
        await older.send(
            story.message(Author.requester, T0 + timedelta(minutes=20)),
            story.status_to(Status.open, T0 + timedelta(minutes=30)),
        )
        await older.wait_for(story.ticket_id, lambda v: v["status"] == "open")
        view = await older.clocks(story.ticket_id)
        metrics = (await older.http.get("/metrics")).text

    first_reply, resolution = clock_of(view, "first_reply"), clock_of(view, "resolution")
    assert view["policy_version"] == newer_version
    assert first_reply is not None
    assert resolution is not None
    assert first_reply["target_s"] == 3 * HOUR
    assert resolution["target_s"] == 20 * HOUR
    assert clock_of(view, "next_reply") is None  # no cycle from the current file's targets
    assert lookups(metrics, "missing") >= 1
