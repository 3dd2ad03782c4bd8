"""Incident actions in the audit trail: declaring, updating, resolving, linking and unlinking,
over HTTP and as signed commands, each under its key, in the trail of every ticket it changed
and under its incident, holding ids and route templates only."""

from __future__ import annotations

import json
from typing import Any

from services.intake.incident_service import incident_id_for
from shared.infra.modes import Infra
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_audit_trail_flows import (
    actions_of,
    keeps_nothing_personal,
    trail,
)
from tests.integration.intake.test_commands import produce_signed
from tests.integration.intake.test_incidents import (
    STUCK,
    declaration,
    incident,
    incident_command,
    text,
    ticket,
)
from tests.support import eventually

EMAIL = "li.wei@example.com"
UPDATE = text("Resuming at 14:00 UTC.", "14:00 恢复。")
RESOLUTION = text("Withdrawals are flowing again.", "提现已恢复。")
# Everything an incident says in public: none of it belongs in an audit entry.
PUBLIC_TEXTS = (
    "TRC20 USDT withdrawals delayed",
    "TRC20 USDT 提现延迟",
    "We are on it.",
    "我们正在处理。",
    *UPDATE.values(),
    *RESOLUTION.values(),
)
DECLARE = "POST /v1/incidents"
UPDATES = "POST /v1/incidents/{incident_id}/updates"
RESOLVE = "POST /v1/incidents/{incident_id}/resolve"
LINK = "POST /v1/incidents/{incident_id}/tickets"


def key_id(key: str) -> str:
    return key.split("_")[1]


def as_text(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def of(entries: list[dict[str, Any]], actor: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["actor"] == actor]


async def test_an_incident_declared_updated_and_resolved_over_http_is_in_its_tickets_trails(
    intake: Intake, uid: str
) -> None:
    first = await intake.open(**STUCK, requester={"id": f"u-{uid}-1", "email": EMAIL})
    second = await intake.open(**STUCK, requester={"id": f"u-{uid}-2", "locale": "zh-CN"})
    unrelated = await intake.open(category="kyc", requester={"id": f"u-{uid}-3"})
    support = await intake.key_with("incidents:write")
    actor = f"key:{key_id(support)}"

    declared = await intake.http.post(
        "/v1/incidents", json=declaration(), headers=intake.auth(support)
    )
    assert declared.status_code == 201, declared.text
    incident_id = declared.json()["id"]
    url = f"/v1/incidents/{incident_id}"
    headers = {**intake.auth(support), "Idempotency-Key": f"update-{uid}"}
    updated = await intake.http.post(f"{url}/updates", json={"text": UPDATE}, headers=headers)
    assert updated.json()["tickets"] == 2
    resolved = await intake.http.post(
        f"{url}/resolve", json={"text": RESOLUTION}, headers=intake.auth(support)
    )
    assert resolved.json()["tickets"] == 2

    by_key = await trail(intake, key=key_id(support))
    assert sorted((e["action"], e.get("ticket", "")) for e in by_key) == sorted(
        (action, t)
        for action in (DECLARE, UPDATES, RESOLVE)
        for t in ("", first["id"], second["id"])
    )
    assert {e["incident"] for e in by_key} == {incident_id}
    for changed in (first, second):
        entries = await trail(intake, ticket=changed["id"])
        assert actions_of(entries, actor) == sorted([DECLARE, UPDATES, RESOLVE])
        assert {e["incident"] for e in of(entries, actor)} == {incident_id}
    on_unrelated = await trail(intake, ticket=unrelated["id"])
    assert [e["actor"] for e in on_unrelated] == ["key:testadmin"]  # its opening only
    under_incident = await trail(intake, incident=incident_id)
    assert sorted(map(as_text, under_incident)) == sorted(map(as_text, by_key))  # all its own
    keeps_nothing_personal(by_key + under_incident, *PUBLIC_TEXTS, f"u-{uid}-1")


async def test_refused_incident_actions_leave_no_entry_and_only_admins_read_the_trail(
    intake: Intake, uid: str
) -> None:
    stuck = await intake.open(**STUCK, requester={"id": f"u-{uid}"})
    agent = await intake.key_with("tickets:agent", "tickets:read")
    refused = await intake.http.post(
        "/v1/incidents", json=declaration(), headers=intake.auth(agent)
    )
    assert refused.status_code == 403
    declared = (
        await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    ).json()
    url = f"/v1/incidents/{declared['id']}"
    for path, body in (("updates", {"text": UPDATE}), ("resolve", {"text": RESOLUTION})):
        answer = await intake.http.post(f"{url}/{path}", json=body, headers=intake.auth(agent))
        assert answer.status_code == 403
    missing = await intake.http.post(
        "/v1/incidents/nope/tickets", json={"ticket": stuck["id"]}, headers=intake.auth(agent)
    )
    assert missing.status_code == 404

    assert await trail(intake, key=key_id(agent)) == []
    assert actions_of(await trail(intake, ticket=stuck["id"]), "key:testadmin") == [
        DECLARE,
        "POST /v1/tickets",
    ]
    for query in ({"incident": declared["id"]}, {"ticket": stuck["id"]}):
        read = await intake.http.get("/v1/audit", params=query, headers=intake.auth(agent))
        assert read.status_code == 403
    both = {"incident": declared["id"], "ticket": stuck["id"]}
    assert (
        await intake.http.get("/v1/audit", params=both, headers=intake.auth())
    ).status_code == 422


async def test_a_ticket_linked_and_unlinked_by_hand_has_both_in_its_trail(
    intake: Intake, uid: str
) -> None:
    declared = (
        await intake.http.post("/v1/incidents", json=declaration(), headers=intake.auth())
    ).json()
    unrelated = await intake.open(category="kyc", requester={"id": f"u-{uid}"})
    agent = await intake.key_with("tickets:agent")
    actor = f"key:{key_id(agent)}"
    url = f"/v1/incidents/{declared['id']}/tickets"

    linked = await intake.http.post(
        url, json={"ticket": unrelated["id"]}, headers=intake.auth(agent)
    )
    assert linked.json()["linked"] == 1
    unlinked = await intake.http.post(  # by number: the trail keeps the id
        url, json={"ticket": str(unrelated["number"]), "unlink": True}, headers=intake.auth(agent)
    )
    assert unlinked.json()["linked"] == 0

    entries = await trail(intake, ticket=unrelated["id"])
    assert actions_of(entries, actor) == [LINK, LINK]
    assert {(e["ticket"], e["incident"]) for e in of(entries, actor)} == {
        (unrelated["id"], declared["id"])
    }
    assert len(await trail(intake, key=key_id(agent))) == 2
    keeps_nothing_personal(entries, *PUBLIC_TEXTS)


async def test_incident_commands_are_in_the_trail_under_their_signing_key_and_service_once(
    intake: Intake, infra: Infra, uid: str
) -> None:
    first = await intake.open(**STUCK, requester={"id": f"u-{uid}-1", "email": EMAIL})
    second = await intake.open(**STUCK, requester={"id": f"u-{uid}-2", "locale": "zh-CN"})
    unrelated = await intake.open(category="kyc", requester={"id": f"u-{uid}-3"})
    platform = await intake.key_with("incidents:write", "tickets:agent")
    actor = f"key:{key_id(platform)}"
    declare = incident_command("declare", f"withdrawals-{uid}", declaration())
    incident_id = incident_id_for(json.loads(declare)["id"])
    commands = [
        declare,
        declare,  # redelivered
        incident_command("link_ticket", incident_id, {"ticket": unrelated["id"]}),
        incident_command("update", incident_id, {"text": UPDATE}),
        incident_command("resolve", incident_id, {"text": RESOLUTION}),
    ]
    topic = intake.runtime.topics.commands
    await produce_signed(infra.kafka_bootstrap, topic, [(b"w", c) for c in commands], platform)

    async def resolution_filed() -> bool:  # the last command of the partition
        entries = await trail(intake, key=key_id(platform))
        return "helpstream.incident.resolve" in {e["action"] for e in entries if "ticket" not in e}

    await eventually(resolution_filed)
    assert (await incident(intake, incident_id))["status"] == "resolved"
    assert (await ticket(intake, unrelated["id"]))["status"] == "solved"

    by_key = await trail(intake, key=key_id(platform))
    declared, linked, updated, resolved = (
        f"helpstream.incident.{name}" for name in ("declare", "link_ticket", "update", "resolve")
    )
    scoped, by_hand = first["id"], unrelated["id"]
    assert sorted((e["action"], e.get("ticket", "")) for e in by_key) == sorted(
        [
            *((declared, t) for t in ("", scoped, second["id"])),  # once, though redelivered
            (linked, by_hand),
            *((updated, t) for t in ("", scoped, second["id"], by_hand)),
            *((resolved, t) for t in ("", scoped, second["id"], by_hand)),
        ]
    )
    assert {e["service"] for e in by_key} == {"/exchange/withdrawals"}
    assert {e["incident"] for e in by_key} == {incident_id}
    for changed in (first, second):
        assert actions_of(await trail(intake, ticket=changed["id"]), actor) == sorted(
            [declared, updated, resolved]
        )
    assert actions_of(await trail(intake, ticket=by_hand), actor) == sorted(
        [linked, updated, resolved]
    )
    keeps_nothing_personal(by_key, *PUBLIC_TEXTS, f"u-{uid}-1")
