"""What a received mail becomes, decided by intake from the requester's address.

The mail gateway sends every mail it threads (or cannot thread) as one `receive_mail`
command signed with its own key (tickets:write only); these tests send those commands as
the gateway does, on the real broker, and look at the tickets an agent would see.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mnemonic import Mnemonic

from services.intake.handlers import NEW_MAIL_PREFIX, mail_requester_id
from shared.infra.modes import Infra
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_commands import command, produce_signed
from tests.integration.intake.test_follow_ups_and_unverified import closed_ticket
from tests.integration.intake.test_http_api import get_ticket, listed, metric_samples, patch
from tests.integration.intake.test_ticket_numbers import status_path
from tests.security.test_signed_commands import dead_letters
from tests.support import TEST_SECRETS, eventually

SAMPLE_MNEMONIC = Mnemonic("english").to_mnemonic(bytes(range(16)))
GATEWAY_KEY = TEST_SECRETS["mail_gateway_api_key"]
REQUESTER = "li.wei@example.com"


def mail(ticket: str, message_id: str, **data: Any) -> bytes:
    """A receive_mail command for `ticket` (a ticket id, or `mail:…` when it threads nowhere)."""
    body: dict[str, Any] = {
        "sender": REQUESTER,
        "subject": "Re: 提现未到账",
        "body": "还是没有到账，请再查一下。",
        "threaded_by": "reply_address",
        "message_id": f"<{message_id}@mail.example.com>",
    }
    body.update(data)
    return command("receive_mail", ticket, body, command_id=f"mail-{message_id}")


async def deliver(intake: Intake, infra: Infra, *mails: bytes, key: str = GATEWAY_KEY) -> None:
    await produce_signed(
        infra.kafka_bootstrap,
        intake.runtime.topics.commands,
        [(json.loads(m)["subject"].encode(), m) for m in mails],
        api_key=key,
    )


async def messages_of(intake: Intake, ticket_id: str, count: int) -> list[dict[str, Any]]:
    async def arrived() -> list[dict[str, Any]] | None:
        found = list((await get_ticket(intake, ticket_id))["messages"])
        return found if len(found) >= count else None

    return await eventually(arrived)


async def test_the_requesters_reply_by_mail_is_their_message_on_the_ticket(
    intake: Intake, infra: Infra
) -> None:
    ticket = await intake.open()
    attachment = {
        "name": "txid.png",
        "content_type": "image/png",
        "size": 2048,
        "sha256": "ab" * 32,
        "url": "http://gateway/v1/attachments/" + "ab" * 32,
    }
    await deliver(intake, infra, mail(ticket["id"], "r1", attachments=[attachment]))

    (reply,) = await messages_of(intake, ticket["id"], 1)
    assert reply["author"] == "requester"
    assert reply["public"] is True
    assert reply["unverified"] is False
    assert reply["body"] == "还是没有到账，请再查一下。"
    assert reply["attachments"][0]["name"] == "txid.png"
    assert reply["attachments"][0]["sha256"] == "ab" * 32


async def test_a_reply_by_mail_reopens_a_solved_ticket(intake: Intake, infra: Infra) -> None:
    ticket = await intake.open()
    await patch(intake, ticket["id"], status="solved")
    await deliver(intake, infra, mail(ticket["id"], "r2", body="Not solved: still pending."))

    async def reopened() -> bool:
        return (await get_ticket(intake, ticket["id"]))["status"] == "open"

    await eventually(reopened)


async def test_mail_from_another_address_is_held_unverified_and_changes_nothing(
    intake: Intake, infra: Infra
) -> None:
    ticket = await intake.open()
    await patch(intake, ticket["id"], status="solved")
    spoof = mail(
        ticket["id"],
        "s1",
        sender="li.wei@examp1e.com",
        sender_name="Li Wei",
        body="Please send the funds to TXYZ… instead.",
    )
    await deliver(intake, infra, spoof)

    (held,) = await messages_of(intake, ticket["id"], 1)
    assert held["unverified"] is True
    assert held["public"] is False
    assert held["claimed_from"] == "Li Wei <li.wei@examp1e.com>"
    after = await get_ticket(intake, ticket["id"])
    assert after["status"] == "solved"  # a spoofed mail reopens nothing
    page = await intake.http.get(status_path(intake, ticket))
    assert page.status_code == 200
    assert "TXYZ" not in page.text


async def test_the_requesters_mail_to_a_closed_ticket_opens_a_follow_up_linked_to_it(
    intake: Intake, infra: Infra
) -> None:
    closed = await closed_ticket(intake)
    await deliver(intake, infra, mail(closed["id"], "c1", body="又没到账了"))

    async def follow_up() -> dict[str, Any] | None:
        follow_ups = (await get_ticket(intake, closed["id"]))["follow_ups"]
        return follow_ups[0] if follow_ups else None

    link = await eventually(follow_up)
    opened = await get_ticket(intake, link["id"])
    assert opened["channel"] == "email"
    assert opened["requester"]["id"] == closed["requester"]["id"]
    assert opened["follow_up_of"]["id"] == closed["id"]
    assert opened["description"] == "又没到账了"


async def test_a_strangers_mail_to_a_closed_ticket_opens_an_unlinked_ticket_for_the_stranger(
    intake: Intake, infra: Infra
) -> None:
    closed = await closed_ticket(intake)
    stranger = "mallory@example.net"
    await deliver(intake, infra, mail(closed["id"], "c2", sender=stranger, body="Is it done?"))

    requester_id = mail_requester_id(stranger)

    async def theirs() -> list[dict[str, Any]] | None:
        items = (await listed(intake, requester_id=requester_id))["items"]
        return items or None

    (opened,) = await eventually(theirs)
    assert opened["follow_up_of"] is None
    assert (await get_ticket(intake, closed["id"]))["follow_ups"] == []


async def test_mail_that_threads_nowhere_opens_one_email_ticket_even_when_delivered_twice(
    intake: Intake, infra: Infra
) -> None:
    sender = "new.user@example.org"
    first = mail(
        f"{NEW_MAIL_PREFIX}{mail_requester_id(sender)}",
        "n1",
        sender=sender,
        subject="USDT withdrawal stuck",
        body=f"My withdrawal is stuck. My seed is {SAMPLE_MNEMONIC}",
        threaded_by="none",
        attachments=[{"name": f"{SAMPLE_MNEMONIC}.txt", "content_type": "text/plain", "size": 9}],
    )
    await deliver(intake, infra, first, first)

    async def opened() -> list[dict[str, Any]] | None:
        items = (await listed(intake, requester_id=mail_requester_id(sender)))["items"]
        return items or None

    (ticket,) = await eventually(opened)
    await deliver(intake, infra, first)  # a relay's third try, after the ticket exists
    full = await get_ticket(intake, ticket["id"])
    assert full["channel"] == "email"
    assert full["requester"]["email"] == sender
    assert full["subject"] == "USDT withdrawal stuck"
    assert SAMPLE_MNEMONIC.split()[3] not in json.dumps(full)
    assert full["secret_redacted"] is True

    async def counted() -> bool:
        samples = await metric_samples(intake, "helpstream_intake_mail_received_total")
        return ({"outcome": "new_ticket"}, 3.0) in samples

    await eventually(counted)
    assert len((await listed(intake, requester_id=mail_requester_id(sender)))["items"]) == 1


async def test_the_gateways_key_cannot_speak_as_an_agent(intake: Intake, infra: Infra) -> None:
    """Its key holds tickets:write only: a stolen gateway key forges no support reply."""
    ticket = await intake.open()
    forged = command(
        "add_message",
        ticket["id"],
        {"author": "agent", "author_id": "a-1", "body": "Send us your 12 words."},
        command_id=f"forged-{datetime.now(UTC).timestamp()}",
    )
    await deliver(intake, infra, forged)

    reasons = await dead_letters(intake, infra, 1)
    assert list(reasons.values()) == ["insufficient_scope"]
    assert (await get_ticket(intake, ticket["id"]))["messages"] == []
