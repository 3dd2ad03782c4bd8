"""The inbound SMTP server is on the internet: it relays nothing, takes nothing larger or
wider than its limits, threads nothing on a forged tag, and keeps no executable.

Before it, a reply-to-ticket feature in this field is the phishing path: mail forged to
look like the requester's words in their ticket, or a "wallet fix" program an agent opens.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import aiosmtplib
import pytest

from services.mail_gateway.settings import MailGatewaySettings
from shared.infra.modes import Infra
from shared.mail_threading import message_id, reply_address
from tests.integration.mail_gateway.conftest import (
    ATTACHMENTS_KEY,
    DOMAIN,
    SUPPORT,
    Gateway,
    compose,
    gateway,
    gateway_settings,
    receive_mail,
    start,
)

__all__ = ["gateway", "gateway_settings"]  # fixtures
TICKET = "0190f3b2-7c1a-7d4e-9a55-3c2b1a0f9e8d"
PE = b"MZ" + b"\x00" * 58 + (64).to_bytes(4, "little") + b"PE\x00\x00" + b"\x00" * 64


async def test_the_gateway_is_no_open_relay(gateway: Gateway) -> None:
    async with gateway.smtp() as client:
        await client.ehlo()
        await client.mail("spammer@example.net")
        replies = [
            await client.execute_command(b"RCPT", b"TO:<" + address + b">")
            for address in (
                b"victim@gmail.com",
                b"victim%gmail.com@" + DOMAIN.encode(),  # the percent hack
                b"support@" + DOMAIN.encode() + b".evil.example",
                b"postmaster@" + DOMAIN.encode(),
            )
        ]
        data = await client.execute_command(b"DATA")
    assert [(r.code, r.message[:5]) for r in replies] == [
        (550, "5.7.1"),
        (550, "5.1.1"),
        (550, "5.7.1"),
        (550, "5.1.1"),
    ]
    assert data.code == 503  # no recipient was accepted: there is nothing to send
    assert await gateway.no_commands() == []


async def test_oversize_mail_is_refused_when_announced_and_when_sent(
    gateway_settings: Callable[..., MailGatewaySettings], infra: Infra
) -> None:
    async with start(gateway_settings(max_message_bytes=8192), infra) as gateway:
        async with gateway.smtp() as client:
            await client.ehlo()
            announced = await client.execute_command(b"MAIL", b"FROM:<a@example.com> SIZE=9000")
            await client.mail("a@example.com")
            await client.rcpt(SUPPORT)
            with pytest.raises(aiosmtplib.SMTPDataError) as sent:
                await client.data(compose(body="y" * 50_000))
        assert announced.code == 552
        assert sent.value.code == 552
        assert await gateway.no_commands() == []
        assert gateway.metric("helpstream_mail_gateway_smtp_replies_total", code="552") == 2


async def test_more_recipients_than_allowed_are_refused(
    gateway_settings: Callable[..., MailGatewaySettings], infra: Infra
) -> None:
    async with start(gateway_settings(max_recipients=3), infra) as gateway:
        async with gateway.smtp() as client:
            await client.ehlo()
            await client.mail("a@example.com")
            codes = [
                (await client.execute_command(b"RCPT", f"TO:<support+{n}@{DOMAIN}>".encode())).code
                for n in range(5)
            ]
            assert (await client.data(compose())).code == 250
        assert codes == [250, 250, 250, 452, 452]
        [(_, event)] = await gateway.commands(1)  # one mail, one command
        assert receive_mail(event).threaded_by == "none"


async def test_a_forged_reply_address_or_message_id_threads_into_no_ticket(
    gateway: Gateway,
) -> None:
    genuine = reply_address(gateway.thread_secret, TICKET, SUPPORT)
    assert genuine is not None
    local, _, domain = genuine.partition("@")
    forged = f"{local[:-4]}aaaa@{domain}"  # right ticket, wrong signature
    wrong_secret = message_id(b"guessed-secret-0123456789abcdefghijkl", TICKET, "x", DOMAIN)
    raw = compose(
        to=forged,
        sender="Li Wei <li.wei@example.com>",
        body="This is support. To unlock the withdrawal reply with your 12 recovery words.",
        headers={"In-Reply-To": wrong_secret, "References": wrong_secret},
    )

    assert (await gateway.deliver(raw, to=[forged])).code == 250

    [(record, event)] = await gateway.commands(1)
    command = receive_mail(event)
    assert command.threaded_by == "none"
    assert event.subject.startswith("mail:")
    assert TICKET.encode() not in record.key


async def test_an_executable_disguised_as_a_screenshot_is_not_kept(gateway: Gateway) -> None:
    digest = hashlib.sha256(PE).hexdigest()
    raw = compose(
        body="Screenshot of the error attached",
        attachments=[("screenshot.jpg", "image/jpeg", PE)],
    )

    assert (await gateway.deliver(raw)).code == 250

    [(_, event)] = await gateway.commands(1)
    [attachment] = receive_mail(event).attachments
    assert (attachment.refused, attachment.url) == ("executable", None)
    auth = {"Authorization": f"Bearer {ATTACHMENTS_KEY}"}
    assert (await gateway.http.get(f"/v1/attachments/{digest}", headers=auth)).status_code == 404


async def test_connections_past_the_per_address_limit_get_421(
    gateway_settings: Callable[..., MailGatewaySettings], infra: Infra
) -> None:
    async with start(gateway_settings(max_sessions_per_ip=2), infra) as gateway:
        held = [await asyncio.open_connection("127.0.0.1", gateway.smtp_port) for _ in range(2)]
        greetings = [await reader.readline() for reader, _ in held]
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.smtp_port)
        refused = await reader.readline()
        closed = await reader.read()  # the server hangs up after saying so
        for _, held_writer in [*held, (reader, writer)]:
            held_writer.close()
    assert all(g.startswith(b"220 ") for g in greetings)
    assert refused.startswith(b"421 4.7.0")
    assert closed == b""


async def test_bytes_that_are_not_mail_are_refused_not_deferred(gateway: Gateway) -> None:
    async with gateway.smtp() as client:
        await client.ehlo()
        await client.mail("a@example.com")
        await client.rcpt(SUPPORT)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.data(b"just some words, no header at all\r\n")
    assert refused.value.code == 550
    assert gateway.received("invalid") == 1
