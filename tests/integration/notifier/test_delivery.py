"""Retries then DLQ, SMTP fallback, nothing sent twice on redelivery, digests coalesce."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.notifier.settings import NotifierSettings
from shared.events import Status
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from shared.infra.processes import free_port
from shared.topics import Topics
from tests.integration.notifier.builders import created, reply, status
from tests.integration.notifier.conftest import (
    Notifier,
    Receiver,
    mails,
    settle_mail,
    start,
    until,
)
from tests.support import Tap


def sent_total(notifier: Notifier, channel: str) -> float:
    total = 0.0
    for metric in notifier.runtime.registry.collect():
        for sample in metric.samples:
            if (
                sample.name == "helpstream_notifier_messages_sent_total"
                and sample.labels["channel"] == channel
            ):
                total += sample.value
    return total


async def test_a_webhook_answering_500_is_retried_with_backoff_until_it_accepts(
    notifier: Notifier, receiver: Receiver, mail: MailCatcher
) -> None:
    receiver.fail_first = 2
    await notifier.publish(("tickets", created("T-retry")))
    await until(lambda: len(receiver.to("/push")) == 3)
    keys = {c.headers["idempotency-key"] for c in receiver.to("/push")}
    assert len(keys) == 1  # the same message three times, recognisable as one
    await until(lambda: sent_total(notifier, "webhook") == 1)
    assert (
        notifier.runtime.registry.get_sample_value(
            "helpstream_notifier_delivery_retries_total", {"channel": "webhook"}
        )
        == 2
    )


@pytest.mark.parametrize("mode", ["fail", "hang"])
async def test_a_webhook_that_keeps_failing_or_timing_out_sends_the_event_to_the_dlq(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    receiver: Receiver,
    mail: MailCatcher,
    mode: str,
) -> None:
    """Sent by the consumer (an acknowledgement that does not wait for its promised time):
    a message held first and failing later is recorded failed, like a digest."""
    receiver.mode = mode
    async with start(notifier_settings(ack_sla_wait_s=0), infra) as notifier:
        topics = notifier.runtime.topics
        bootstrap = notifier.infra.kafka_bootstrap
        async with (
            Tap(bootstrap, Topics.dlq(topics.tickets)) as dlq,
            Tap(bootstrap, topics.notifications) as outcomes,
        ):
            await notifier.publish(("tickets", created("T-dlq")))
            dead = await dlq.collect(1)
            await outcomes.collect(3)
    assert len(receiver.to("/push")) == notifier.settings.webhook_max_attempts
    assert dict(dead[0].headers)["error-type"] == b"webhook_failed"
    kinds = {(e.type, e.data.channel) for e in outcomes.events()}  # type: ignore[attr-defined]
    assert ("helpstream.notification.failed", "webhook") in kinds
    assert ("helpstream.notification.delivered", "email") in kinds
    assert len(await mails(mail, 1)) == 1  # the other channels were not held back


async def test_redelivered_events_send_nothing_twice(
    notifier: Notifier, receiver: Receiver, mail: MailCatcher
) -> None:
    """As after a crash between sending and committing: the same records come again."""
    topics = notifier.runtime.topics
    async with Tap(notifier.infra.kafka_bootstrap, topics.tickets) as tap:
        await notifier.publish(
            ("tickets", created("T-once")), ("tickets", reply("T-once", "Checking."))
        )
        records = await tap.collect(2)
    await mails(mail, 2)
    await until(lambda: len(receiver.to("/push")) == 2)
    handler = notifier.app.state.notifications
    assert await handler.on_events(records) == []
    assert await handler.on_events(records) == []
    assert len(await settle_mail(mail, quiet=1.0)) == 2
    assert len(receiver.to("/push")) == 2
    inbox = await notifier.http.get("/v1/inbox", headers=notifier.token("u-42"))
    assert len(inbox.json()["items"]) == 2


async def test_a_restarted_notifier_reading_the_same_events_again_sends_nothing_new(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    receiver: Receiver,
    mail: MailCatcher,
) -> None:
    settings = notifier_settings()
    async with start(settings, infra) as first:
        await first.publish(("tickets", created("T-restart")))
        await mails(mail, 1)
        await until(lambda: len(receiver.to("/push")) == 1)
        async with Tap(infra.kafka_bootstrap, first.runtime.topics.tickets) as tap:
            records = await tap.collect(1)
    async with start(settings, infra) as second:
        await second.app.state.notifications.on_events(records)
        await second.publish(("tickets", reply("T-restart", "Hello again.")))
        caught = await mails(mail, 2)
    assert [m.subject.split("]")[0] for m in caught] == ["[T-restart", "[T-restart"]
    assert len(await settle_mail(mail, quiet=1.0)) == 2


class _Refuse:
    def __init__(self, code: str) -> None:
        self.code = code

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return self.code


@pytest.fixture(params=["421 Try again later", "550 Relaying denied", "closed"])
def refusing_primary(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    if request.param == "closed":
        yield port
        return
    controller = Controller(_Refuse(request.param), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


async def test_the_fallback_relay_takes_the_mail_when_the_primary_refuses_or_is_down(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    refusing_primary: int,
    mail: MailCatcher,
) -> None:
    settings = notifier_settings(
        smtp_port=refusing_primary, smtp_fallback_host="127.0.0.1", smtp_fallback_port=mail.port
    )
    async with start(settings, infra) as notifier:
        await notifier.publish(("tickets", created("T-fallback")))
        caught = await mails(mail, 1)
        await until(lambda: sent_total(notifier, "email") == 1)
        fallbacks = notifier.runtime.registry.get_sample_value(
            "helpstream_notifier_smtp_fallbacks_total"
        )
    assert [m.rcpt_tos for m in caught] == [("li.wei@example.com",)]
    assert fallbacks == 1


async def test_several_updates_within_the_window_go_out_as_one_message(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    receiver: Receiver,
    mail: MailCatcher,
) -> None:
    settings = notifier_settings(digest_window_s=1.5)
    async with start(settings, infra) as notifier:
        await notifier.publish(("tickets", created("T-digest", locale="en", timezone="UTC")))
        await mails(mail, 1)
        await notifier.publish(
            ("tickets", reply("T-digest", "First we looked.")),
            ("tickets", status("T-digest", Status.pending)),
            ("tickets", reply("T-digest", "Then we found it.")),
        )
        caught = await mails(mail, 2)
        await until(lambda: len(receiver.to("/push")) == 2)
        await asyncio.sleep(0.5)
        inbox = await notifier.http.get("/v1/inbox", headers=notifier.token("u-42"))
        assert len(await settle_mail(mail, quiet=2.0)) == 2
    digest = caught[1]
    assert digest.subject == "[T-digest] 3 updates on your request"
    text = digest.text()
    assert text.index("First we looked.") < text.index("Then we found it.")
    assert "We need your input" in text
    assert receiver.to("/push")[1].json()["template"] == "digest"
    assert len(inbox.json()["items"]) == 4  # the inbox lists every update
