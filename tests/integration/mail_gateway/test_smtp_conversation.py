"""Mail delivered over a real SMTP conversation becomes signed commands and bounce reports
on the real broker; attachments land in GridFS and are served over HTTP with a key."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiosmtplib
import pytest

from services.mail_gateway.settings import MailGatewaySettings
from shared.infra.modes import Infra
from shared.mail_threading import message_id, reply_address
from tests.integration.mail_gateway.conftest import (
    ATTACHMENTS_KEY,
    DOMAIN,
    SOURCE,
    SUPPORT,
    Gateway,
    compose,
    receive_mail,
    start,
)
from tests.mail_gateway.samples import SAMPLES, loosely_equal

TICKET = "0190f3b2-7c1a-7d4e-9a55-3c2b1a0f9e8d"
ORDINARY = [s for s in SAMPLES if s.meta["kind"] == "ordinary" and s.expected is not None]
SAMPLE = {s.name: s for s in SAMPLES}


async def test_a_reply_to_the_signed_reply_address_is_a_signed_command_for_its_ticket(
    gateway: Gateway,
) -> None:
    tagged = reply_address(gateway.thread_secret, TICKET, SUPPORT)
    assert tagged is not None
    raw = compose(to=tagged, body="The hash is 0xabc.\n\nOn Sun, support wrote:\n> Send the hash")

    reply = await gateway.deliver(raw, to=[tagged])

    assert reply.code == 250
    [(record, event)] = await gateway.commands(1)  # signature checked against the key
    command = receive_mail(event)
    assert (event.subject, record.key) == (TICKET, TICKET.encode())
    assert event.source == SOURCE
    assert command.threaded_by == "reply_address"
    assert command.sender == "li.wei@example.com"
    assert command.sender_name == "Li Wei"
    assert command.body == "The hash is 0xabc."
    assert command.locale == "en"
    assert gateway.received("threaded") == 1


async def test_a_reply_naming_our_message_id_in_in_reply_to_threads_into_its_ticket(
    gateway: Gateway,
) -> None:
    ours = message_id(gateway.thread_secret, TICKET, "delivery-1", DOMAIN)
    raw = compose(
        body="提现还没有到账，请帮忙看一下。",
        subject="回复：[#100042] 提现未到账",
        headers={"In-Reply-To": ours, "References": f"<other@gmail.com> {ours}"},
    )

    assert (await gateway.deliver(raw)).code == 250

    [(_, event)] = await gateway.commands(1)
    command = receive_mail(event)
    assert event.subject == TICKET
    assert command.threaded_by == "message_id"
    assert command.locale == "zh-CN"


async def test_mail_that_threads_nowhere_is_a_new_mail_command_keyed_by_its_sender(
    gateway: Gateway,
) -> None:
    raw = compose(sender="Zhang <Zhang.San@Example.COM>", subject="Deposit missing", body="Hi")

    assert (await gateway.deliver(raw)).code == 250

    [(_, event)] = await gateway.commands(1)
    command = receive_mail(event)
    digest = hashlib.sha256(b"Zhang.San@example.com").hexdigest()[:32]
    assert event.subject == f"mail:{digest}"
    assert command.threaded_by == "none"
    assert command.subject == "Deposit missing"
    assert gateway.received("new") == 1


async def test_a_relays_second_delivery_is_the_same_command(gateway: Gateway) -> None:
    raw = compose(headers={"Message-ID": "<dup-1@mail.example.com>"})

    assert (await gateway.deliver(raw)).code == 250
    assert (await gateway.deliver(raw)).code == 250

    first, second = await gateway.commands(2)
    assert first[1].id == second[1].id
    assert first[1].data == second[1].data


async def test_auto_replies_bounces_and_our_own_mail_are_never_threaded(
    gateway: Gateway,
) -> None:
    for name, mail_from in [
        ("auto_reply_gmail_vacation_en", "alice.walker@gmail.com"),
        ("auto_reply_qq_zh", "1234567890@qq.com"),
        ("own_mail_loop", SUPPORT),
        ("bounce_postfix", "<>"),
    ]:
        reply = await gateway.deliver(SAMPLE[name].raw, mail_from=mail_from)
        assert reply.code == 250, name

    [bounce] = await gateway.bounces(1)
    assert bounce.source == SOURCE
    assert bounce.type == "helpstream.mail.bounced"
    assert bounce.data.address == "old.address@example.org"
    assert bounce.data.reason == "hard"
    assert "5.1.1" in bounce.data.diagnostic
    assert await gateway.no_commands() == []
    assert gateway.received("auto_reply") == 2
    assert gateway.received("own") == 1
    assert gateway.received("bounce") == 1
    assert gateway.metric("helpstream_mail_gateway_bounces_reported_total", reason="hard") == 1


async def test_an_attachment_is_stored_and_served_with_the_key_and_a_401_problem_without(
    gateway: Gateway,
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    digest = hashlib.sha256(png).hexdigest()
    raw = compose(body="", attachments=[("提现截图.png", "image/png", png)])

    assert (await gateway.deliver(raw)).code == 250

    [(_, event)] = await gateway.commands(1)
    command = receive_mail(event)
    [attachment] = command.attachments
    assert attachment.name == "提现截图.png"
    assert (attachment.sha256, attachment.size, attachment.refused) == (digest, len(png), None)
    assert attachment.url == f"http://gateway.test/v1/attachments/{digest}"
    assert command.body == "(no text; see attachments)"
    auth = {"Authorization": f"Bearer {ATTACHMENTS_KEY}"}
    served = await gateway.http.get(f"/v1/attachments/{digest}", headers=auth)
    assert served.status_code == 200
    assert served.content == png
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["x-attachment-content-type"] == "image/png"
    refused = await gateway.http.get(f"/v1/attachments/{digest}")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    wrong = await gateway.http.get(f"/v1/attachments/{digest}", headers={"Authorization": "x"})
    assert wrong.status_code == 401
    unknown = await gateway.http.get(f"/v1/attachments/{'0' * 64}", headers=auth)
    assert unknown.status_code == 404
    assert gateway.metric("helpstream_mail_gateway_attachments_total", outcome="kept") == 1


async def test_an_executable_attachment_is_recorded_but_its_content_is_not_kept(
    gateway: Gateway,
) -> None:
    program = b"MZ\x90\x00" + b"\x00" * 56 + (64).to_bytes(4, "little") + b"PE\x00\x00" + b"x" * 64
    digest = hashlib.sha256(program).hexdigest()
    raw = compose(
        body="Please run this tool to fix my wallet",
        attachments=[("wallet-fix.exe", "application/octet-stream", program)],
    )

    assert (await gateway.deliver(raw)).code == 250

    [(_, event)] = await gateway.commands(1)
    [attachment] = receive_mail(event).attachments
    assert (attachment.refused, attachment.url, attachment.sha256) == ("executable", None, digest)
    auth = {"Authorization": f"Bearer {ATTACHMENTS_KEY}"}
    assert (await gateway.http.get(f"/v1/attachments/{digest}", headers=auth)).status_code == 404
    assert gateway.metric("helpstream_mail_gateway_attachments_total", outcome="executable") == 1


async def test_every_client_and_charset_in_the_corpus_is_decoded_to_the_new_text(
    gateway: Gateway,
) -> None:
    async with gateway.smtp() as client:  # one relay session, one transaction per mail
        await client.ehlo()
        for sample in ORDINARY:
            await client.mail("relay@mx.example.net")
            await client.rcpt(SUPPORT)
            assert (await client.data(sample.raw)).code == 250, sample.name

    commands = await gateway.commands(len(ORDINARY))
    assert len(commands) == len(ORDINARY)
    by_message_id = {receive_mail(e).message_id: receive_mail(e) for _, e in commands}
    wrong = []
    for sample in ORDINARY:
        parsed_id = next((mid for mid in by_message_id if mid and mid.encode() in sample.raw), None)
        command = by_message_id[parsed_id]
        assert sample.expected is not None
        if not loosely_equal(command.body, sample.expected):
            wrong.append(sample.name)
        if "subject" in sample.meta:
            assert command.subject == sample.meta["subject"], sample.name
        if sample.meta["lang"] in ("zh-CN", "zh-TW"):
            assert command.locale == "zh-CN", sample.name
        if sample.meta["lang"] == "en":
            assert command.locale == "en", sample.name
        assert "\ufffd" not in command.body, sample.name
    assert wrong == []


async def test_mail_for_another_domain_is_refused_and_the_server_is_no_relay(
    gateway: Gateway,
) -> None:
    async with gateway.smtp() as client:
        await client.ehlo()
        await client.mail("spammer@example.net")
        outside = await client.execute_command(b"RCPT", b"TO:<victim@gmail.com>")
        unknown = await client.execute_command(b"RCPT", b"TO:<ceo@" + DOMAIN.encode() + b">")
    assert (outside.code, outside.message[:5]) == (550, "5.7.1")
    assert (unknown.code, unknown.message[:5]) == (550, "5.1.1")
    assert gateway.received("refused") == 2
    assert gateway.metric("helpstream_mail_gateway_smtp_replies_total", code="550") == 2


async def test_mail_over_the_size_limit_is_refused_with_552_and_size_is_advertised(
    gateway_settings: Callable[..., MailGatewaySettings], infra: Infra
) -> None:
    async with start(gateway_settings(max_message_bytes=4096), infra) as gateway:
        async with gateway.smtp() as client:
            hello = await client.ehlo()
            assert "SIZE 4096" in hello.message
            await client.mail("li.wei@example.com")
            await client.rcpt(SUPPORT)
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await client.data(compose(body="x" * 10_000))
        assert refused.value.code == 552
        assert await gateway.no_commands() == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_starttls_is_offered_with_a_certificate_and_can_be_required(
    gateway_settings: Callable[..., MailGatewaySettings],
    infra: Infra,
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    settings = gateway_settings(tls_cert_file=cert, tls_key_file=key, smtp_require_tls=True)
    async with start(settings, infra) as gateway:
        async with gateway.smtp() as client:
            await client.ehlo()
            assert client.supports_extension("starttls")
            early = await client.execute_command(b"MAIL", b"FROM:<li.wei@example.com>")
            await client.starttls(validate_certs=False)
            await client.ehlo()
            await client.mail("li.wei@example.com")
            await client.rcpt(SUPPORT)
            assert (await client.data(compose())).code == 250
        assert early.code == 530
        assert len(await gateway.commands(1)) == 1
