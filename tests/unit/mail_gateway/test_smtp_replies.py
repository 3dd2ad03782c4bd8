"""The reply a relay gets: 250 only once the attachments are stored and the command is
acknowledged; 451 while the broker or database is away, so the relay delivers again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka.errors import KafkaTimeoutError
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from prometheus_client import CollectorRegistry
from pymongo.errors import ServerSelectionTimeoutError

from services.mail_gateway.gateway import BounceReport, Kept, Receive, Rules
from services.mail_gateway.metrics import gateway_metrics
from services.mail_gateway.settings import MailGatewaySettings
from services.mail_gateway.smtp import GatewayHandler
from tests.support import secret_settings

SUPPORT = "support@helpstream.example"
MAIL = (
    b"From: Li Wei <li.wei@example.com>\r\nTo: support@helpstream.example\r\n"
    b"Subject: help\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee the screenshot\r\n"
    b'--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename="s.png"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"
)


@dataclass
class Recorder:
    """Fake store and publisher in one: what happened, in order; fails when told to."""

    calls: list[str] = field(default_factory=list)
    store_fails: BaseException | None = None
    publish_fails: BaseException | None = None
    publish_hangs: bool = False

    async def put(self, kept: Kept) -> bool:
        if self.store_fails is not None:
            raise self.store_fails
        self.calls.append(f"store {kept.filename}")
        return True

    async def command(self, receive: Receive) -> None:
        if self.publish_hangs:
            await asyncio.Event().wait()
        if self.publish_fails is not None:
            raise self.publish_fails
        self.calls.append(f"publish {receive.command.threaded_by}")

    async def bounces(self, reports: Any) -> None:
        self.calls.extend(f"bounce {r.event.address}" for r in cast(list[BounceReport], reports))


def mails(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value("helpstream_mail_gateway_mails_total", {"outcome": outcome})


def handler(recorder: Recorder, **overrides: Any) -> tuple[GatewayHandler, CollectorRegistry]:
    settings = MailGatewaySettings(
        **secret_settings(MailGatewaySettings),
        inbound_addresses=[SUPPORT],
        attachments_open=True,
        **overrides,
    )
    registry = CollectorRegistry()
    metrics = gateway_metrics(registry)
    return GatewayHandler(Rules.of(settings), settings, recorder, recorder, metrics), registry


async def deliver(gateway: GatewayHandler, raw: bytes = MAIL) -> str:
    envelope = SmtpEnvelope()
    envelope.mail_from = "li.wei@example.com"
    envelope.rcpt_tos = [SUPPORT]
    envelope.original_content = raw
    return await gateway.handle_DATA(cast(Any, None), cast(Any, None), envelope)


async def test_250_comes_after_the_attachment_is_stored_and_the_command_acknowledged() -> None:
    recorder = Recorder()
    gateway, registry = handler(recorder)

    reply = await deliver(gateway)

    assert reply.startswith("250 ")
    assert recorder.calls == ["store s.png", "publish none"]
    assert mails(registry, "new") == 1
    assert registry.get_sample_value("helpstream_mail_gateway_handling_seconds_count") == 1


async def test_a_database_outage_defers_the_mail_and_publishes_nothing() -> None:
    recorder = Recorder(store_fails=ServerSelectionTimeoutError("no primary"))
    gateway, registry = handler(recorder)

    assert (await deliver(gateway)).startswith("451 4.3.0")
    assert recorder.calls == []
    assert (
        registry.get_sample_value("helpstream_mail_gateway_mails_total", {"outcome": "new"}) is None
    )


async def test_a_broker_outage_defers_the_mail() -> None:
    recorder = Recorder(publish_fails=KafkaTimeoutError())
    gateway, _ = handler(recorder)

    assert (await deliver(gateway)).startswith("451 4.3.0")


async def test_a_broker_that_never_answers_defers_the_mail_at_the_handling_limit() -> None:
    recorder = Recorder(publish_hangs=True)
    gateway, _ = handler(recorder, handling_timeout_s=0.05)

    assert (await deliver(gateway)).startswith("451 4.3.0")


async def test_a_recipient_past_the_limit_or_outside_is_refused_as_it_comes() -> None:
    gateway, registry = handler(Recorder(), max_recipients=1)
    envelope = SmtpEnvelope()

    first = await gateway.handle_RCPT(cast(Any, None), cast(Any, None), envelope, SUPPORT, [])
    second = await gateway.handle_RCPT(cast(Any, None), cast(Any, None), envelope, SUPPORT, [])
    assert (first[:3], second[:9]) == ("250", "452 4.5.3")
    assert envelope.rcpt_tos == [SUPPORT]
    outside = await gateway.handle_RCPT(
        cast(Any, None), cast(Any, None), SmtpEnvelope(), "x@gmail.com", []
    )
    assert outside.startswith("550 5.7.1")
    assert (
        registry.get_sample_value("helpstream_mail_gateway_mails_total", {"outcome": "refused"})
        == 2
    )
