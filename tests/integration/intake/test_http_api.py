"""The intake HTTP API as its callers see it: answers, stored tickets and published events."""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
from typing import Any

import httpx
import pytest
from mnemonic import Mnemonic
from prometheus_client.parser import text_string_to_metric_families

from shared.events import CloudEvent, Contract
from shared.redaction import REDACTION_WARNING
from tests.integration.intake.conftest import Intake, ticket_body
from tests.support import Tap

PROBLEM = "application/problem+json"
CREATED = "helpstream.ticket.created"
MESSAGE_ADDED = "helpstream.ticket.message_added"
STATUS_CHANGED = "helpstream.ticket.status_changed"


def tickets_tap(intake: Intake) -> Tap:
    return Tap(intake.settings.kafka_bootstrap, intake.runtime.topics.tickets, intake.settings)


def of_ticket(tap: Tap, ticket_id: str) -> list[CloudEvent[Contract]]:
    return [e for e in tap.events() if e.subject == ticket_id]


def types(events: list[CloudEvent[Contract]]) -> list[str]:
    return [e.type for e in events]


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


def word_pairs(phrase: str) -> list[str]:
    words = phrase.split()
    return [f"{a} {b}" for a, b in itertools.pairwise(words)]


async def get_ticket(intake: Intake, ticket_id: str) -> dict[str, Any]:
    response = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def patch(intake: Intake, ticket_id: str, **changes: Any) -> httpx.Response:
    return await intake.http.patch(f"/v1/tickets/{ticket_id}", json=changes, headers=intake.auth())


async def message(intake: Intake, ticket_id: str, **body: Any) -> httpx.Response:
    return await intake.http.post(
        f"/v1/tickets/{ticket_id}/messages", json=body, headers=intake.auth()
    )


async def escalate(intake: Intake, ticket_id: str, by: str) -> httpx.Response:
    return await intake.http.post(
        f"/v1/tickets/{ticket_id}/escalate", json={"by": by}, headers=intake.auth()
    )


async def listed(intake: Intake, **params: Any) -> dict[str, Any]:
    response = await intake.http.get("/v1/tickets", params=params, headers=intake.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def metric_samples(intake: Intake, name: str) -> list[tuple[dict[str, str], float]]:
    response = await intake.http.get("/metrics")
    assert response.status_code == 200
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    ]


# --- authentication and scopes ---------------------------------------------------------------


async def test_a_request_without_an_api_key_gets_401_with_a_problem_body(intake: Intake) -> None:
    response = await intake.http.post("/v1/tickets", json=ticket_body())

    body = assert_problem(response, 401)
    assert "API key" in body["detail"]
    assert (await listed(intake))["items"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer hs_nosuchkey_0123456789abcdefghijklmnop"},
        {"Authorization": "Bearer hs_testadmin_not-the-right-secret"},
        {"Authorization": "Bearer not-even-shaped-like-a-key"},
        {"X-API-Key": "hs_nosuchkey_0123456789abcdefghijklmnop"},
    ],
    ids=["unknown-id", "wrong-secret", "malformed", "x-api-key-unknown"],
)
async def test_an_unknown_api_key_gets_401(intake: Intake, headers: dict[str, str]) -> None:
    response = await intake.http.get("/v1/tickets", headers=headers)

    assert_problem(response, 401)


async def test_a_read_only_key_can_read_tickets_but_cannot_open_one(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    reader = {"Authorization": f"Bearer {await intake.key_with('tickets:read')}"}

    read = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=reader)
    opened = await intake.http.post("/v1/tickets", json=ticket_body(), headers=reader)

    assert read.status_code == 200
    body = assert_problem(opened, 403)
    assert "tickets:write" in body["detail"]
    assert len((await listed(intake))["items"]) == 1


async def test_a_write_key_can_act_for_the_requester_but_not_do_agent_work(
    intake: Intake,
) -> None:
    writer = {"X-API-Key": await intake.key_with("tickets:write")}
    opened = await intake.http.post("/v1/tickets", json=ticket_body(), headers=writer)
    assert opened.status_code == 201, opened.text
    ticket_id = opened.json()["id"]
    path = f"/v1/tickets/{ticket_id}"

    requester_reply = await intake.http.post(
        f"{path}/messages", json={"author": "requester", "body": "any news?"}, headers=writer
    )
    refused = {
        "patch": await intake.http.patch(path, json={"status": "open"}, headers=writer),
        "agent reply": await intake.http.post(
            f"{path}/messages", json={"author": "agent", "body": "on it"}, headers=writer
        ),
        "internal note": await intake.http.post(
            f"{path}/messages",
            json={"author": "requester", "body": "note", "public": False},
            headers=writer,
        ),
        "agent escalation": await intake.http.post(
            f"{path}/escalate", json={"by": "agent"}, headers=writer
        ),
        "new api key": await intake.http.post(
            "/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=writer
        ),
    }

    assert requester_reply.status_code == 201, requester_reply.text
    for what, response in refused.items():
        assert response.status_code == 403, (what, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
    ticket = await get_ticket(intake, ticket_id)
    assert ticket["status"] == "new"
    assert ticket["escalation_level"] == 0
    assert [m["body"] for m in ticket["messages"]] == ["any news?"]


async def test_admin_creates_a_key_that_works_immediately_with_only_its_scopes(
    intake: Intake,
) -> None:
    response = await intake.http.post(
        "/v1/api-keys",
        json={"name": "withdrawal-service", "scopes": ["tickets:write", "tickets:read"]},
        headers=intake.auth(),
    )
    assert response.status_code == 201, response.text
    issued = response.json()
    assert issued["name"] == "withdrawal-service"
    assert issued["scopes"] == ["tickets:read", "tickets:write"]
    assert issued["key"].startswith(f"hs_{issued['id']}_")
    headers = {"Authorization": f"Bearer {issued['key']}"}

    opened = await intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)
    read = await intake.http.get(opened.headers["Location"], headers=headers)
    patched = await intake.http.patch(
        opened.headers["Location"], json={"status": "open"}, headers=headers
    )

    assert opened.status_code == 201, opened.text
    assert read.status_code == 200
    assert_problem(patched, 403)


# --- opening tickets -------------------------------------------------------------------------


async def test_opening_a_ticket_answers_201_with_location_and_publishes_one_created_event(
    intake: Intake,
) -> None:
    async with tickets_tap(intake) as tap:
        response = await intake.http.post(
            "/v1/tickets",
            json=ticket_body(),
            headers={**intake.auth(), "X-Correlation-Id": "corr-withdrawal-77"},
        )
        assert response.status_code == 201, response.text
        await tap.collect(1)
        await tap.settle()

    ticket = response.json()
    assert response.headers["Location"] == f"/v1/tickets/{ticket['id']}"
    stored = await get_ticket(intake, ticket["id"])
    assert (stored["id"], stored["status"], stored["subject"]) == (
        ticket["id"],
        "new",
        "提现未到账",
    )
    assert len(tap.records) == 1
    record = tap.records[0]
    assert record.key == ticket["id"].encode()
    event = tap.events()[0]
    assert (event.type, event.subject, event.source) == (
        CREATED,
        ticket["id"],
        "/helpstream/intake",
    )
    assert event.correlationid == "corr-withdrawal-77"
    data = event.data.model_dump(mode="json")
    assert data["ticket_id"] == ticket["id"]
    assert data["ticket"]["category"] == "withdrawal_delay"
    assert data["requester"]["id"] == "u-42"
    assert data["crypto"]["amount"] == "2500"


async def test_the_ticket_in_the_201_answer_is_the_ticket_a_later_get_returns(
    intake: Intake,
) -> None:
    opened = [await intake.open() for _ in range(3)]

    stored = [await get_ticket(intake, t["id"]) for t in opened]

    assert [(t["created_at"], t["updated_at"]) for t in stored] == [
        (t["created_at"], t["updated_at"]) for t in opened
    ]


async def test_without_a_correlation_header_the_event_still_carries_a_correlation_id(
    intake: Intake,
) -> None:
    async with tickets_tap(intake) as tap:
        ticket_id = (await intake.open())["id"]
        await tap.collect(1)

    assert of_ticket(tap, ticket_id)[0].correlationid


async def test_triage_decides_category_priority_and_group_when_the_caller_leaves_them_empty(
    intake: Intake,
) -> None:
    cases: list[tuple[dict[str, Any], tuple[str, str, str]]] = [
        ({}, ("withdrawal_delay", "high", "payments")),
        (
            {
                "requester": {"id": "u-7", "locale": "en"},
                "channel": "web",
                "subject": "My account hacked",
                "description": "Someone logged in from Brazil and changed my password.",
                "crypto": None,
            },
            ("account_security", "urgent", "security"),
        ),
        (
            {"crypto": {"asset": "USDT", "network": "TRC20", "amount": "300"}},
            ("withdrawal_delay", "normal", "payments"),
        ),
        (
            {
                "requester": {"id": "u-8", "locale": "zh-CN", "tier": "vip"},
                "crypto": {"asset": "USDT", "network": "TRC20", "amount": "300"},
            },
            ("withdrawal_delay", "high", "payments"),
        ),
        (
            {"requester": {"id": "u-9", "locale": "zh-CN", "tier": "vip"}},
            ("withdrawal_delay", "urgent", "payments"),
        ),
    ]
    for overrides, expected in cases:
        ticket = await intake.open(**overrides)
        assert (ticket["category"], ticket["priority"], ticket["group"]) == expected, overrides


async def test_an_explicit_category_and_priority_win_over_triage(intake: Intake) -> None:
    only_category = await intake.open(category="kyc")
    both = await intake.open(category="fees", priority="low")

    assert (only_category["category"], only_category["priority"], only_category["group"]) == (
        "kyc",
        "normal",
        "general",
    )
    assert (both["category"], both["priority"], both["group"]) == ("fees", "low", "general")


# --- idempotency -----------------------------------------------------------------------------


async def test_retried_open_with_same_idempotency_key_returns_the_first_ticket_and_one_event(
    intake: Intake,
) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "withdrawal-W-88213"}
    async with tickets_tap(intake) as tap:
        first = await intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)
        second = await intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)
        await tap.collect(1)
        await tap.settle()

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Location"] == first.headers["Location"]
    assert types(tap.events()) == [CREATED]
    assert len((await listed(intake))["items"]) == 1


async def test_concurrent_opens_with_the_same_idempotency_key_make_one_ticket(
    intake: Intake,
) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "double-click-1"}
    async with tickets_tap(intake) as tap:
        responses = await asyncio.gather(
            *(
                intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)
                for _ in range(4)
            )
        )
        await tap.collect(1)
        await tap.settle()

    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert types(tap.events()) == [CREATED]


async def test_reusing_an_idempotency_key_with_a_different_body_is_refused_with_422(
    intake: Intake,
) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "withdrawal-W-1"}
    first = await intake.http.post("/v1/tickets", json=ticket_body(), headers=headers)
    other = await intake.http.post(
        "/v1/tickets", json=ticket_body(subject="另一个问题"), headers=headers
    )

    assert first.status_code == 201
    body = assert_problem(other, 422, "idempotency_key_reused")
    assert "Idempotency-Key" in body["detail"]
    assert [t["id"] for t in (await listed(intake))["items"]] == [first.json()["id"]]


async def test_the_same_idempotency_key_from_two_api_keys_opens_two_tickets(
    intake: Intake,
) -> None:
    other_key = await intake.key_with("tickets:write")
    first = await intake.http.post(
        "/v1/tickets", json=ticket_body(), headers={**intake.auth(), "Idempotency-Key": "k-1"}
    )
    second = await intake.http.post(
        "/v1/tickets",
        json=ticket_body(),
        headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "k-1"},
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


# --- redaction -------------------------------------------------------------------------------


async def test_a_seed_phrase_in_the_description_is_redacted_everywhere_and_the_requester_warned(
    intake: Intake,
) -> None:
    phrase = Mnemonic("english").generate(128)
    tx_hash = "0x" + secrets.token_hex(32)
    description = f"提币卡住了。tx hash: {tx_hash}\n客服让我提供助记词：{phrase}"

    async with tickets_tap(intake) as tap:
        opened = await intake.open(description=description)
        await tap.collect(2)
        await tap.settle(1.0)
    ticket = await get_ticket(intake, opened["id"])

    assert "[REDACTED:bip39_mnemonic]" in ticket["description"]
    assert tx_hash in ticket["description"]
    assert phrase not in ticket["description"]
    assert not [pair for pair in word_pairs(phrase) if pair in ticket["description"]]
    assert ticket["secret_redacted"] is True
    assert [(m["author"], m["public"], m["body"]) for m in ticket["messages"]] == [
        ("system", True, REDACTION_WARNING["zh-CN"])
    ]
    events = of_ticket(tap, ticket["id"])
    assert types(events) == [CREATED, MESSAGE_ADDED]
    assert events[0].data.model_dump()["secret_redacted"] is True
    notice = events[1].data.model_dump()
    assert (notice["author"], notice["public"], notice["body"]) == (
        "system",
        True,
        REDACTION_WARNING["zh-CN"],
    )
    published = b"".join(r.value for r in tap.records)
    assert phrase.encode() not in published
    assert not [p for p in word_pairs(phrase) if p.encode() in published]


async def test_a_private_key_in_a_requester_reply_is_redacted_and_the_requester_warned(
    intake: Intake,
) -> None:
    key_hex = secrets.token_hex(32)
    tx_hash = "0x" + secrets.token_hex(32)
    ticket_id = (
        await intake.open(
            requester={"id": "u-en", "locale": "en"},
            subject="withdrawal stuck",
            description="My withdrawal is stuck",
        )
    )["id"]

    async with tickets_tap(intake) as tap:
        response = await message(
            intake,
            ticket_id,
            author="requester",
            body=f"tx hash: {tx_hash}\nprivate key: {key_hex}",
        )
        await tap.collect(3)
        await tap.settle(1.0)

    assert response.status_code == 201, response.text
    added = response.json()["message"]
    assert added["body"] == f"tx hash: {tx_hash}\nprivate key: [REDACTED:hex_private_key]"
    assert added["secret_redacted"] is True
    ticket = await get_ticket(intake, ticket_id)
    assert ticket["secret_redacted"] is True
    assert [(m["author"], m["body"]) for m in ticket["messages"]] == [
        ("requester", added["body"]),
        ("system", REDACTION_WARNING["en"]),
    ]
    replies = [e.data.model_dump() for e in of_ticket(tap, ticket_id) if e.type == MESSAGE_ADDED]
    assert [(e["author"], e["body"], e["secret_redacted"]) for e in replies] == [
        ("requester", added["body"], True),
        ("system", REDACTION_WARNING["en"], False),
    ]
    published = b"".join(r.value for r in tap.records).lower()
    assert key_hex.encode() not in published
    assert tx_hash.encode() in published


async def test_a_seed_phrase_pasted_into_the_crypto_address_is_not_stored(
    intake: Intake,
) -> None:
    phrase = Mnemonic("english").generate(128)

    opened = await intake.open(crypto={"asset": "USDT", "network": "TRC20", "address": phrase})

    assert phrase not in str(await get_ticket(intake, opened["id"]))


# --- messages --------------------------------------------------------------------------------


async def test_a_requester_reply_reopens_a_solved_ticket(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    assert (await patch(intake, ticket_id, status="solved")).status_code == 200

    async with tickets_tap(intake) as tap:
        response = await message(intake, ticket_id, author="requester", body="还是没到账")
        await tap.collect(5)

    assert response.status_code == 201, response.text
    assert response.json()["ticket"]["status"] == "open"
    events = of_ticket(tap, ticket_id)
    assert types(events)[-3:] == [MESSAGE_ADDED, "helpstream.ticket.reopened", STATUS_CHANGED]
    change = events[-1].data.model_dump()
    assert (change["old"], change["new"]) == ("solved", "open")
    assert events[-2].data.model_dump()["reason"] == "requester_reply"


async def test_a_requester_reply_to_a_pending_ticket_opens_it(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    await patch(intake, ticket_id, status="pending")

    response = await message(intake, ticket_id, author="requester", body="here is the txid")

    assert response.status_code == 201, response.text
    assert (await get_ticket(intake, ticket_id))["status"] == "open"


async def test_an_agent_public_reply_opens_a_new_ticket(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]

    response = await message(
        intake, ticket_id, author="agent", author_id="agent-7", body="We are checking the chain."
    )

    assert response.status_code == 201, response.text
    assert response.json()["message"]["author_id"] == "agent-7"
    assert (await get_ticket(intake, ticket_id))["status"] == "open"


async def test_an_internal_note_is_stored_but_its_published_event_has_no_body(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open())["id"]

    async with tickets_tap(intake) as tap:
        response = await message(
            intake,
            ticket_id,
            author="agent",
            author_id="agent-7",
            body="Requester's KYC selfie looks edited",
            public=False,
        )
        await tap.collect(2)

    assert response.status_code == 201, response.text
    ticket = await get_ticket(intake, ticket_id)
    assert [(m["public"], m["body"]) for m in ticket["messages"]] == [
        (False, "Requester's KYC selfie looks edited")
    ]
    assert ticket["status"] == "new"
    note = [e.data.model_dump() for e in of_ticket(tap, ticket_id) if e.type == MESSAGE_ADDED]
    assert [(e["public"], e["body"]) for e in note] == [(False, None)]
    assert b"selfie" not in b"".join(r.value for r in tap.records)


async def test_a_message_on_a_closed_ticket_is_refused_with_409(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    await patch(intake, ticket_id, status="solved")
    await patch(intake, ticket_id, status="closed")

    response = await message(intake, ticket_id, author="requester", body="hello?")

    assert_problem(response, 409, "ticket_closed")
    assert (await get_ticket(intake, ticket_id))["messages"] == []


# --- status, priority, assignment ------------------------------------------------------------


async def test_the_legal_status_path_to_closed_publishes_each_change_in_order(
    intake: Intake,
) -> None:
    path = ["open", "pending", "open", "on_hold", "open", "solved", "closed"]
    async with tickets_tap(intake) as tap:
        ticket_id = (await intake.open())["id"]
        for status in path:
            response = await patch(intake, ticket_id, status=status)
            assert response.status_code == 200, (status, response.text)
            assert response.json()["status"] == status
        await tap.collect(1 + len(path))

    changes = [e.data.model_dump() for e in of_ticket(tap, ticket_id) if e.type == STATUS_CHANGED]
    assert [(c["old"], c["new"]) for c in changes] == list(
        zip(["new", *path[:-1]], path, strict=True)
    )
    assert [c["ticket"]["status"] for c in changes] == path


async def test_an_illegal_status_change_is_refused_with_409_naming_the_allowed_statuses(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open())["id"]

    from_new = await patch(intake, ticket_id, status="closed")
    await patch(intake, ticket_id, status="solved")
    await patch(intake, ticket_id, status="closed")
    from_closed = await patch(intake, ticket_id, status="open")

    body = assert_problem(from_new, 409, "illegal_transition")
    assert "allowed: on_hold, open, pending, solved" in body["detail"]
    body = assert_problem(from_closed, 409, "illegal_transition")
    assert "none" in body["detail"]
    assert (await get_ticket(intake, ticket_id))["status"] == "closed"


async def test_priority_and_assignment_changes_publish_priority_changed_and_assigned(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open())["id"]

    async with tickets_tap(intake) as tap:
        response = await patch(
            intake, ticket_id, priority="urgent", assignee="agent-7", group="security"
        )
        await tap.collect(3)

    assert response.status_code == 200, response.text
    ticket = response.json()
    assert (ticket["priority"], ticket["assignee"], ticket["group"]) == (
        "urgent",
        "agent-7",
        "security",
    )
    events = of_ticket(tap, ticket_id)
    assert types(events) == [
        CREATED,
        "helpstream.ticket.priority_changed",
        "helpstream.ticket.assigned",
    ]
    changed, assigned = (e.data.model_dump() for e in events[1:])
    assert (changed["old"], changed["new"]) == ("high", "urgent")
    assert (assigned["assignee"], assigned["group"]) == ("agent-7", "security")


async def test_every_operation_on_an_unknown_ticket_answers_404(intake: Intake) -> None:
    missing = "01900000-0000-7000-8000-000000000000"
    responses = [
        await intake.http.get(f"/v1/tickets/{missing}", headers=intake.auth()),
        await patch(intake, missing, status="open"),
        await message(intake, missing, author="requester", body="hi"),
        await escalate(intake, missing, "requester"),
    ]

    for response in responses:
        body = assert_problem(response, 404, "ticket_not_found")
        assert missing in body["detail"]


# --- escalation ------------------------------------------------------------------------------


async def test_a_requester_escalation_goes_to_senior_support_one_priority_step_up(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open(priority="normal"))["id"]
    await patch(intake, ticket_id, assignee="agent-7")

    async with tickets_tap(intake) as tap:
        response = await escalate(intake, ticket_id, "requester")
        await tap.collect(4)

    assert response.status_code == 200, response.text
    ticket = response.json()
    assert (ticket["escalation_level"], ticket["group"], ticket["priority"]) == (
        1,
        "senior_support",
        "high",
    )
    assert ticket["assignee"] is None
    events = of_ticket(tap, ticket_id)
    escalated = [e.data.model_dump() for e in events if e.type == "helpstream.ticket.escalated"]
    assert [(e["level"], e["reason"]) for e in escalated] == [(1, "requester_request")]
    assert types(events)[-1] == "helpstream.ticket.priority_changed"


async def test_agents_escalate_to_levels_two_and_three_and_a_fourth_escalation_is_refused(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open(priority="low"))["id"]

    seen = []
    for by in ("requester", "agent", "agent"):
        response = await escalate(intake, ticket_id, by)
        assert response.status_code == 200, response.text
        seen.append((response.json()["escalation_level"], response.json()["priority"]))
    fourth = await escalate(intake, ticket_id, "agent")

    assert seen == [(1, "normal"), (2, "high"), (3, "urgent")]
    assert_problem(fourth, 409, "escalation_limit")
    ticket = await get_ticket(intake, ticket_id)
    assert (ticket["escalation_level"], ticket["group"]) == (3, "service_manager")


# --- listing ---------------------------------------------------------------------------------


async def test_listing_filters_by_requester_and_status_newest_first(intake: Intake) -> None:
    mine = [(await intake.open(requester={"id": "u-1"}))["id"] for _ in range(3)]
    await intake.open(requester={"id": "u-2"})
    await patch(intake, mine[1], status="open")

    by_requester = await listed(intake, requester_id="u-1")
    open_ones = await listed(intake, requester_id="u-1", status="open")
    new_ones = await listed(intake, status="new")

    assert [t["id"] for t in by_requester["items"]] == mine[::-1]
    assert [t["id"] for t in open_ones["items"]] == [mine[1]]
    assert len(new_ones["items"]) == 3
    assert all(t["status"] == "new" for t in new_ones["items"])
    assert by_requester["next_cursor"] is None


async def test_cursor_paging_returns_every_ticket_once_and_ends_without_a_cursor(
    intake: Intake,
) -> None:
    opened = [(await intake.open())["id"] for _ in range(5)]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = await listed(intake, **params)
        pages.append([t["id"] for t in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 5, "paging does not end"

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == opened[::-1]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "abc", "zzzz"])
async def test_a_malformed_cursor_is_refused_with_400(intake: Intake, cursor: str) -> None:
    response = await intake.http.get(
        "/v1/tickets", params={"cursor": cursor}, headers=intake.auth()
    )

    assert_problem(response, 400)


@pytest.mark.parametrize(
    "cursor",
    ["!!!!", base64.urlsafe_b64encode(b"hello").decode()],
    ids=["not-base64", "base64-of-no-ticket-id"],
)
async def test_a_cursor_the_api_never_issued_is_refused_with_400(
    intake: Intake, cursor: str
) -> None:
    await intake.open()

    response = await intake.http.get(
        "/v1/tickets", params={"cursor": cursor}, headers=intake.auth()
    )

    assert_problem(response, 400)


# --- invalid input ---------------------------------------------------------------------------


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in fields}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (without(ticket_body(), "subject", "description"), "subject"),
        (ticket_body(password="hunter2"), "password"),
        (ticket_body(subject="提" * 301), "subject"),
        (ticket_body(channel="carrier-pigeon"), "channel"),
        (ticket_body(requester={"locale": "en"}), "id"),
    ],
    ids=["missing-fields", "unknown-field", "subject-too-long", "invalid-channel", "no-requester"],
)
async def test_an_invalid_ticket_is_refused_with_422_listing_errors_and_nothing_is_stored(
    intake: Intake, body: dict[str, Any], field: str
) -> None:
    response = await intake.http.post("/v1/tickets", json=body, headers=intake.auth())

    problem = assert_problem(response, 422)
    assert problem["errors"]
    assert any(field in err["loc"] for err in problem["errors"]), problem["errors"]
    assert all(err["msg"] for err in problem["errors"])
    assert (await listed(intake))["items"] == []


# --- metrics ---------------------------------------------------------------------------------


async def test_metrics_count_created_tickets_by_category_channel_and_priority(
    intake: Intake,
) -> None:
    await intake.open()
    await intake.open()
    await intake.open(
        channel="web", subject="account hacked", description="unknown login", crypto=None
    )
    repeat = {**intake.auth(), "Idempotency-Key": "same"}
    for _ in range(2):
        await intake.http.post("/v1/tickets", json=ticket_body(channel="email"), headers=repeat)

    samples = await metric_samples(intake, "helpstream_intake_tickets_created_total")

    assert sorted((s["channel"], s["category"], s["priority"], v) for s, v in samples) == [
        ("app", "withdrawal_delay", "high", 2.0),
        ("email", "withdrawal_delay", "high", 1.0),
        ("web", "account_security", "urgent", 1.0),
    ]


async def test_http_metrics_label_requests_by_route_template_never_by_ticket_id(
    intake: Intake,
) -> None:
    ticket_id = (await intake.open())["id"]
    await get_ticket(intake, ticket_id)
    await patch(intake, ticket_id, status="open")
    await intake.http.get("/v1/tickets/no-such-ticket", headers=intake.auth())

    samples = await metric_samples(intake, "helpstream_intake_http_requests_total")
    text = (await intake.http.get("/metrics")).text

    counts = {(s["route"], s["method"], s["status"]): v for s, v in samples}
    assert counts[("/v1/tickets", "POST", "201")] == 1
    assert counts[("/v1/tickets/{ticket_id}", "GET", "200")] == 1
    assert counts[("/v1/tickets/{ticket_id}", "GET", "404")] == 1
    assert counts[("/v1/tickets/{ticket_id}", "PATCH", "200")] == 1
    assert ticket_id not in text
    assert "no-such-ticket" not in text
    durations = await metric_samples(
        intake, "helpstream_intake_http_request_duration_seconds_count"
    )
    assert {s["route"] for s, _ in durations} >= {"/v1/tickets", "/v1/tickets/{ticket_id}"}


async def test_internal_notes_are_shown_only_to_agent_keys(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    note = {
        "author": "agent",
        "author_id": "a-1",
        "body": "KYC flagged, check AML",
        "public": False,
    }
    added = await intake.http.post(
        f"/v1/tickets/{ticket_id}/messages", json=note, headers=intake.auth()
    )
    assert added.status_code == 201, added.text
    reader = await intake.key_with("tickets:read")
    agent = await intake.key_with("tickets:read", "tickets:agent")

    as_reader = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth(reader))
    as_agent = await intake.http.get(f"/v1/tickets/{ticket_id}", headers=intake.auth(agent))

    assert [m["body"] for m in as_reader.json()["messages"]] == []
    assert [m["body"] for m in as_agent.json()["messages"]] == ["KYC flagged, check AML"]


async def test_only_agent_keys_may_post_official_system_notices(intake: Intake) -> None:
    ticket_id = (await intake.open())["id"]
    writer = await intake.key_with("tickets:write")
    notice = {"author": "system", "body": "Your withdrawal was released."}

    refused = await intake.http.post(
        f"/v1/tickets/{ticket_id}/messages", json=notice, headers=intake.auth(writer)
    )

    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
