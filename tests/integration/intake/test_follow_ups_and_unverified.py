"""Follow-up tickets for closed ones, and requester messages whose sender is unverified."""

from __future__ import annotations

from typing import Any

from shared.events import TicketCreated, TicketMessageAdded
from shared.infra.modes import Infra
from tests.integration.intake.conftest import Intake, ticket_body
from tests.integration.intake.test_commands import command, produce_signed, tickets_of
from tests.integration.intake.test_http_api import (
    assert_problem,
    get_ticket,
    listed,
    message,
    metric_samples,
    of_ticket,
    patch,
    tickets_tap,
)
from tests.integration.intake.test_ticket_numbers import status_path
from tests.support import Tap, eventually

SPOOFER = "li.wei@examp1e.com"


async def closed_ticket(intake: Intake, **overrides: Any) -> dict[str, Any]:
    ticket = await intake.open(**overrides)
    await patch(intake, ticket["id"], status="solved")
    await patch(intake, ticket["id"], status="closed")
    return ticket


# --- follow-ups ------------------------------------------------------------------------------


async def test_a_follow_up_of_a_closed_ticket_is_linked_both_ways_and_announced(
    intake: Intake,
) -> None:
    closed = await closed_ticket(intake)

    async with tickets_tap(intake) as tap:
        answer = await intake.http.post(
            "/v1/tickets",
            json=ticket_body(follow_up_of=f"#{closed['number']}", description="又没到账了"),
            headers=intake.auth(),
        )
        await tap.collect(4)  # the closed ticket's three events, then the follow-up's

    assert answer.status_code == 201, answer.text
    follow_up = answer.json()
    link = {"id": closed["id"], "number": closed["number"]}
    assert follow_up["follow_up_of"] == link
    assert (await get_ticket(intake, closed["id"]))["follow_ups"] == [
        {"id": follow_up["id"], "number": follow_up["number"]}
    ]
    created = [e.data for e in of_ticket(tap, follow_up["id"])]
    assert isinstance(created[0], TicketCreated)
    assert created[0].follow_up_of is not None
    assert created[0].follow_up_of.model_dump() == link
    page = (await intake.http.get(status_path(intake, closed))).text
    assert f"#{follow_up['number']}" in page


async def test_a_follow_up_of_an_unknown_or_another_requesters_ticket_is_refused(
    intake: Intake,
) -> None:
    someone_else = await closed_ticket(intake, requester={"id": "u-other", "locale": "en"})

    answers = [
        await intake.http.post(
            "/v1/tickets", json=ticket_body(follow_up_of=reference), headers=intake.auth()
        )
        for reference in (someone_else["id"], f"#{someone_else['number']}", "#999999", "nope")
    ]

    for answer in answers:
        body = assert_problem(answer, 422, "follow_up_not_found")
        assert "of this requester" in body["detail"]
    assert [t["id"] for t in (await listed(intake))["items"]] == [someone_else["id"]]


async def test_open_commands_with_a_follow_up_link_it_or_go_to_the_dlq(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    requester = {"id": "u-fu", "locale": "en"}
    closed = await closed_ticket(intake, requester=requester)
    good = command("open", "m-1", ticket_body(requester=requester, follow_up_of=closed["id"]))
    foreign = command(
        "open", "m-2", ticket_body(requester={"id": "u-x"}, follow_up_of=closed["id"])
    )
    async with Tap(infra.kafka_bootstrap, f"{topics.commands}.dlq") as dlq:
        await produce_signed(
            infra.kafka_bootstrap, topics.commands, [(b"m", good), (b"m", foreign)]
        )
        records = await dlq.collect(1)

        async def linked() -> bool:
            return len(await tickets_of(intake, "u-fu")) == 2

        await eventually(linked)
    assert [dict(r.headers)["error-type"] for r in records] == [b"follow_up_not_found"]
    follow_up = (await tickets_of(intake, "u-fu"))[0]
    assert follow_up["follow_up_of"]["id"] == closed["id"]
    assert await tickets_of(intake, "u-x") == []


# --- reopen and closed -----------------------------------------------------------------------


async def test_a_reply_reopens_a_solved_ticket_but_a_closed_one_needs_a_follow_up(
    intake: Intake,
) -> None:
    solved = await intake.open()
    await patch(intake, solved["id"], status="solved")
    closed = await closed_ticket(intake)

    reopened = await message(intake, solved["id"], author="requester", body="还是没到账")
    refused = await message(intake, closed["id"], author="requester", body="还是没到账")

    assert reopened.json()["ticket"]["status"] == "open"
    assert_problem(refused, 409, "ticket_closed")


# --- unverified senders ----------------------------------------------------------------------


async def test_an_unverified_message_is_held_for_agents_and_never_shown_as_the_requesters(
    intake: Intake,
) -> None:
    ticket = await intake.open()
    await patch(intake, ticket["id"], status="solved")
    gateway = {"Authorization": f"Bearer {await intake.key_with('tickets:write')}"}
    reader = {"Authorization": f"Bearer {await intake.key_with('tickets:read')}"}
    spoofed = "Your withdrawal is unlocked, confirm your seed words at wallet-verify.example"

    async with tickets_tap(intake) as tap:
        answer = await intake.http.post(
            f"/v1/tickets/{ticket['number']}/messages",
            json={
                "author": "requester",
                "body": spoofed,
                "verified": False,
                "claimed_from": SPOOFER,
            },
            headers=gateway,
        )
        await tap.collect(3)
        await tap.settle()

    assert answer.status_code == 201, answer.text
    held = answer.json()["message"]
    assert (held["author"], held["public"], held["unverified"]) == ("requester", False, True)
    assert held["claimed_from"] == SPOOFER
    agent_view = await get_ticket(intake, ticket["id"])
    assert [(m["unverified"], m["claimed_from"]) for m in agent_view["messages"]] == [
        (True, SPOOFER)
    ]
    assert agent_view["status"] == "solved"  # a spoofed mail reopens nothing
    requester_view = (await intake.http.get(f"/v1/tickets/{ticket['id']}", headers=reader)).json()
    assert requester_view["messages"] == []
    assert spoofed not in (await intake.http.get(status_path(intake, ticket))).text
    added = [e.data for e in of_ticket(tap, ticket["id"]) if isinstance(e.data, TicketMessageAdded)]
    assert [(a.public, a.body, a.unverified) for a in added] == [(False, None, True)]
    assert b"wallet-verify" not in b"".join(r.value for r in tap.records)
    samples = await metric_samples(intake, "helpstream_intake_unverified_messages_total")
    assert [value for _, value in samples] == [1.0]


async def test_a_claimed_sender_holding_a_secret_is_redacted(intake: Intake) -> None:
    ticket = await intake.open()
    phrase = "abandon ability able about above absent absorb abstract absurd abuse access accident"

    answer = await message(
        intake,
        ticket["id"],
        author="requester",
        body="hello",
        verified=False,
        claimed_from=phrase,
    )

    assert answer.status_code == 201, answer.text
    assert "absorb" not in answer.json()["message"]["claimed_from"]
    stored = await intake.runtime.db["tickets"].find_one({"_id": ticket["id"]})
    assert "absorb" not in repr(stored)


async def test_only_requester_messages_may_be_unverified(intake: Intake) -> None:
    ticket = await intake.open()

    agent = await message(intake, ticket["id"], author="agent", body="x", verified=False)
    claimed = await message(
        intake, ticket["id"], author="requester", body="x", claimed_from="a@b.c"
    )

    assert_problem(agent, 422)
    assert_problem(claimed, 422)
    assert (await get_ticket(intake, ticket["id"]))["messages"] == []


async def test_an_unverified_message_over_kafka_from_a_write_key_is_held(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    ticket = await intake.open()
    gateway = await intake.key_with("tickets:write")
    held = command(
        "add_message",
        f"#{ticket['number']}",
        {"author": "requester", "body": "it's me, reset my 2FA", "verified": False},
    )
    await produce_signed(infra.kafka_bootstrap, topics.commands, [(b"g", held)], api_key=gateway)

    async def arrived() -> bool:
        return bool((await get_ticket(intake, ticket["id"]))["messages"])

    await eventually(arrived)
    stored = (await get_ticket(intake, ticket["id"]))["messages"]
    assert [(m["public"], m["unverified"]) for m in stored] == [(False, True)]


async def test_a_repeated_open_answers_with_the_follow_ups_its_ticket_gained_since(
    intake: Intake,
) -> None:
    """A new ticket's answer has no follow-ups to look up; a repeat of its request does."""
    headers = {**intake.auth(), "Idempotency-Key": "withdrawal-W-follow-up"}
    first = await intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["follow_ups"] == []
    ticket = first.json()
    await patch(intake, ticket["id"], status="solved")
    await patch(intake, ticket["id"], status="closed")
    follow_up = await intake.open(follow_up_of=ticket["id"])

    again = await intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)

    assert again.status_code == 200, again.text
    assert again.json()["follow_ups"] == [{"id": follow_up["id"], "number": follow_up["number"]}]
