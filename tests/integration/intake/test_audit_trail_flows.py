"""The audit trail beyond single API requests: status links, list reads, signed commands and
service-driven changes, each answered per ticket and per key, none holding a token, an
email or a ticket's text."""

from __future__ import annotations

import json
from typing import Any

from shared.ids import new_id
from shared.infra.modes import Infra
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_commands import command, produce_signed, tickets_of
from tests.integration.intake.test_escalation_and_outbox import breach, level_of
from tests.integration.intake.test_self_service import STUCK_TRC20, solve_forms
from tests.integration.intake.test_ticket_numbers import csrf_field, status_path
from tests.support import eventually, produce

EMAIL = "li.wei@example.com"
DESCRIPTION = str(STUCK_TRC20["description"])


async def trail(intake: Intake, **query: str) -> list[dict[str, Any]]:
    answer = await intake.http.get("/v1/audit", params=query, headers=intake.auth())
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def actions_of(entries: list[dict[str, Any]], actor: str) -> list[str]:
    return sorted(e["action"] for e in entries if e["actor"] == actor)


def keeps_nothing_personal(entries: list[dict[str, Any]], *texts: str) -> None:
    dumped = json.dumps(entries, ensure_ascii=False)
    for text in (EMAIL, DESCRIPTION, *texts):
        assert text not in dumped


async def test_status_link_reads_and_changes_are_in_the_ticket_trail_as_the_link(
    intake: Intake, uid: str
) -> None:
    ticket = await intake.open(
        requester={"id": f"u-{uid}", "email": EMAIL, "locale": "zh-CN"}, **STUCK_TRC20
    )
    path = status_path(intake, ticket)
    token = path.removeprefix("/t/")
    page = await intake.http.get(path)
    assert page.status_code == 200
    form = {**csrf_field(page.text), "message": "我已经等了三个小时"}
    assert (await intake.http.post(f"{path}/reply", data=form)).status_code == 303
    action, fields = solve_forms((await intake.http.get(path)).text)[0]
    assert (await intake.http.post(action, data=fields)).status_code == 303

    entries = await trail(intake, ticket=ticket["id"])
    assert actions_of(entries, f"link:{ticket['id']}") == [
        "GET /t/{token}",
        "GET /t/{token}",
        "POST /t/{token}/reply",
        "POST /t/{token}/solved",
    ]
    assert all(e["ticket"] == ticket["id"] for e in entries)
    keeps_nothing_personal(entries, token, "我已经等了三个小时", f"u-{uid}")


async def test_a_status_link_reaches_no_other_tickets_trail_and_leaves_nothing_on_it(
    intake: Intake, uid: str
) -> None:
    mine = await intake.open(requester={"id": f"u-{uid}", "locale": "en"})
    other = await intake.open(requester={"id": f"u-{uid}-other", "locale": "en"})
    path = status_path(intake, mine)
    token = path.removeprefix("/t/")
    form = csrf_field((await intake.http.get(path)).text)

    # The token is no API key: the trail does not answer it, for any ticket.
    for ticket_id in (other["id"], mine["id"]):
        with_token = await intake.http.get(
            "/v1/audit",
            params={"ticket": ticket_id},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert with_token.status_code == 401
    # A form pointed at the other ticket is refused and leaves no entry on it.
    foreign = {**form, "ticket_id": other["id"], "message": "hello"}
    assert (await intake.http.post(f"{path}/reply", data=foreign)).status_code == 403
    # A tampered token shows nothing and is in no trail.
    assert (await intake.http.get(path[:-2] + "xx")).status_code == 404

    on_other = await trail(intake, ticket=other["id"])
    assert [e["actor"] for e in on_other] == ["key:testadmin"]  # its opening only
    on_mine = await trail(intake, ticket=mine["id"])
    assert actions_of(on_mine, f"link:{mine['id']}") == ["GET /t/{token}"]
    keeps_nothing_personal(on_mine + on_other, token)


async def test_a_list_read_names_the_tickets_of_its_page_in_their_trails(
    intake: Intake, uid: str
) -> None:
    reader = await intake.key_with("tickets:read")
    reader_id = reader.split("_")[1]
    requester = f"u-{uid}"
    oldest, middle, newest = [await intake.open(requester={"id": requester}) for _ in range(3)]
    page = await intake.http.get(
        "/v1/tickets", params={"requester_id": requester, "limit": 2}, headers=intake.auth(reader)
    )
    assert page.status_code == 200
    assert [t["id"] for t in page.json()["items"]] == [newest["id"], middle["id"]]

    for seen in (newest, middle):
        assert actions_of(await trail(intake, ticket=seen["id"]), f"key:{reader_id}") == [
            "GET /v1/tickets"
        ]
    assert actions_of(await trail(intake, ticket=oldest["id"]), f"key:{reader_id}") == []

    (entry,) = await trail(intake, key=reader_id)
    assert entry["action"] == "GET /v1/tickets"
    assert entry["tickets"] == [newest["id"], middle["id"]]  # at most the page size
    assert entry["requester"] == requester
    keeps_nothing_personal([entry])
    indexes = await intake.runtime.db["audit"].index_information()
    assert any(spec["key"][0][0] == "tickets" for spec in indexes.values())


async def test_signed_commands_are_in_the_trail_under_their_key_and_service_once(
    intake: Intake, infra: Infra, uid: str
) -> None:
    platform = await intake.key_with("tickets:write", "tickets:agent")
    platform_id = platform.split("_")[1]
    writer = await intake.key_with("tickets:write")  # may not change status
    writer_id = writer.split("_")[1]
    topics = intake.runtime.topics
    requester = f"u-{uid}"
    opened = command(
        "open",
        f"W-{uid}",
        {**STUCK_TRC20, "channel": "api", "requester": {"id": requester, "email": EMAIL}},
    )
    await produce_signed(
        infra.kafka_bootstrap, topics.commands, [(f"W-{uid}".encode(), opened)], api_key=platform
    )

    async def one_ticket() -> bool:
        return len(await tickets_of(intake, requester)) == 1

    await eventually(one_ticket)
    ticket_id = (await tickets_of(intake, requester))[0]["id"]
    update = command("update", ticket_id, {"status": "pending"}, command_id=new_id())
    key = ticket_id.encode()
    await produce_signed(
        infra.kafka_bootstrap,
        topics.commands,
        [(key, command("update", ticket_id, {"priority": "urgent"}))],
        api_key=writer,  # refused: lacks tickets:agent
    )
    await produce_signed(
        infra.kafka_bootstrap,
        topics.commands,
        [
            (key, update),
            (key, update),  # redelivered
            (key, command("add_message", ticket_id, {"body": "tx 0xabc", "author": "requester"})),
        ],
        api_key=platform,
    )

    async def marker_applied() -> bool:  # the last command of the partition
        return len((await level_of(intake, ticket_id))["messages"]) == 1

    await eventually(marker_applied)
    entries = await trail(intake, ticket=ticket_id)
    commands = [e for e in entries if e["actor"] == f"key:{platform_id}"]
    assert sorted(e["action"] for e in commands) == [
        "helpstream.ticket.add_message",
        "helpstream.ticket.open",
        "helpstream.ticket.update",
    ]
    assert {e["service"] for e in commands} == {"/exchange/withdrawals"}
    assert not [e for e in entries if e["actor"] == f"key:{writer_id}"]
    by_key = await trail(intake, key=platform_id)
    assert sorted(e["action"] for e in by_key) == sorted(e["action"] for e in commands)
    keeps_nothing_personal(entries, "tx 0xabc")
    assert requester not in json.dumps(commands)


async def test_an_escalation_on_an_sla_breach_is_in_the_trail_as_the_service_once(
    intake: Intake, infra: Infra
) -> None:
    ticket_id = (await intake.open())["id"]
    first = breach(ticket_id)
    key = ticket_id.encode()
    await produce(infra.kafka_bootstrap, intake.runtime.topics.sla, [(key, first), (key, first)])

    async def escalated() -> bool:
        return bool((await level_of(intake, ticket_id))["escalation_level"] == 1)

    await eventually(escalated)
    entries = await trail(intake, ticket=ticket_id)
    assert actions_of(entries, "service:sla_monitor") == ["escalate:sla_breach"]
    metrics = (await intake.http.get("/metrics")).text
    assert 'helpstream_intake_audit_entries_total{actor="service"}' in metrics
