"""The acknowledgement keeps its promise: it names the first reply time sla_monitor set,
though that time arrives after the ticket; without one it goes out after a bounded wait.
Every mail of a ticket is one conversation in the requester's mail client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.notifier.settings import NotifierSettings
from shared.infra.mailcatcher import CaughtMail, MailCatcher
from shared.infra.modes import Infra
from shared.mail_threading import ticket_of_address, ticket_of_references
from tests.integration.notifier.builders import applied, created, reply
from tests.integration.notifier.conftest import (
    Notifier,
    Receiver,
    mails,
    start,
    summary,
    until,
)
from tests.support import TEST_SECRETS

PROMISED_ZH = "2030年3月1日 16:30 (北京时间 / Asia/Shanghai)"  # builders.DUE, 08:30 UTC
PROMISED_EN = "Mar 1, 2030, 4:30 PM (Asia/Shanghai)"


def to(caught: list[CaughtMail], address: str) -> list[CaughtMail]:
    return [m for m in caught if m.rcpt_tos == (address,)]


def metric(notifier: Notifier, name: str, **labels: str) -> float:
    return notifier.runtime.registry.get_sample_value(name, labels) or 0.0


async def inbox_bodies(notifier: Notifier, requester_id: str) -> list[str]:
    response = await notifier.http.get("/v1/inbox", headers=notifier.token(requester_id))
    assert response.status_code == 200, response.text
    return [item["body"] for item in response.json()["items"]]


async def test_the_acknowledgement_names_the_promised_time_that_arrives_after_the_ticket(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    mail: MailCatcher,
    receiver: Receiver,
) -> None:
    async with start(notifier_settings(ack_sla_wait_s=10), infra) as notifier:
        # a warm consumer: a first ticket has gone through
        await notifier.publish(("tickets", created("T-warm", email="warm@example.com")))
        await notifier.publish(("sla", applied("T-warm")))
        await mails(mail, 1)

        # as in production: the ticket first, sla_monitor's promise a moment later;
        # meanwhile the consumer goes on with other tickets' messages
        await notifier.publish(("tickets", created("T-late", id="u-7")))
        await notifier.publish(("tickets", reply("T-warm", "Checking the chain.")))
        caught = await mails(mail, 2)
        assert not to(caught, "li.wei@example.com")  # held for the promise
        await notifier.publish(("sla", applied("T-late")))
        caught = await mails(mail, 3)

        ack = to(caught, "li.wei@example.com")[0]
        assert ack.subject == "[T-late] 我们已收到您的请求：提现未到账"
        assert f"预计首次回复时间：{PROMISED_ZH}" in ack.text()
        assert "尽快" not in ack.text()
        await until(lambda: any(b"T-late" in c.body for c in receiver.to("/push")))
        push = next(c for c in receiver.to("/push") if b"T-late" in c.body)
        assert PROMISED_ZH in push.json()["body"]
        released = "helpstream_notifier_ack_held_total"
        await until(lambda: metric(notifier, released, released_by="sla") == 3)  # 3 channels
        assert any(PROMISED_ZH in body for body in await inbox_bodies(notifier, "u-7"))
        assert metric(notifier, "helpstream_notifier_ack_without_sla_total", channel="email") == 0

        # the agent's answer joins the acknowledgement's conversation
        await notifier.publish(("tickets", reply("T-late", "We found your transfer.")))
        caught = await mails(mail, 4)
    answer = to(caught, "li.wei@example.com")[1]
    root = ack.message["Message-ID"]
    assert answer.message["In-Reply-To"] == root
    assert answer.message["References"] == root
    assert answer.message["Message-ID"] != root
    secret = TEST_SECRETS["mail_thread_secret"].encode()
    assert ticket_of_references(secret, answer.message["In-Reply-To"]) == "T-late"
    # no inbound mail configured: no reply address, no promise to read replies
    assert answer.message["Reply-To"] is None
    assert "回复此邮件" not in answer.text()


async def test_without_a_promise_from_sla_monitor_the_acknowledgement_goes_out_after_the_wait(
    notifier_settings: Callable[..., NotifierSettings], infra: Infra, mail: MailCatcher
) -> None:
    """sla_monitor stopped: no sla.applied ever comes."""
    async with start(notifier_settings(ack_sla_wait_s=1.0), infra) as notifier:
        await notifier.publish(("tickets", created("T-nosla", locale="en", id="u-8")))
        caught = await mails(mail, 1)
        without = "helpstream_notifier_ack_without_sla_total"
        channels = ("email", "webhook", "inbox")
        await until(lambda: all(metric(notifier, without, channel=ch) == 1 for ch in channels))
        held = metric(notifier, "helpstream_notifier_ack_held_total", released_by="deadline")
    assert caught[0].subject == "[T-nosla] We received your request: Withdrawal not received"
    assert "A support agent will reply as soon as possible." in caught[0].text()
    assert held == 3


async def test_with_inbound_mail_the_requester_is_asked_to_reply_to_a_signed_address(
    notifier_settings: Callable[..., NotifierSettings], infra: Infra, mail: MailCatcher
) -> None:
    settings = notifier_settings(inbound_mail_address="support@help.example", ack_sla_wait_s=0)
    async with start(settings, infra) as notifier:
        await notifier.publish(("tickets", created("T-inbound", locale="en")))
        caught = await mails(mail, 1)
    message = caught[0].message
    secret = TEST_SECRETS["mail_thread_secret"].encode()
    assert ticket_of_address(secret, message["Reply-To"]) == "T-inbound"
    assert message["Message-ID"].endswith("@help.example>")
    assert "Reply to this email to add details." in caught[0].text()


async def test_the_short_ticket_number_is_in_the_subject_and_beside_the_id(
    notifier: Notifier, mail: MailCatcher
) -> None:
    ticket = created("T-number", locale="en")
    numbered: Any = ticket.model_copy(update={"ticket": summary(number=482913)})
    await notifier.publish(("tickets", numbered), ("sla", applied("T-number")))
    caught = await mails(mail, 1)
    assert caught[0].subject == "[#482913] We received your request: Withdrawal not received"
    assert "(ticket #482913, reference T-number)" in caught[0].text()
    assert PROMISED_EN in caught[0].text()
