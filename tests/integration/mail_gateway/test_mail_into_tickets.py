"""Mail sent to the gateway over SMTP, seen where an agent sees it: on the ticket.

The mail gateway and intake both run in this event loop on the real broker and MongoDB;
each test speaks SMTP to the gateway as a relay would and reads the ticket over intake's
HTTP API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.intake.app import create_app as create_intake
from services.intake.handlers import mail_requester_id
from services.intake.settings import IntakeSettings
from shared.infra.modes import Infra
from shared.mail_threading import message_id, reply_address
from shared.runtime import ServiceRuntime
from tests.integration.intake.conftest import ADMIN_KEY, Intake
from tests.integration.intake.test_follow_ups_and_unverified import closed_ticket
from tests.integration.intake.test_http_api import get_ticket, listed, patch
from tests.integration.mail_gateway.conftest import (
    ATTACHMENTS_KEY,
    DOMAIN,
    SUPPORT,
    Gateway,
    compose,
    start,
)
from tests.mail_gateway.samples import SAMPLES, squash
from tests.support import eventually, running

REQUESTER = "li.wei@example.com"
QUOTED = "\n\nOn Sun, 29 Nov 2026 at 10:02, Support <support@helpstream.example> wrote:\n> "
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
CHARSET_SAMPLES = [s for s in SAMPLES if "charset" in s.meta and s.expected is not None]


@pytest.fixture
async def stack(
    make_settings: Callable[..., Any],
    gateway_settings: Callable[..., Any],
    infra: Infra,
) -> AsyncIterator[tuple[Intake, Gateway]]:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    runtime = ServiceRuntime("intake", settings)
    async with (
        running(create_intake(settings, runtime)) as http,
        start(gateway_settings(), infra) as gateway,
    ):
        yield Intake(http, settings, runtime), gateway


def to_ticket(gateway: Gateway, ticket_id: str) -> str:
    address = reply_address(gateway.thread_secret, ticket_id, SUPPORT)
    assert address is not None
    return address


async def messages(intake: Intake, ticket_id: str, count: int = 1) -> list[dict[str, Any]]:
    async def arrived() -> list[dict[str, Any]] | None:
        found = list((await get_ticket(intake, ticket_id))["messages"])
        return found if len(found) >= count else None

    return await eventually(arrived, timeout=30)


async def test_a_reply_to_the_signed_address_is_the_requesters_new_words_and_reopens_the_ticket(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    ticket = await intake.open()
    await patch(intake, ticket["id"], status="solved")
    address = to_ticket(gateway, ticket["id"])
    raw = compose(to=address, body="Still not there, please check again." + QUOTED + "Solved?")

    assert (await gateway.deliver(raw, to=[address])).code == 250

    (reply,) = await messages(intake, ticket["id"])
    assert reply["body"] == "Still not there, please check again."
    assert reply["author"] == "requester"
    assert reply["unverified"] is False
    assert (await get_ticket(intake, ticket["id"]))["status"] == "open"


async def test_a_reply_naming_our_message_id_threads_into_its_ticket(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    ticket = await intake.open()
    ours = message_id(gateway.thread_secret, ticket["id"], "n1", DOMAIN)
    raw = compose(body="Here is the txid you asked for.", headers={"In-Reply-To": ours})

    assert (await gateway.deliver(raw)).code == 250

    (reply,) = await messages(intake, ticket["id"])
    assert reply["body"] == "Here is the txid you asked for."


async def test_mail_that_threads_nowhere_opens_one_email_ticket_though_the_relay_sends_it_twice(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    sender = "new.user@example.org"
    raw = compose(
        sender=f"New User <{sender}>",
        subject="Deposit of 0.5 ETH not credited",
        body="I sent 0.5 ETH two hours ago; 12 confirmations, balance still zero.",
        headers={"Message-ID": "<first-mail-1@example.org>"},
    )

    for _ in range(2):
        assert (await gateway.deliver(raw, mail_from=sender)).code == 250

    async def opened() -> list[dict[str, Any]] | None:
        items = (await listed(intake, requester_id=mail_requester_id(sender)))["items"]
        return items or None

    (ticket,) = await eventually(opened, timeout=30)
    assert ticket["channel"] == "email"
    assert ticket["subject"] == "Deposit of 0.5 ETH not credited"
    assert ticket["requester"]["email"] == sender
    await gateway.deliver(raw, mail_from=sender)  # once more, after the ticket exists

    async def third_seen() -> bool:
        labels = {"type": "helpstream.ticket.open", "outcome": "duplicate"}
        return (
            intake.runtime.registry.get_sample_value("helpstream_intake_commands_total", labels)
            == 2.0
        )

    await eventually(third_seen, timeout=30)
    assert len((await listed(intake, requester_id=mail_requester_id(sender)))["items"]) == 1


async def test_a_reply_to_a_closed_ticket_opens_a_follow_up_linked_to_it(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    closed = await closed_ticket(intake)
    address = to_ticket(gateway, closed["id"])
    raw = compose(to=address, subject="Re: 提现未到账", body="又没到账了，这次是另一笔。")

    assert (await gateway.deliver(raw, to=[address])).code == 250

    async def follow_up() -> list[dict[str, Any]] | None:
        return list((await get_ticket(intake, closed["id"]))["follow_ups"]) or None

    (link,) = await eventually(follow_up, timeout=30)
    opened = await get_ticket(intake, link["id"])
    assert opened["description"] == "又没到账了，这次是另一笔。"
    assert opened["channel"] == "email"


async def test_mail_from_another_address_is_held_unverified_and_reopens_nothing(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    ticket = await intake.open()
    await patch(intake, ticket["id"], status="solved")
    address = to_ticket(gateway, ticket["id"])
    spoof = compose(
        to=address,
        sender="Li Wei <li.wei@examp1e.com>",
        body="New withdrawal address for my funds: TXyz9f3…",
    )

    assert (await gateway.deliver(spoof, to=[address], mail_from="li.wei@examp1e.com")).code == 250

    (held,) = await messages(intake, ticket["id"])
    assert held["unverified"] is True
    assert held["public"] is False
    assert held["claimed_from"] == "Li Wei <li.wei@examp1e.com>"
    assert (await get_ticket(intake, ticket["id"]))["status"] == "solved"


async def test_an_auto_reply_and_a_bounce_to_a_ticket_add_nothing_to_it(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    ticket = await intake.open()
    address = to_ticket(gateway, ticket["id"])
    vacation = compose(
        to=address,
        subject="Automatic reply: Re: 提现未到账",
        body="I am on holiday until Monday.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    bounce = next(s for s in SAMPLES if s.name == "bounce_postfix").raw

    assert (await gateway.deliver(vacation, to=[address])).code == 250
    assert (await gateway.deliver(bounce, to=[address], mail_from="<>")).code == 250

    assert await gateway.no_commands() == []
    assert (await get_ticket(intake, ticket["id"]))["messages"] == []


async def test_an_attachment_is_on_the_message_and_downloadable_from_the_gateway(
    stack: tuple[Intake, Gateway],
) -> None:
    intake, gateway = stack
    ticket = await intake.open()
    address = to_ticket(gateway, ticket["id"])
    raw = compose(
        to=address,
        body="Screenshot of the withdrawal page attached.",
        attachments=[
            ("提现截图.png", "image/png", PNG),
            ("tool.exe", "application/octet-stream", b"MZ" + bytes(64)),
        ],
    )

    assert (await gateway.deliver(raw, to=[address])).code == 250

    (reply,) = await messages(intake, ticket["id"])
    screenshot, tool = reply["attachments"]
    assert screenshot["name"] == "提现截图.png"
    assert screenshot["size"] == len(PNG)
    assert tool["refused"] == "executable"
    path = screenshot["url"].removeprefix(gateway.settings.public_url)
    download = await gateway.http.get(path, headers={"Authorization": f"Bearer {ATTACHMENTS_KEY}"})
    assert download.status_code == 200
    assert download.content == PNG


@pytest.mark.parametrize("sample", CHARSET_SAMPLES, ids=str)
async def test_each_charset_reaches_the_ticket_as_the_words_the_sender_wrote(
    stack: tuple[Intake, Gateway], sample: Any
) -> None:
    intake, gateway = stack
    ticket = await intake.open()
    address = to_ticket(gateway, ticket["id"])

    assert (await gateway.deliver(sample.raw, to=[address])).code == 250

    (reply,) = await messages(intake, ticket["id"])
    assert squash(reply["body"]) == squash(sample.expected)
