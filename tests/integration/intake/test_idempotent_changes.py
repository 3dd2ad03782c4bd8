"""Idempotency-Key on every change: a retried reply, update or escalation is one change."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_http_api import (
    MESSAGE_ADDED,
    assert_problem,
    get_ticket,
    metric_samples,
    of_ticket,
    tickets_tap,
    types,
)
from tests.integration.intake.test_ticket_numbers import csrf_field, status_path

ESCALATED = "helpstream.ticket.escalated"
STATUS_CHANGED = "helpstream.ticket.status_changed"


async def send(
    intake: Intake,
    method: str,
    path: str,
    body: dict[str, Any],
    key: str,
    api_key: str | None = None,
) -> httpx.Response:
    headers = {**intake.auth(*([api_key] if api_key else [])), "Idempotency-Key": key}
    return await intake.http.request(method, path, json=body, headers=headers)


async def test_a_retried_reply_is_one_reply_with_the_same_answer(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    path = f"/v1/tickets/{ticket_id}/messages"
    reply = {"author": "agent", "author_id": "agent-7", "body": "We are checking the chain."}

    async with tickets_tap(intake) as tap:
        first = await send(intake, "POST", path, reply, "reply-1")
        retry = await send(intake, "POST", path, reply, "reply-1")
        await tap.collect(3)
        await tap.settle()

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json()["message"] == first.json()["message"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [m["body"] for m in (await get_ticket(intake, ticket_id))["messages"]] == [
        "We are checking the chain."
    ]
    assert types(of_ticket(tap, ticket_id)).count(MESSAGE_ADDED) == 1


async def test_concurrent_retries_of_a_reply_add_it_once(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    path = f"/v1/tickets/{ticket_id}/messages"
    reply = {"author": "requester", "body": "还是没到账"}

    answers = await asyncio.gather(
        *(send(intake, "POST", path, reply, "tap-tap") for _ in range(4))
    )

    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json()["message"]["id"] for a in answers}) == 1
    assert len((await get_ticket(intake, ticket_id))["messages"]) == 1


async def test_a_reply_key_reused_with_another_body_is_refused_with_422(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    path = f"/v1/tickets/{ticket_id}/messages"
    await send(intake, "POST", path, {"author": "requester", "body": "first"}, "k-1")

    other = await send(intake, "POST", path, {"author": "requester", "body": "second"}, "k-1")

    body = assert_problem(other, 422, "idempotency_key_reused")
    assert "Idempotency-Key" in body["detail"]
    assert [m["body"] for m in (await get_ticket(intake, ticket_id))["messages"]] == ["first"]


async def test_a_retried_update_changes_the_status_once(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    path = f"/v1/tickets/{ticket_id}"

    async with tickets_tap(intake) as tap:
        first = await send(intake, "PATCH", path, {"status": "pending"}, "pend-1")
        retry = await send(intake, "PATCH", path, {"status": "pending"}, "pend-1")
        reused = await send(intake, "PATCH", path, {"status": "solved"}, "pend-1")
        await tap.collect(2)
        await tap.settle()

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json()["status"] == first.json()["status"] == "pending"
    assert_problem(reused, 422, "idempotency_key_reused")
    assert types(of_ticket(tap, ticket_id)).count(STATUS_CHANGED) == 1
    assert (await get_ticket(intake, ticket_id))["status"] == "pending"


async def test_an_update_that_changed_nothing_still_holds_its_key(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    path = f"/v1/tickets/{ticket_id}"

    first = await send(intake, "PATCH", path, {"priority": "normal"}, "noop-1")
    reused = await send(intake, "PATCH", path, {"priority": "urgent"}, "noop-1")

    assert first.status_code == 200
    assert_problem(reused, 422, "idempotency_key_reused")
    assert (await get_ticket(intake, ticket_id))["priority"] == "normal"


async def test_a_retried_escalation_raises_the_level_once(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    path = f"/v1/tickets/{ticket_id}/escalate"

    async with tickets_tap(intake) as tap:
        first = await send(intake, "POST", path, {"by": "requester"}, "esc-1")
        retry = await send(intake, "POST", path, {"by": "requester"}, "esc-1")
        fresh = await send(intake, "POST", path, {"by": "agent"}, "esc-2")
        reused = await send(intake, "POST", path, {"by": "agent"}, "esc-1")
        await tap.collect(4)
        await tap.settle()

    assert [r.json()["escalation_level"] for r in (first, retry, fresh)] == [1, 1, 2]
    assert_problem(reused, 422, "idempotency_key_reused")
    assert types(of_ticket(tap, ticket_id)).count(ESCALATED) == 2
    samples = dict(
        (labels["outcome"], value)
        for labels, value in await metric_samples(
            intake, "helpstream_intake_idempotent_changes_total"
        )
    )
    assert samples == {"applied": 2.0, "replayed": 1.0, "refused": 1.0}


async def test_the_same_key_from_two_api_keys_makes_two_replies(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    other = await intake.key_with("tickets:write", "tickets:read")
    path = f"/v1/tickets/{ticket_id}/messages"
    reply = {"author": "requester", "body": "hello"}

    await send(intake, "POST", path, reply, "same")
    await send(intake, "POST", path, reply, "same", api_key=other)

    assert len((await get_ticket(intake, ticket_id))["messages"]) == 2


async def test_an_idempotency_key_holding_a_seed_phrase_is_kept_only_as_a_digest(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open())["id"]
    phrase = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    path = f"/v1/tickets/{ticket_id}/messages"
    reply = {"author": "requester", "body": "retrying"}

    first = await send(intake, "POST", path, reply, phrase)
    retry = await send(intake, "POST", path, reply, phrase)

    assert retry.json()["message"] == first.json()["message"]
    stored = await intake.runtime.db["tickets"].find_one({"_id": ticket_id})
    assert stored is not None
    assert "abandon" not in repr(stored)
    assert len(stored["messages"]) == 1


async def test_an_overlong_idempotency_key_is_refused_with_422(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]

    answer = await send(
        intake, "PATCH", f"/v1/tickets/{ticket_id}", {"status": "pending"}, "k" * 201
    )

    assert_problem(answer, 422)
    assert (await get_ticket(intake, ticket_id))["status"] == "new"


async def test_a_reply_form_sent_twice_from_the_status_page_is_one_reply(intake: Intake) -> None:
    ticket = await intake.open()
    path = status_path(intake, ticket)
    form = {**csrf_field((await intake.http.get(path)).text), "message": "我已经等了三个小时"}

    sent = [await intake.http.post(f"{path}/reply", data=form) for _ in range(2)]
    edited = await intake.http.post(f"{path}/reply", data={**form, "message": "还有，金额是2500"})

    assert [r.status_code for r in [*sent, edited]] == [303, 303, 303]
    bodies = [m["body"] for m in (await get_ticket(intake, ticket["id"]))["messages"]]
    assert bodies == ["我已经等了三个小时", "还有，金额是2500"]
