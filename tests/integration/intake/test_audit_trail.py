"""The audit trail answers who read or changed a ticket, per ticket and per API key."""

from __future__ import annotations

from tests.integration.intake.conftest import Intake


async def test_reads_and_changes_are_in_the_trail_per_ticket_and_per_key(intake: Intake) -> None:
    agent = await intake.key_with("tickets:read", "tickets:agent")
    agent_id = agent.split("_")[1]
    ticket = await intake.open()
    other = await intake.open()
    headers = intake.auth(agent)
    assert (
        await intake.http.get(f"/v1/tickets/{ticket['id']}", headers=headers)
    ).status_code == 200
    by_number = await intake.http.get(f"/v1/tickets/{ticket['number']}", headers=headers)
    assert by_number.status_code == 200
    replied = await intake.http.post(
        f"/v1/tickets/{ticket['id']}/messages",
        json={"body": "We are on it", "author": "agent", "author_id": "a-1"},
        headers=headers,
    )
    assert replied.status_code == 201
    refused = await intake.http.get("/v1/tickets/no-such-ticket", headers=headers)
    assert refused.status_code == 404

    trail = await intake.http.get(
        "/v1/audit", params={"ticket": ticket["id"]}, headers=intake.auth()
    )
    assert trail.status_code == 200, trail.text
    entries = [(e["actor"], e["action"]) for e in trail.json()]
    assert entries == [  # newest first; a read by number is filed under the ticket's id
        (f"key:{agent_id}", "POST /v1/tickets/{ticket_id}/messages"),
        (f"key:{agent_id}", "GET /v1/tickets/{ticket_id}"),
        (f"key:{agent_id}", "GET /v1/tickets/{ticket_id}"),
        ("key:testadmin", "POST /v1/tickets"),
    ]
    assert all(e["ticket"] == ticket["id"] and "at" in e for e in trail.json())

    by_key = await intake.http.get("/v1/audit", params={"key": agent_id}, headers=intake.auth())
    assert {e["ticket"] for e in by_key.json()} == {ticket["id"]}  # not the other ticket
    assert other["id"] not in by_key.text


async def test_the_trail_is_for_admins_and_needs_one_question(intake: Intake) -> None:
    reader = await intake.key_with("tickets:read")
    forbidden = await intake.http.get("/v1/audit", params={"key": "x"}, headers=intake.auth(reader))
    assert forbidden.status_code == 403
    both = await intake.http.get(
        "/v1/audit", params={"key": "x", "ticket": "y"}, headers=intake.auth()
    )
    assert both.status_code == 422
