"""Ticket numbers people can say (#482913): unique, increasing, accepted wherever the id is."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import TicketCreated
from shared.infra.modes import Infra
from shared.web.links import TicketLink, sign_ticket_link
from tests.integration.intake.conftest import Intake, ticket_body
from tests.integration.intake.test_commands import command, produce_signed, tickets_of
from tests.integration.intake.test_http_api import (
    assert_problem,
    escalate,
    get_ticket,
    message,
    of_ticket,
    patch,
    tickets_tap,
)
from tests.support import Tap, eventually


async def test_concurrent_http_opens_get_unique_increasing_six_digit_numbers(
    intake: Intake,
) -> None:
    first = await intake.open()
    opened = await asyncio.gather(
        *(
            intake.http.post("/v1/tickets", json=ticket_body(), headers=intake.auth())
            for _ in range(8)
        )
    )
    last = await intake.open()

    assert [r.status_code for r in opened] == [201] * 8
    numbers = [first["number"], *(r.json()["number"] for r in opened), last["number"]]
    assert len(set(numbers)) == len(numbers)
    assert all(100_000 <= n <= 999_999 for n in numbers)
    assert first["number"] < min(numbers[1:-1]) <= max(numbers[1:-1]) < last["number"]
    assert first["reference"] == f"#{first['number']}"


async def test_a_batch_of_open_commands_numbers_every_ticket_once(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    before = (await intake.open())["number"]
    body = ticket_body(requester={"id": "u-batch", "locale": "en"}, channel="api")
    opens = [command("open", f"W-{i}", body, command_id=f"batch-open-{i}") for i in range(12)]
    async with Tap(infra.kafka_bootstrap, topics.tickets, intake.settings) as tap:
        # Every open twice (a redelivery): twelve tickets, twelve numbers.
        await produce_signed(
            infra.kafka_bootstrap, topics.commands, [(b"W", m) for m in opens + opens]
        )

        async def twelve() -> bool:
            return len(await tickets_of(intake, "u-batch")) == 12

        await eventually(twelve)
        await tap.collect(13)
    numbers = sorted(t["number"] for t in await tickets_of(intake, "u-batch"))
    assert len(set(numbers)) == 12
    assert numbers[0] > before
    created = [e.data for e in tap.events() if isinstance(e.data, TicketCreated)]
    assert sorted(c.ticket.number or 0 for c in created if c.requester.id == "u-batch") == numbers


async def test_every_ticket_route_accepts_the_number_as_well_as_the_id(intake: Intake) -> None:
    ticket = await intake.open()
    number = str(ticket["number"])
    spoken = "%23" + number  # "#482913", URL-encoded

    by_number = await get_ticket(intake, number)
    by_hash = await get_ticket(intake, spoken)
    replied = await message(intake, spoken, author="requester", body="any news?")
    changed = await patch(intake, number, priority="high")
    raised = await escalate(intake, spoken, by="requester")

    assert by_number["id"] == by_hash["id"] == ticket["id"]
    assert replied.status_code == 201, replied.text
    assert changed.status_code == 200, changed.text
    assert raised.status_code == 200, raised.text
    after = await get_ticket(intake, ticket["id"])
    assert [m["body"] for m in after["messages"] if m["author"] == "requester"] == ["any news?"]
    assert after["escalation_level"] == 1
    assert after["number"] == ticket["number"]


async def test_a_number_no_ticket_has_answers_404_on_every_route(intake: Intake) -> None:
    await intake.open()
    unknown = "%23999999"

    answers = [
        await intake.http.get(f"/v1/tickets/{unknown}", headers=intake.auth()),
        await message(intake, unknown, author="requester", body="hello"),
        await patch(intake, unknown, status="open"),
        await escalate(intake, unknown, by="requester"),
    ]

    for answer in answers:
        assert_problem(answer, 404, "ticket_not_found")


async def test_change_commands_may_name_their_ticket_by_number(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    ticket = await intake.open()
    number = ticket["number"]
    reply = command("add_message", f"#{number}", {"author": "agent", "body": "Checking."})
    pending = command("update", str(number), {"status": "pending"})
    unknown = command("update", "#999999", {"status": "pending"})
    async with Tap(infra.kafka_bootstrap, f"{topics.commands}.dlq") as dlq:
        await produce_signed(
            infra.kafka_bootstrap, topics.commands, [(b"k", m) for m in (reply, pending, unknown)]
        )

        async def pending_now() -> bool:
            return bool((await get_ticket(intake, ticket["id"]))["status"] == "pending")

        await eventually(pending_now)
        records = await dlq.collect(1)
    assert [dict(r.headers)["error-type"] for r in records] == [b"ticket_not_found"]
    got = await get_ticket(intake, ticket["id"])
    assert [m["body"] for m in got["messages"]] == ["Checking."]


async def test_ticket_events_carry_the_number(intake: Intake) -> None:
    async with tickets_tap(intake) as tap:
        ticket = await intake.open()
        await message(intake, ticket["id"], author="agent", body="We are on it.")
        await tap.collect(3)

    events = of_ticket(tap, ticket["id"])
    assert len(events) >= 3
    assert {json.loads(e.to_bytes())["data"]["ticket"]["number"] for e in events} == {
        ticket["number"]
    }


async def test_the_status_page_shows_the_number(intake: Intake) -> None:
    ticket = await intake.open()
    page = await intake.http.get(status_path(intake, ticket))

    assert page.status_code == 200
    assert f"#{ticket['number']}" in page.text


def status_path(intake: Intake, ticket: dict[str, Any]) -> str:
    link = TicketLink(ticket["requester"]["id"], ticket["id"], "en", "UTC")
    secret = intake.settings.requester_link_secret.get_secret_value().encode()
    return "/t/" + sign_ticket_link(secret, link, datetime.now(UTC), timedelta(days=1))


def csrf_field(html: str) -> dict[str, str]:
    """The hidden fields of the reply form, as a browser would send them."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
