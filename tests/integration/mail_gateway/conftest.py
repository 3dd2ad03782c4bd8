"""A running mail gateway (in this event loop) on the real broker and MongoDB, spoken to
over a real SMTP conversation (aiosmtplib) and HTTP; what it publishes is read back from
the topics, decoded and signature-checked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import aiosmtplib
import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from aiosmtplib import SMTPResponse

from services.mail_gateway.app import create_app
from services.mail_gateway.settings import MailGatewaySettings
from shared.command_signing import check, read_headers, signing_key
from shared.commands import ReceiveMail, parse_command
from shared.events import CloudEvent, MailBounced, parse_event
from shared.infra.modes import Infra
from shared.runtime import ServiceRuntime
from tests.support import Tap, create_topic, running

DOMAIN = "helpstream.example"
SUPPORT = f"support@{DOMAIN}"
NOTIFY = f"notify@{DOMAIN}"
ATTACHMENTS_KEY = "attachments-key-0123456789abcdefghijklmnopqrstuvwxyz"
SOURCE = "/helpstream/mail_gateway"


def compose(
    *,
    to: str = SUPPORT,
    sender: str = "Li Wei <li.wei@example.com>",
    subject: str = "Re: [#100042] withdrawal pending",
    body: str = "Any news on my withdrawal?",
    headers: dict[str, str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A mail as a client writes it; attachments are (file name, content type, bytes)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for name, ctype, data in attachments:
        maintype, subtype = ctype.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    # Message-IDs are not folded (clients keep them on one line; the stdlib would encode them)
    return message.as_bytes(policy=SMTP_POLICY.clone(max_line_length=998))


@dataclass
class Gateway:
    app: Any
    http: httpx.AsyncClient
    runtime: ServiceRuntime
    settings: MailGatewaySettings
    infra: Infra

    @property
    def smtp_port(self) -> int:
        return int(self.app.state.smtp_port)

    @property
    def thread_secret(self) -> bytes:
        return self.settings.mail_thread_secret.get_secret_value().encode()

    @contextlib.asynccontextmanager
    async def smtp(self) -> AsyncIterator[aiosmtplib.SMTP]:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=self.smtp_port, timeout=30, start_tls=False
        )
        await client.connect()
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                await client.quit()

    async def deliver(
        self, raw: bytes, *, to: Sequence[str] = (SUPPORT,), mail_from: str = "li.wei@example.com"
    ) -> SMTPResponse:
        """One SMTP transaction, as a relay makes it; the reply to the end of DATA."""
        async with self.smtp() as client:
            await client.ehlo()
            if mail_from == "<>":  # the null sender of bounces (aiosmtplib will not write it)
                assert (await client.execute_command(b"MAIL", b"FROM:<>")).code == 250
            else:
                await client.mail(mail_from)
            for address in to:
                await client.rcpt(address)
            return await client.data(raw)

    async def commands(self, count: int) -> list[tuple[ConsumerRecord[bytes, bytes], Any]]:
        """The first `count` records on the commands topic, each checked to be signed by the
        gateway's key, with the decoded command."""
        async with Tap(
            self.infra.kafka_bootstrap, self.runtime.topics.commands, self.settings
        ) as tap:
            await tap.collect(count)
        key = signing_key(self.settings.mail_gateway_api_key.get_secret_value())
        decoded = []
        # the signature covers the bytes as sent (personal fields sealed); the command is
        # read as intake reads it, opened
        for sent, record in zip(tap.raw, tap.records, strict=True):
            check(read_headers(sent.headers), key, sent.value, datetime.now(UTC))
            decoded.append((record, parse_command(record.value)))
        return decoded

    async def no_commands(self) -> list[Any]:
        async with Tap(self.infra.kafka_bootstrap, self.runtime.topics.commands) as tap:
            return await tap.settle(quiet=1.5)

    async def bounces(self, count: int) -> list[CloudEvent[MailBounced]]:
        async with Tap(self.infra.kafka_bootstrap, self.runtime.topics.mail, self.settings) as tap:
            records = await tap.collect(count)
        return [parse_event(r.value) for r in records]  # type: ignore[misc]

    def metric(self, name: str, **labels: str) -> float:
        return self.runtime.registry.get_sample_value(name, labels) or 0.0

    def received(self, outcome: str) -> float:
        return self.metric("helpstream_mail_gateway_mails_total", outcome=outcome)


def receive_mail(event: CloudEvent[Any]) -> ReceiveMail:
    assert event.type == "helpstream.ticket.receive_mail"
    assert isinstance(event.data, ReceiveMail)
    return event.data


@pytest.fixture
def gateway_settings(make_settings: Callable[..., Any]) -> Callable[..., MailGatewaySettings]:
    def make(**overrides: Any) -> MailGatewaySettings:
        values: dict[str, Any] = {
            "inbound_smtp_port": 0,
            "inbound_addresses": [SUPPORT],
            "own_addresses": [NOTIFY],
            "public_url": "http://gateway.test",
            "attachments_api_key": ATTACHMENTS_KEY,
            **overrides,
        }
        settings: MailGatewaySettings = make_settings(MailGatewaySettings, **values)
        return settings

    return make


@contextlib.asynccontextmanager
async def start(settings: MailGatewaySettings, infra: Infra) -> AsyncIterator[Gateway]:
    names = (
        "helpstream.commands",
        "helpstream.mail",
        "helpstream.tickets",
        "helpstream.tickets.dlq",
    )
    topics = [settings.topic_prefix + t for t in names]
    for topic in topics:  # a tap subscribed to a topic that does not exist yet may miss it
        with contextlib.suppress(Exception):
            await create_topic(infra.kafka_bootstrap, topic, 4)
    runtime = ServiceRuntime("mail_gateway", settings)
    app = create_app(settings, runtime)
    async with running(app) as http:
        yield Gateway(app, http, runtime, settings, infra)


@pytest.fixture
async def gateway(
    gateway_settings: Callable[..., MailGatewaySettings], infra: Infra
) -> AsyncIterator[Gateway]:
    async with start(gateway_settings(), infra) as gw:
        yield gw
