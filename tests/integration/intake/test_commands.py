"""helpstream.commands: the same operations as HTTP, invalid ones to the DLQ, once each.

Every command here is signed with the bootstrap key (every scope); what unsigned or
under-scoped commands get is in tests/security/test_signed_commands.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.command_signing import sign_headers
from shared.commands import command_envelope
from shared.infra.modes import Infra
from tests.integration.intake.conftest import ADMIN_KEY, Intake, ticket_body
from tests.support import Tap, eventually


def command(ctype: str, subject: str, data: dict[str, Any], command_id: str | None = None) -> bytes:
    return command_envelope(
        f"helpstream.ticket.{ctype}",
        subject,
        data,
        source="/exchange/withdrawals",
        command_id=command_id,
        correlation_id="corr-cmd-1",
    )


async def produce_signed(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes]],
    api_key: str = ADMIN_KEY,
    signed_at: datetime | None = None,
) -> None:
    """Publish commands as a platform service does: each signed with its API key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            headers = sign_headers(api_key, value, signed_at or datetime.now(UTC))
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def tickets_of(intake: Intake, requester_id: str) -> list[dict[str, Any]]:
    response = await intake.http.get(
        f"/v1/tickets?requester_id={requester_id}", headers=intake.auth()
    )
    return list(response.json()["items"])


async def test_open_command_from_the_withdrawal_service_creates_one_ticket_even_if_redelivered(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    body = ticket_body(requester={"id": "u-cmd", "locale": "en"}, channel="api")
    open_cmd = command("open", "W-88213", body, command_id="cmd-open-1")
    async with Tap(infra.kafka_bootstrap, topics.tickets) as tap:
        await produce_signed(infra.kafka_bootstrap, topics.commands, [(b"W-88213", open_cmd)] * 2)

        async def one_ticket() -> bool:
            return len(await tickets_of(intake, "u-cmd")) == 1

        await eventually(one_ticket)
        await tap.collect(1)
        events = [e for e in (await tap.settle()) if e.value]
    created = [json.loads(r.value) for r in events]
    assert [e["type"] for e in created] == ["helpstream.ticket.created"]
    assert created[0]["correlationid"] == "corr-cmd-1"
    ticket = (await tickets_of(intake, "u-cmd"))[0]
    assert (ticket["category"], ticket["channel"]) == ("withdrawal_delay", "api")


async def test_change_commands_apply_in_order_and_a_duplicate_command_id_has_no_second_effect(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    ticket_id = (await intake.open())["id"]
    reply = command(
        "add_message",
        ticket_id,
        {"author": "agent", "author_id": "agent-7", "body": "We are checking the chain."},
        command_id="cmd-reply-1",
    )
    pending = command("update", ticket_id, {"status": "pending"}, command_id="cmd-pending-1")
    await produce_signed(
        infra.kafka_bootstrap,
        topics.commands,
        [(ticket_id.encode(), m) for m in (reply, pending, reply)],
    )

    async def pending_now() -> bool:
        ticket = (await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())).json()
        return bool(ticket["status"] == "pending")

    await eventually(pending_now)
    await produce_signed(infra.kafka_bootstrap, topics.commands, [(ticket_id.encode(), reply)])
    async with Tap(infra.kafka_bootstrap, topics.tickets) as tap:
        await tap.collect(4)
        records = await tap.settle()
    ticket = (await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())).json()
    assert [m["body"] for m in ticket["messages"]] == ["We are checking the chain."]
    types = [json.loads(r.value)["type"].removeprefix("helpstream.ticket.") for r in records]
    assert types == ["created", "message_added", "status_changed", "status_changed"]


async def test_invalid_commands_go_to_the_dlq_with_a_reason_and_the_consumer_keeps_going(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    ticket_id = (await intake.open())["id"]
    bad = [
        b"\xff\xfe not json",
        command("open", "x", {"channel": "pigeon"}),
        command("teleport", ticket_id, {}),
        command("update", "no-such-ticket", {"status": "open"}),
        command("update", ticket_id, {"status": "closed"}),
    ]
    good = command("update", ticket_id, {"priority": "urgent"})
    async with Tap(infra.kafka_bootstrap, f"{topics.commands}.dlq") as dlq:
        await produce_signed(
            infra.kafka_bootstrap, topics.commands, [(ticket_id.encode(), m) for m in [*bad, good]]
        )
        records = await dlq.collect(5)

        async def urgent() -> bool:
            got = (await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())).json()
            return bool(got["priority"] == "urgent")

        await eventually(urgent)
        records = await dlq.settle()
    reasons = sorted(dict(r.headers)["error-type"].decode() for r in records)
    assert reasons == sorted(
        ["invalid_json", "invalid_data", "unknown_type", "ticket_not_found", "illegal_transition"]
    )
    assert b"\xff\xfe not json" in {r.value for r in records}
    metrics = (await intake.http.get("/metrics")).text
    assert 'outcome="rejected",type="helpstream.ticket.update"' in metrics
