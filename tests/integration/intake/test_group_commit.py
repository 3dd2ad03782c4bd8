"""HTTP opens arriving together share their writes (numbers, tickets, audit entries), and
each request still gets its own ticket, its own number and its own answer."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.events import TicketCreated
from shared.infra.embedded import mongo_process, mongo_url
from shared.infra.processes import free_port
from shared.runtime import ServiceRuntime
from tests.integration.intake.conftest import ADMIN_KEY, Intake, ticket_body
from tests.integration.intake.test_http_api import assert_problem, tickets_tap
from tests.support import eventually, running

if TYPE_CHECKING:
    from pathlib import Path

OPENS = 50


def sample(intake: Intake, name: str, labels: dict[str, str]) -> float:
    value = intake.runtime.registry.get_sample_value(f"helpstream_intake_{name}", labels)
    return value or 0.0


async def test_fifty_concurrent_opens_get_fifty_tickets_and_numbers_each_on_the_topic_once(
    intake: Intake,
) -> None:
    key = await intake.key_with("tickets:write", "tickets:read")
    requester = {"id": "u-group", "email": "group@example.com", "locale": "en"}
    async with tickets_tap(intake) as tap:
        answers = await asyncio.gather(
            *(
                intake.http.post(
                    "/v1/tickets",
                    json=ticket_body(requester=requester, subject=f"withdrawal {n} stuck"),
                    headers=intake.auth(key),
                )
                for n in range(OPENS)
            )
        )
        assert [a.status_code for a in answers] == [201] * OPENS, [a.text for a in answers]
        opened = [a.json() for a in answers]
        ids = {t["id"] for t in opened}
        numbers = [t["number"] for t in opened]
        assert len(ids) == OPENS
        assert len(set(numbers)) == OPENS
        assert all(
            a.headers["location"] == f"/v1/tickets/{t['id']}"
            for a, t in zip(answers, opened, strict=True)
        )
        assert sorted(t["subject"] for t in opened) == sorted(
            f"withdrawal {n} stuck" for n in range(OPENS)
        )  # each answer is its own request's ticket

        async def all_created() -> bool:
            await tap.collect(OPENS, timeout=1.0)
            created = [e for e in tap.events() if isinstance(e.data, TicketCreated)]
            return len(created) >= OPENS

        await eventually(all_created, timeout=60)
        await tap.settle()
    created = Counter(e.subject for e in tap.events() if isinstance(e.data, TicketCreated))
    assert set(created) == ids
    assert set(created.values()) == {1}
    on_topic = {e.data.ticket.number for e in tap.events() if isinstance(e.data, TicketCreated)}
    assert on_topic == set(numbers)

    listed = await intake.http.get(
        "/v1/tickets", params={"requester_id": "u-group", "limit": 100}, headers=intake.auth(key)
    )
    assert {t["id"] for t in listed.json()["items"]} == ids

    key_id = key.split("_")[1]
    trail = await intake.http.get(
        "/v1/audit", params={"key": key_id, "limit": 500}, headers=intake.auth()
    )
    opens = [e for e in trail.json() if e["action"] == "POST /v1/tickets"]
    assert sorted(e["ticket"] for e in opens) == sorted(ids)  # one entry per request

    # every ticket insert went through a group (how many groups depends on timing)
    assert sample(intake, "group_commit_requests_sum", {"write": "tickets"}) >= OPENS
    assert sample(intake, "group_commit_requests_sum", {"write": "numbers"}) >= OPENS


async def test_one_idempotency_key_sent_ten_times_at_once_opens_one_ticket_named_by_every_answer(
    intake: Intake,
) -> None:
    requester = {"id": "u-retry-storm", "locale": "en"}
    headers = {**intake.auth(), "Idempotency-Key": "withdrawal-W-1-open"}
    async with tickets_tap(intake) as tap:
        answers = await asyncio.gather(
            *(
                intake.http.post(
                    "/v1/tickets", json=ticket_body(requester=requester), headers=headers
                )
                for _ in range(10)
            )
        )
        assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [
            a.text for a in answers
        ]
        named = {a.json()["id"] for a in answers}
        assert len(named) == 1
        assert {a.headers["location"] for a in answers} == {f"/v1/tickets/{named.pop()}"}
        await tap.collect(1)
        await tap.settle()
    created = [
        e
        for e in tap.events()
        if isinstance(e.data, TicketCreated) and e.data.requester.id == "u-retry-storm"
    ]
    assert len(created) == 1
    assert created[0].subject == answers[0].json()["id"]
    listed = await intake.http.get(
        "/v1/tickets", params={"requester_id": "u-retry-storm"}, headers=intake.auth()
    )
    assert len(listed.json()["items"]) == 1


async def test_one_key_sent_at_once_with_two_bodies_opens_one_ticket_and_refuses_the_other_body(
    intake: Intake,
) -> None:
    requester = {"id": "u-key-clash", "locale": "en"}
    headers = {**intake.auth(), "Idempotency-Key": "clash-1"}
    bodies = [ticket_body(requester=requester, subject=f"body {n % 2}") for n in range(6)]
    answers = await asyncio.gather(
        *(intake.http.post("/v1/tickets", json=body, headers=headers) for body in bodies)
    )

    listed = await intake.http.get(
        "/v1/tickets", params={"requester_id": "u-key-clash"}, headers=intake.auth()
    )
    (ticket,) = listed.json()["items"]
    for body, answer in zip(bodies, answers, strict=True):
        if body["subject"] == ticket["subject"]:
            assert answer.status_code in (200, 201), answer.text
            assert answer.json()["id"] == ticket["id"]
        else:
            assert_problem(answer, 422, "idempotency_key_reused")
    assert sum(a.status_code == 201 for a in answers) == 1


async def test_opens_are_written_one_by_one_when_group_commit_is_off(make_settings: Any) -> None:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY, http_group_commit_ms=0)
    runtime = ServiceRuntime("intake", settings)
    async with running(create_app(settings, runtime)) as http:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        answers = await asyncio.gather(
            *(http.post("/v1/tickets", json=ticket_body(), headers=auth) for _ in range(5))
        )
        assert [a.status_code for a in answers] == [201] * 5
        assert len({a.json()["number"] for a in answers}) == 5
        groups = runtime.registry.get_sample_value(
            "helpstream_intake_group_commit_requests_count", {"write": "tickets"}
        )
        assert groups is None  # nothing went through a group


async def _open_during_outage(
    http: httpx.AsyncClient, runtime: ServiceRuntime, database_pid: int
) -> tuple[list[httpx.Response], float]:
    """Ten concurrent opens while the database is frozen; the failed number groups."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    # An invalid body is refused after the key check, which caches the key: the opens
    # below pass it without the database and stop at their shared number write.
    warm = await http.post("/v1/tickets", json={}, headers=auth)
    assert warm.status_code == 422
    os.kill(database_pid, signal.SIGSTOP)
    try:
        answers = await asyncio.gather(
            *(http.post("/v1/tickets", json=ticket_body(), headers=auth) for _ in range(10))
        )
    finally:
        os.kill(database_pid, signal.SIGCONT)
    failed = runtime.registry.get_sample_value(
        "helpstream_intake_group_commit_seconds_count", {"write": "numbers", "outcome": "failed"}
    )
    return list(answers), failed or 0.0


async def test_a_database_outage_during_a_group_answers_503_to_every_request_in_it(
    make_settings: Any, tmp_path: Path
) -> None:
    port = free_port()
    database = mongo_process(port, tmp_path / "logs", None)  # its own, to freeze it
    database.start(timeout=60)
    try:
        assert database.process is not None
        pid = database.process.pid
        settings = make_settings(
            IntakeSettings,
            bootstrap_api_key=ADMIN_KEY,
            mongo_url=mongo_url(port),
            mongo_timeout_ms=1500,
            http_group_commit_ms=20,
        )
        runtime = ServiceRuntime("intake", settings)
        async with running(create_app(settings, runtime)) as http:
            failed = 0.0
            for _ in range(3):  # the cached key must still be fresh when the ten arrive
                answers, failed = await _open_during_outage(http, runtime, pid)
                for answer in answers:
                    body = assert_problem(answer, 503)
                    assert answer.headers["retry-after"] == "5"
                    assert "database" in body["detail"]
                if failed:
                    break
            assert failed >= 1, "no number group failed: the outage was not met by a group"

            async def opens_again() -> bool:
                answer = await http.post(
                    "/v1/tickets",
                    json=ticket_body(),
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )
                return answer.status_code == 201

            await eventually(opens_again, timeout=60, interval=0.5)
    finally:
        database.stop()
