"""An address the mail gateway reports as bouncing is not mailed for a while; the other
channels still reach the requester. Only the gateway may say so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.notifier.settings import NotifierSettings
from shared.events import MailBounced
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from shared.topics import Topics
from tests.integration.notifier.builders import created
from tests.integration.notifier.conftest import (
    Notifier,
    Receiver,
    mails,
    settle_mail,
    start,
    until,
)
from tests.support import Tap

GATEWAY = "/helpstream/mail_gateway"


def bounced(address: str = "Li.Wei@Example.com") -> MailBounced:
    return MailBounced(
        address=address,
        reason="hard",
        diagnostic="550 5.1.1 <li.wei@example.com>: Recipient address rejected: User unknown",
    )


def metric(notifier: Notifier, name: str, **labels: str) -> float:
    return notifier.runtime.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("wait_s", [0.0, 0.5], ids=["sent-by-consumer", "held-then-flushed"])
async def test_a_bounced_address_is_not_mailed_and_the_failure_says_why(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    mail: MailCatcher,
    receiver: Receiver,
    wait_s: float,
) -> None:
    async with start(notifier_settings(ack_sla_wait_s=wait_s), infra) as notifier:
        await notifier.publish(("mail", bounced()), source=GATEWAY)
        await until(lambda: metric(notifier, "helpstream_notifier_bounced_addresses") == 1)
        async with Tap(infra.kafka_bootstrap, notifier.runtime.topics.notifications) as tap:
            await notifier.publish(("tickets", created("T-bounce")))
            await tap.collect(3)
        await until(lambda: bool(receiver.to("/push")))  # the webhook still went out
        suppressed = metric(notifier, "helpstream_notifier_sends_suppressed_total")
    assert await settle_mail(mail, quiet=1.0) == []
    outcomes: dict[str, Any] = {e.data.channel: e for e in tap.events()}  # type: ignore[attr-defined]
    assert outcomes["email"].type == "helpstream.notification.failed"
    assert outcomes["email"].data.error.startswith("address_bouncing")
    assert outcomes["inbox"].type == "helpstream.notification.delivered"
    assert suppressed == 1


async def test_a_bounce_from_anyone_but_the_mail_gateway_is_dead_lettered_and_changes_nothing(
    notifier: Notifier, mail: MailCatcher
) -> None:
    topics = notifier.runtime.topics
    async with Tap(notifier.infra.kafka_bootstrap, Topics.dlq(topics.mail)) as dlq:
        await notifier.publish(("mail", bounced()), source="/helpstream/intake")
        dead = await dlq.collect(1)
    assert dict(dead[0].headers)["error-type"] == b"not_topic_owner"
    await notifier.publish(("tickets", created("T-forged")))
    caught = await mails(mail, 1)
    assert caught[0].rcpt_tos == ("li.wei@example.com",)


async def test_a_bounced_address_is_mailed_again_once_the_suppression_expires(
    notifier_settings: Callable[..., NotifierSettings], infra: Infra, mail: MailCatcher
) -> None:
    settings = notifier_settings(ack_sla_wait_s=0, bounce_suppress_s=1.0)
    async with start(settings, infra) as notifier:
        await notifier.publish(("mail", bounced()), source=GATEWAY)
        await until(lambda: metric(notifier, "helpstream_notifier_bounced_addresses") == 1)
        await until(lambda: metric(notifier, "helpstream_notifier_bounced_addresses") == 0)
        await notifier.publish(("tickets", created("T-again")))
        caught = await mails(mail, 1)
    assert caught[0].rcpt_tos == ("li.wei@example.com",)
