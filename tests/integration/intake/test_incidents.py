"""Incidents on the real broker and MongoDB: declare, link (by scope and by hand), update,
resolve; over HTTP and as signed commands; what a key without the scope gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.ids import new_id
from shared.infra.modes import Infra
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_commands import produce_signed
from tests.support import Tap, eventually

SEED = "abandon ability able about above absent absorb abstract absurd abuse access accident"

STUCK = {
    "category": "withdrawal_delay",
    "crypto": {"asset": "USDT", "network": "TRC20", "amount": "100"},
}


def declaration(**scope: Any) -> dict[str, Any]:
    return {
        "title": {"en": "TRC20 USDT withdrawals delayed", "zh-CN": "TRC20 USDT 提现延迟"},
        "scope": {"category": "withdrawal_delay", "asset": "usdt", "network": "TRC20", **scope},
        "status_text": {"en": "We are on it.", "zh-CN": "我们正在处理。"},
    }


def text(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh-CN": zh}


def incident_command(ctype: str, subject: str, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": new_id(),
            "source": "/exchange/withdrawals",
            "type": f"helpstream.incident.{ctype}",
            "subject": subject,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "correlationid": "corr-incident",
            "data": data,
        }
    ).encode()


async def ticket(intake: Intake, ticket_id: str) -> dict[str, Any]:
    response = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())
    return dict(response.json())


async def incident(intake: Intake, incident_id: str) -> dict[str, Any]:
    response = await intake.http.get(f"/v1/incidents/{incident_id}", headers=intake.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


def events_of(records: list[Any], kind: str) -> list[dict[str, Any]]:
    found = [json.loads(r.value) for r in records]
    return [e for e in found if e["type"] == f"helpstream.{kind}"]


async def test_a_declared_incident_links_open_matching_tickets_and_new_ones_but_nothing_else(
    intake: Intake, uid: str
) -> None:
    matching = [await intake.open(**STUCK, requester={"id": f"{uid}-{i}"}) for i in range(3)]
    other_asset = await intake.open(category="withdrawal_delay", crypto={"asset": "BTC"})
    other_category = await intake.open(category="kyc", crypto=STUCK["crypto"])
    solved = await intake.open(**STUCK)
    await intake.http.patch(
        f"/v1/tickets/{solved['id']}", json={"status": "solved"}, headers=intake.auth()
    )

    response = await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    assert response.status_code == 201, response.text
    declared = response.json()
    assert declared["linked"] == 3
    later = await intake.open(**STUCK)

    async with Tap(
        intake.runtime.settings.kafka_bootstrap, intake.runtime.topics.tickets, intake.settings
    ) as tap:

        async def links() -> list[dict[str, Any]]:
            found = events_of(await tap.collect(1, timeout=0.5), "ticket.linked_to_incident")
            return found if len(found) >= 4 else []

        linked = await eventually(links)
    assert {e["subject"] for e in linked} == {t["id"] for t in [*matching, later]}
    assert {e["data"]["incident_id"] for e in linked} == {declared["id"]}
    assert (await incident(intake, declared["id"]))["linked"] == 4
    for untouched in (other_asset, other_category, solved):
        assert untouched["id"] not in {e["subject"] for e in linked}


async def test_an_update_reaches_every_linked_ticket_once_in_its_language_redacted(
    intake: Intake,
) -> None:
    zh = await intake.open(**STUCK, requester={"id": "u-zh", "locale": "zh-CN"})
    en = await intake.open(**STUCK, requester={"id": "u-en", "locale": "en"})
    declared = (
        await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    ).json()

    update = text(f"Resuming at 14:00 UTC. {SEED}", "14:00 恢复。")
    response = await intake.http.post(
        f"/v1/incidents/{declared['id']}/updates",
        json={"text": update},
        headers={**intake.auth(), "Idempotency-Key": "update-1"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["tickets"] == 2
    stored = response.json()["incident"]["updates"][0]["text"]
    assert "abandon ability" not in stored["en"]
    assert stored["zh-CN"] == "14:00 恢复。"

    async with Tap(
        intake.runtime.settings.kafka_bootstrap, intake.runtime.topics.tickets, intake.settings
    ) as tap:

        async def told() -> list[dict[str, Any]]:
            found = events_of(await tap.collect(1, timeout=0.5), "ticket.incident_update")
            return found if len(found) >= 2 else []

        updates = await eventually(told)
    bodies = {e["subject"]: e["data"]["body"] for e in updates}
    assert bodies[zh["id"]] == "14:00 恢复。"
    assert bodies[en["id"]].startswith("Resuming at 14:00 UTC.")
    assert "abandon ability" not in bodies[en["id"]]
    assert len(updates) == 2


async def test_resolving_solves_linked_tickets_with_the_resolution_and_leaves_others(
    intake: Intake,
) -> None:
    linked = await intake.open(**STUCK, requester={"id": "u-r", "locale": "en"})
    declared = (
        await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    ).json()
    other = await intake.open(category="kyc")

    resolution = {"text": text("Withdrawals are flowing again.", "提现已恢复。")}
    url = f"/v1/incidents/{declared['id']}/resolve"
    response = await intake.http.post(url, json=resolution, headers=intake.auth())
    assert response.status_code == 200, response.text
    assert response.json()["tickets"] == 1
    assert response.json()["incident"]["status"] == "resolved"
    again = await intake.http.post(url, json=resolution, headers=intake.auth())
    assert again.json()["tickets"] == 0

    solved = await ticket(intake, linked["id"])
    assert solved["status"] == "solved"
    assert [m["body"] for m in solved["messages"] if m["author"] == "system"] == [
        "Withdrawals are flowing again."
    ]
    assert (await ticket(intake, other["id"]))["status"] == other["status"]
    late = await intake.open(**STUCK)
    assert (await incident(intake, declared["id"]))["linked"] == 1
    assert (await ticket(intake, late["id"]))["status"] != "solved"


async def test_an_agent_links_and_unlinks_a_ticket_by_hand(intake: Intake) -> None:
    declared = (
        await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    ).json()
    unrelated = await intake.open(category="kyc")
    url = f"/v1/incidents/{declared['id']}/tickets"

    linked = await intake.http.post(url, json={"ticket": unrelated["id"]}, headers=intake.auth())
    assert linked.status_code == 200, linked.text
    assert linked.json()["linked"] == 1
    unlinked = await intake.http.post(
        url, json={"ticket": str(unrelated["number"]), "unlink": True}, headers=intake.auth()
    )
    assert unlinked.json()["linked"] == 0


async def test_a_key_without_the_incidents_scope_cannot_declare_or_update(
    intake: Intake,
) -> None:
    agent = await intake.key_with("tickets:agent", "tickets:read")
    refused = await intake.http.post(
        "/v1/incidents", json=declaration(), headers=intake.auth(agent)
    )
    assert refused.status_code == 403
    assert "incidents:write" in refused.json()["detail"]
    missing = await intake.http.post(
        "/v1/incidents/nope/updates", json={"text": text("a", "b")}, headers=intake.auth()
    )
    assert missing.status_code == 404


async def test_incident_commands_declare_once_and_unsigned_or_unscoped_ones_are_dead_lettered(
    intake: Intake, infra: Infra
) -> None:
    topics = intake.runtime.topics
    await intake.open(**STUCK)
    writer = await intake.key_with("tickets:write")
    declare = incident_command("declare", "withdrawals-2026-11-30", declaration())
    async with Tap(infra.kafka_bootstrap, f"{topics.commands}.dlq") as dlq:
        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topics.commands, declare, key=b"unsigned")
        finally:
            await producer.stop()
        await produce_signed(infra.kafka_bootstrap, topics.commands, [(b"w", declare)], writer)
        dead = await dlq.collect(2, timeout=20)
    reasons = sorted(dict(r.headers)["error-type"].decode() for r in dead)
    assert reasons == ["insufficient_scope", "unsigned_command"]

    await produce_signed(infra.kafka_bootstrap, topics.commands, [(b"w", declare)] * 2)
    async with Tap(infra.kafka_bootstrap, topics.tickets) as tap:

        async def declared() -> list[dict[str, Any]]:
            found = events_of(await tap.collect(1, timeout=0.5), "incident.declared")
            linked = events_of(tap.records, "ticket.linked_to_incident")
            return found if found and linked else []

        found = await eventually(declared)
    assert len({e["subject"] for e in found}) == 1


async def test_a_redelivered_update_command_hands_no_ticket_the_update_twice(
    intake: Intake, infra: Infra
) -> None:
    first = await intake.open(**STUCK, requester={"id": "u-again-1", "locale": "en"})
    second = await intake.open(**STUCK, requester={"id": "u-again-2", "locale": "zh-CN"})
    declared = (
        await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    ).json()
    update = incident_command(
        "update", declared["id"], {"text": text("Resuming at 14:00 UTC.", "14:00 恢复。")}
    )
    topics = intake.runtime.topics
    async with Tap(infra.kafka_bootstrap, topics.tickets) as tap:
        await produce_signed(infra.kafka_bootstrap, topics.commands, [(b"w", update)])

        async def told() -> list[dict[str, Any]]:
            records = await tap.collect(len(tap.records) + 1, timeout=0.5)
            found = events_of(records, "ticket.incident_update")
            return found if len(found) >= 2 else []

        await eventually(told)
        await produce_signed(infra.kafka_bootstrap, topics.commands, [(b"w", update)])
        await eventually(lambda: _updated_twice(intake, declared["id"]), timeout=20)
        records = await tap.settle(2.0)

    handed = events_of(records, "ticket.incident_update")
    assert sorted(e["subject"] for e in handed) == sorted([first["id"], second["id"]])


async def _updated_twice(intake: Intake, incident_id: str) -> bool:
    """Both deliveries were consumed (applied, or recognised as a duplicate)."""
    metrics = (await intake.http.get("/metrics")).text
    consumed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("helpstream_intake_commands_total")
        and "helpstream.incident.update" in line
        and 'outcome="rejected"' not in line
    )
    return consumed >= 2
