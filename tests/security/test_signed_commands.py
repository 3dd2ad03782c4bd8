"""A Kafka producer is not support.

Before: any producer on `helpstream.commands` could add an `author: agent` reply asking the
requester for their 12 words, and change priority and assignee; the requester was mailed
the forged "support reply". Now a command carries the authority of an API key (key id,
HMAC-SHA256 over the exact bytes and a timestamp, with a signing key bound to the API key)
and intake applies the same scopes as over HTTP; anything else is dead-lettered with the
reason and never reaches `helpstream.tickets`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer

from shared.command_signing import sign_headers
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_commands import command
from tests.support import Tap, eventually

if TYPE_CHECKING:
    from shared.infra.modes import Infra

SEED_PHRASE_ASK = "Security check: reply with your 12 recovery words to unlock the withdrawal."
Headers = list[tuple[str, bytes]]


def signed(api_key: str, value: bytes, at: datetime | None = None) -> Headers:
    return sign_headers(api_key, value, at or datetime.now(UTC))


async def send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, Headers]]) -> None:
    """(Kafka key, value, headers): exactly what a producer on the topic can write."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers or None)
    finally:
        await producer.stop()


async def dead_letters(intake: Intake, infra: Infra, count: int) -> dict[str, str]:
    """Kafka key → `error-type` of the records intake dead-lettered (at least `count`)."""
    async with Tap(infra.kafka_bootstrap, f"{intake.runtime.topics.commands}.dlq") as dlq:
        await dlq.collect(count)
        records = await dlq.settle()
    return {r.key.decode(): dict(r.headers)["error-type"].decode() for r in records}


async def ticket(intake: Intake, ticket_id: str) -> dict[str, Any]:
    response = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())
    return dict(response.json())


async def events_after_created(intake: Intake, infra: Infra) -> list[str]:
    async with Tap(infra.kafka_bootstrap, intake.runtime.topics.tickets) as tap:
        await tap.collect(1)
        records = await tap.settle()
    return [json.loads(r.value)["type"].removeprefix("helpstream.ticket.") for r in records][1:]


def forged_reply(ticket_id: str) -> bytes:
    return command(
        "add_message",
        ticket_id,
        {"author": "agent", "author_id": "agent-7", "body": SEED_PHRASE_ASK},
    )


def forged_takeover(ticket_id: str) -> bytes:
    return command("update", ticket_id, {"priority": "low", "assignee": "mallory"})


async def test_an_unsigned_agent_reply_asking_for_the_seed_phrase_is_dead_lettered_and_never_sent(
    intake: Intake, infra: Infra
) -> None:
    before = await intake.open()
    topic = intake.runtime.topics.commands
    ticket_id = before["id"]

    await send(
        infra.kafka_bootstrap,
        topic,
        [
            (b"reply", forged_reply(ticket_id), []),
            (b"takeover", forged_takeover(ticket_id), []),
        ],
    )

    assert await dead_letters(intake, infra, 2) == {
        "reply": "unsigned_command",
        "takeover": "unsigned_command",
    }
    after = await ticket(intake, ticket_id)
    assert after["messages"] == []
    assert (after["priority"], after["assignee"]) == (before["priority"], before["assignee"])
    assert await events_after_created(intake, infra) == []
    metrics = (await intake.http.get("/metrics")).text
    assert 'helpstream_intake_commands_refused_total{reason="unsigned_command"} 2.0' in metrics


async def test_a_write_key_cannot_speak_as_an_agent_or_take_a_ticket_over_through_kafka(
    intake: Intake, infra: Infra
) -> None:
    before = await intake.open()
    ticket_id = before["id"]
    writer = await intake.key_with("tickets:write")
    reply, takeover = forged_reply(ticket_id), forged_takeover(ticket_id)
    note = command("add_message", ticket_id, {"author": "requester", "body": "x", "public": False})
    escalation = command("escalate", ticket_id, {"by": "agent"})
    own_words = command("add_message", ticket_id, {"author": "requester", "body": "Any news?"})

    await send(
        infra.kafka_bootstrap,
        intake.runtime.topics.commands,
        [
            (b"reply", reply, signed(writer, reply)),
            (b"takeover", takeover, signed(writer, takeover)),
            (b"note", note, signed(writer, note)),
            (b"escalation", escalation, signed(writer, escalation)),
            (b"own-words", own_words, signed(writer, own_words)),
        ],
    )

    assert await dead_letters(intake, infra, 4) == {
        "reply": "insufficient_scope",
        "takeover": "insufficient_scope",
        "note": "insufficient_scope",
        "escalation": "insufficient_scope",
    }

    async def requester_message_applied() -> bool:
        return len((await ticket(intake, ticket_id))["messages"]) == 1

    await eventually(requester_message_applied)
    after = await ticket(intake, ticket_id)
    assert [(m["author"], m["body"]) for m in after["messages"]] == [("requester", "Any news?")]
    assert (after["priority"], after["assignee"]) == (before["priority"], before["assignee"])
    assert after["escalation_level"] == before["escalation_level"]


async def test_forged_tampered_replayed_or_revoked_commands_are_dead_lettered_with_the_reason(
    intake: Intake, infra: Infra
) -> None:
    ticket_id = (await intake.open())["id"]
    agent = await intake.key_with("tickets:agent")
    revoked = await intake.key_with("tickets:agent")
    key_id = revoked.split("_")[1]
    assert (
        await intake.http.delete(f"/v1/api-keys/{key_id}", headers=intake.auth())
    ).status_code == 204
    reply = forged_reply(ticket_id)
    other = forged_takeover(ticket_id)
    guessed_secret = f"{agent.rsplit('_', 1)[0]}_{'A' * 43}"  # the right key id, a wrong secret
    records: list[tuple[bytes, bytes, Headers]] = [
        (b"wrong-secret", reply, signed(guessed_secret, reply)),
        (b"tampered", reply, signed(agent, other)),  # a signature over other bytes
        (b"stale", reply, signed(agent, reply, datetime.now(UTC) - timedelta(minutes=10))),
        (b"unknown-key", reply, signed("hs_nosuchkey_0123456789abcdefghijklmnop", reply)),
        (b"revoked", reply, signed(revoked, reply)),
        (b"binary-headers", reply, [(n, b"\xff\x00" + v) for n, v in signed(agent, reply)]),
        (
            b"huge-timestamp",
            reply,
            [(n, b"9" * 5000 if n.endswith("timestamp") else v) for n, v in signed(agent, reply)],
        ),
        (b"half-signed", reply, signed(agent, reply)[:2]),
    ]

    await send(infra.kafka_bootstrap, intake.runtime.topics.commands, records)

    assert await dead_letters(intake, infra, len(records)) == {
        "wrong-secret": "bad_signature",
        "tampered": "bad_signature",
        "stale": "stale_command",
        "unknown-key": "unknown_key",
        "revoked": "revoked_key",
        "binary-headers": "malformed_signature",
        "huge-timestamp": "malformed_signature",
        "half-signed": "unsigned_command",
    }
    assert (await ticket(intake, ticket_id))["messages"] == []
    assert await events_after_created(intake, infra) == []


async def test_a_reply_signed_with_an_agent_key_is_applied_and_published(
    intake: Intake, infra: Infra
) -> None:
    ticket_id = (await intake.open())["id"]
    agent = await intake.key_with("tickets:agent")
    reply = command(
        "add_message", ticket_id, {"author": "agent", "author_id": "a-7", "body": "Released."}
    )
    update = command("update", ticket_id, {"priority": "high", "assignee": "a-7"})

    await send(
        infra.kafka_bootstrap,
        intake.runtime.topics.commands,
        [(b"reply", reply, signed(agent, reply)), (b"update", update, signed(agent, update))],
    )

    async def assigned() -> bool:
        return bool((await ticket(intake, ticket_id))["assignee"] == "a-7")

    await eventually(assigned)
    after = await ticket(intake, ticket_id)
    assert [(m["author"], m["body"]) for m in after["messages"]] == [("agent", "Released.")]
    assert after["priority"] == "high"
    assert "message_added" in await events_after_created(intake, infra)


async def test_both_secrets_sign_commands_during_a_rotation_overlap_and_none_after_it_ends(
    intake: Intake, infra: Infra
) -> None:
    ticket_id = (await intake.open())["id"]
    first = await intake.key_with("tickets:agent")
    key_id = first.split("_")[1]

    async def rotate(overlap_s: int) -> str:
        rotated = await intake.http.post(
            f"/v1/api-keys/{key_id}/rotate",
            json={"overlap_seconds": overlap_s},
            headers=intake.auth(),
        )
        assert rotated.status_code == 200, rotated.text
        return str(rotated.json()["key"])

    def note(body: str) -> bytes:
        return command("add_message", ticket_id, {"author": "agent", "body": body, "public": False})

    second = await rotate(3600)
    overlap = [(b"first", note("by first"), first), (b"second", note("by second"), second)]
    await send(
        infra.kafka_bootstrap,
        intake.runtime.topics.commands,
        [(key, value, signed(secret, value)) for key, value, secret in overlap],
    )

    async def notes(count: int) -> bool:
        return len((await ticket(intake, ticket_id))["messages"]) == count

    await eventually(lambda: notes(2))
    third = await rotate(0)  # an emergency rotation: every earlier secret stops now
    after = [
        (f"{n}-after".encode(), note(f"{n} after"), s)
        for n, s in (("first", first), ("second", second), ("third", third))
    ]
    await send(
        infra.kafka_bootstrap,
        intake.runtime.topics.commands,
        [(key, value, signed(secret, value)) for key, value, secret in after],
    )

    assert await dead_letters(intake, infra, 2) == {
        "first-after": "bad_signature",
        "second-after": "bad_signature",
    }
    await eventually(lambda: notes(3))
    bodies = {m["body"] for m in (await ticket(intake, ticket_id))["messages"]}
    assert bodies == {"by first", "by second", "third after"}
