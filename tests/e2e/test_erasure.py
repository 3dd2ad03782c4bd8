"""A requester is erased across every service, each a real process (a file they mailed
in leaves the mail gateway too); another requester's data stays; a requester under a
legal hold is refused."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from helpstream.demo import reply_by_email
from shared.mail_threading import ticket_of_address
from shared.settings import ServiceSettings
from tests.e2e.conftest import API_KEY, SECRETS
from tests.support import Tap, eventually

if TYPE_CHECKING:
    from shared.infra.mailcatcher import MailCatcher
    from shared.infra.modes import Infra

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
ATTACHMENTS = {"Authorization": f"Bearer {SECRETS['attachments_api_key']}"}
STATES = ("new", "open", "pending", "on_hold", "solved", "closed")
STEPS = {  # after an agent's reply (except for `new`)
    "new": [],
    "open": [],
    "pending": ["pending"],
    "on_hold": ["on_hold"],
    "solved": ["solved"],
    "closed": ["solved", "closed"],
}


class Requester:
    """One requester's tickets, each text unique, so a scan can look for every one."""

    def __init__(self, name: str, uid: str) -> None:
        self.id = f"{name}-{uid}"
        self.email = f"{name}.{uid}@example.com"
        self.texts: list[str] = []

    def text(self, what: str) -> str:
        value = f"{what} {self.id} marker{len(self.texts)}x"
        self.texts.append(value)
        return value

    @property
    def personal(self) -> list[str]:
        return [self.email, *self.texts]


async def open_ticket(http: httpx.AsyncClient, intake: str, who: Requester, status: str) -> str:
    response = await http.post(
        f"{intake}/v1/tickets",
        json={
            "requester": {"id": who.id, "email": who.email, "locale": "en"},
            "channel": "app",
            "subject": who.text("Withdrawal stuck"),
            "description": who.text("My USDT withdrawal has not arrived"),
        },
    )
    assert response.status_code == 201, response.text
    ticket_id: str = response.json()["id"]
    if status != "new":
        reply = {"body": who.text("Agent: checking"), "author": "agent", "author_id": "a-1"}
        added = await http.post(f"{intake}/v1/tickets/{ticket_id}/messages", json=reply)
        assert added.status_code == 201, added.text
    for step in STEPS[status]:
        changed = await http.patch(f"{intake}/v1/tickets/{ticket_id}", json={"status": step})
        assert changed.status_code == 200, changed.text
    return ticket_id


async def scan(client: AsyncMongoClient[dict[str, Any]], uid: str) -> str:
    """Every document of every service database of this test, as one text."""
    found = []
    for name in await client.list_database_names():
        if not name.startswith(f"t{uid}_"):
            continue
        db = client[name]
        for collection in await db.list_collection_names():
            async for doc in db[collection].find():
                found.append(f"{name}.{collection}: {doc!r}")
    return "\n".join(found)


async def mail_a_file(
    http: httpx.AsyncClient,
    services: dict[str, str],
    mail: MailCatcher,
    smtp_port: int,
    who: Requester,
    ticket_id: str,
    content: bytes,
) -> str:
    """`who` answers a mail of `ticket_id` from their mail client with `content` attached;
    the file's sha256 once it is on the ticket."""
    secret = SECRETS["mail_thread_secret"].encode()

    async def mail_of_ticket() -> Any:
        return next(
            (
                m
                for m in mail.messages
                if ticket_of_address(secret, str(m.message["Reply-To"] or "")) == ticket_id
            ),
            None,
        )

    original = await eventually(mail_of_ticket, timeout=60)
    reply = reply_by_email(original.message, "The statement you asked for.", who.email)
    reply.add_attachment(content, maintype="application", subtype="pdf", filename="bank.pdf")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.send_message(reply)

    async def on_ticket() -> str | None:
        ticket = (await http.get(f"{services['intake']}/v1/tickets/{ticket_id}")).json()
        files = [a for m in ticket["messages"] for a in m.get("attachments") or []]
        return str(files[0]["sha256"]) if files else None

    return str(await eventually(on_ticket, timeout=60))


async def test_an_erased_requester_leaves_no_personal_data_in_any_database(
    services: dict[str, str], infra: Infra, uid: str, mail: MailCatcher, inbound_smtp_port: int
) -> None:
    target, other = Requester("gone", uid), Requester("stays", uid)
    intake = services["intake"]
    async with httpx.AsyncClient(timeout=15, headers=HEADERS) as http:
        async with Tap(infra.kafka_bootstrap, f"t{uid}.helpstream.feedback") as feedback:
            tickets = [await open_ticket(http, intake, target, s) for s in STATES]
            kept = await open_ticket(http, intake, other, "solved")

            async def surveys() -> dict[str, str]:
                await feedback.collect(len(feedback.records) + 1, timeout=0.3)
                return {
                    e.subject: e.data.survey_url  # type: ignore[attr-defined]
                    for e in feedback.events()
                    if e.type == "helpstream.feedback.requested"
                }

            urls = await eventually(lambda: _at_least(surveys, 3), timeout=60)
        for ticket_id, url in urls.items():  # the target's two solved tickets, the other's
            rated = await http.post(
                f"{services['feedback']}/v1/surveys/{url.rsplit('/', 1)[1]}",
                json={"score": 2, "comment": (other if ticket_id == kept else target).text("Slow")},
            )
            assert rated.status_code == 200, rated.text
        mail.wait_for(len(STATES) + 1, timeout=60)  # acknowledgements at least
        statement = f"%PDF-1.7 bank statement of {target.id}".encode()
        sha256 = await mail_a_file(  # to the open ticket: it stays open
            http, services, mail, inbound_smtp_port, target, tickets[1], statement
        )
        file_url = f"{services['mail_gateway']}/v1/attachments/{sha256}"
        assert (await http.get(file_url, headers=ATTACHMENTS)).content == statement

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url)
        try:

            async def inbox_filled() -> bool:
                db = client[f"t{uid}_notifier"]
                return await db["inbox"].count_documents({"requester_id": target.id}) > 0

            await eventually(inbox_filled, timeout=60)
            before = await scan(client, uid)
            assert all(text in before for text in (target.email, target.texts[0]))
            assert repr(statement)[2:-1] in before  # the file's contents, in GridFS
            await check_export(http, services, target, tickets)

            erasure_url = f"{intake}/v1/requesters/{target.id}/erasure"
            started = await http.post(erasure_url)
            assert started.status_code == 202, started.text
            again = await http.post(erasure_url)
            assert again.status_code == 200
            assert again.json()["erasure_id"] == started.json()["erasure_id"]

            async def completed() -> dict[str, Any] | None:
                progress = (await http.get(erasure_url)).json()
                return progress if progress["status"] == "completed" else None

            progress = await eventually(completed, timeout=60)
            assert [s["service"] for s in progress["services"]] == [
                "intake",
                "sla_monitor",
                "feedback",
                "notifier",
                "mail_gateway",
            ]
            assert all(s["confirmed"] for s in progress["services"])
            counts = {s["service"]: s["counts"] for s in progress["services"]}
            assert counts["intake"] == {"tickets": len(STATES)}
            assert counts["feedback"]["surveys"] == 2
            assert counts["notifier"]["inbox_items"] > 0
            assert counts["mail_gateway"] == {"attachments": 1}

            after = await scan(client, uid)
        finally:
            await client.close()
        assert repr(statement)[2:-1] not in after
        topics = await read_every_topic(infra, uid)
        assert {"tickets", "commands"} <= set(topics), sorted(topics)
        assert any(b"hs-sealed:v1:" in value for value in topics["commands"])  # the mail
        on_kafka = b"".join(b"".join(values) for values in topics.values())
        leaked_on_kafka = [text for text in target.personal if text.encode() in on_kafka]
        assert leaked_on_kafka == [], f"readable on Kafka after erasure: {leaked_on_kafka}"
        opened = await opened_tickets_topic(infra, uid)
        assert all(text.encode() not in opened for text in target.personal)
        assert other.texts[0].encode() in opened  # the other requester's events still open
        assert b"[erased]" in opened
        assert (await http.get(file_url, headers=ATTACHMENTS)).status_code == 404
        leaked = [text for text in target.personal if text in after]
        assert leaked == [], [line for line in after.splitlines() if any(t in line for t in leaked)]
        assert all(text in after for text in other.personal)  # the other requester is intact

        for ticket_id in tickets:
            ticket = (await http.get(f"{intake}/v1/tickets/{ticket_id}")).json()
            assert ticket["subject"] == "[erased]"
            assert ticket["requester"]["email"] is None
        statuses = {(await http.get(f"{intake}/v1/tickets/{t}")).json()["status"] for t in tickets}
        assert statuses == set(STATES)  # the shape and history stay; the person does not
        listed = await http.get(f"{intake}/v1/tickets", params={"requester_id": target.id})
        assert listed.json()["items"] == []
        export = (await http.get(f"{intake}/v1/requesters/{target.id}/export")).json()
        assert export["intake"]["tickets"] == []
        assert export["feedback"]["surveys"] == []
        assert export["notifier"]["inbox"] == []
        assert export["intake"]["erasures"][0]["completed_at"] is not None


async def read_every_topic(infra: Infra, uid: str) -> dict[str, list[bytes]]:
    """Every record of every topic of this test (DLQs included), as a consumer reading
    from the beginning sees it."""
    prefix = f"t{uid}.helpstream."
    probe = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap)
    await probe.start()
    try:
        names = sorted(t for t in await probe.topics() if t.startswith(prefix))
    finally:
        await probe.stop()
    found: dict[str, list[bytes]] = {}
    for name in names:
        async with Tap(infra.kafka_bootstrap, name) as tap:
            found[name.removeprefix(prefix)] = [r.value or b"" for r in await tap.settle(1.0)]
    return found


async def opened_tickets_topic(infra: Infra, uid: str) -> bytes:
    """helpstream.tickets as helpstream's own consumers read it: sealed fields opened."""
    settings = ServiceSettings(mongo_url=infra.mongo_url, mongo_db_prefix=f"t{uid}")
    async with Tap(infra.kafka_bootstrap, f"t{uid}.helpstream.tickets", settings) as tap:
        return b"".join(r.value or b"" for r in await tap.settle(1.0))


async def check_export(
    http: httpx.AsyncClient, services: dict[str, str], who: Requester, tickets: list[str]
) -> None:
    """The export holds what was created: every ticket with its texts, both ratings with
    their comments, the inbox items; nothing of another requester."""
    url = f"{services['intake']}/v1/requesters/{who.id}/export"
    response = await http.get(url)
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["requester_id"] == who.id
    assert sorted(t["_id"] for t in export["intake"]["tickets"]) == sorted(tickets)
    assert {t["requester"]["email"] for t in export["intake"]["tickets"]} == {who.email}
    texts = repr(export)
    assert all(text in texts for text in who.texts)
    comments = sorted(s["rating"]["comment"] for s in export["feedback"]["surveys"])
    assert comments == sorted(t for t in who.texts if t.startswith("Slow"))
    assert len(export["notifier"]["inbox"]) > 0
    assert {i["requester_id"] for i in export["notifier"]["inbox"]} == {who.id}
    assert "stays-" not in texts
    unauthorised = await http.get(
        f"{services['feedback']}/v1/requesters/{who.id}/export",
        headers={"Authorization": "Bearer wrong"},
    )
    assert unauthorised.status_code == 401


async def test_a_requester_under_legal_hold_is_not_erased_until_the_hold_is_lifted(
    services: dict[str, str], uid: str
) -> None:
    held = Requester("held", uid)
    intake = services["intake"]
    async with httpx.AsyncClient(timeout=15, headers=HEADERS) as http:
        ticket_id = await open_ticket(http, intake, held, "open")
        hold_url = f"{intake}/v1/requesters/{held.id}/legal-hold"
        placed = await http.put(hold_url, json={"reason": "AML investigation 2026-117"})
        assert placed.status_code == 200, placed.text

        refused = await http.post(f"{intake}/v1/requesters/{held.id}/erasure")
        assert refused.status_code == 409
        assert refused.json()["code"] == "legal_hold"
        assert "AML investigation 2026-117" in refused.json()["detail"]
        ticket = (await http.get(f"{intake}/v1/tickets/{ticket_id}")).json()
        assert ticket["requester"]["email"] == held.email
        none = await http.get(f"{intake}/v1/requesters/{held.id}/erasure")
        assert none.status_code == 404

        assert (await http.delete(hold_url)).status_code == 204
        started = await http.post(f"{intake}/v1/requesters/{held.id}/erasure")
        assert started.status_code == 202, started.text
        ticket = (await http.get(f"{intake}/v1/tickets/{ticket_id}")).json()
        assert ticket["requester"]["email"] is None


async def _at_least(check: Any, count: int) -> dict[str, str] | None:
    found: dict[str, str] = await check()
    return found if len(found) >= count else None
