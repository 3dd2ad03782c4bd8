"""Every mail about a ticket joins one conversation, and a reply names its ticket."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import ValidationError

from services.notifier.mail import Email, prepare
from services.notifier.settings import NotifierSettings
from services.notifier.threads import ThreadHeaders
from shared.mail_threading import ticket_of_address, ticket_of_message_id, ticket_of_references
from tests.support import secret_settings

TICKET = "3f1c2b7e-0d7a-4f7e-9f59-2a1f0c9d4e11"
THREAD_SECRET = "mail-thread-test-0123456789abcdefghijklmnopq"


def settings(**overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {**secret_settings(NotifierSettings), **overrides}
    return NotifierSettings(**values)


def sent(headers: tuple[tuple[str, str], ...], key: str = "k-1") -> EmailMessage:
    out = prepare(
        Email(key, TICKET, "li.wei@example.com", "s", "text", "<p>html</p>", headers),
        "helpstream <support@helpstream.local>",
    )
    message = email.message_from_bytes(out.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_acknowledgement_is_the_thread_root_and_later_mail_answers_it() -> None:
    threads = ThreadHeaders.of(
        settings(inbound_mail_address="support@help.example", mail_thread_secret=THREAD_SECRET)
    )
    ack = sent(threads.headers(TICKET, "k-ack", is_root=True, to_requester=True), "k-ack")
    reply = sent(threads.headers(TICKET, "k-2", is_root=False, to_requester=True), "k-2")
    assert ack["In-Reply-To"] is None
    assert reply["In-Reply-To"] == reply["References"] == ack["Message-ID"]
    assert reply["Message-ID"] != ack["Message-ID"]
    assert ack["Message-ID"].endswith("@help.example>")
    key = THREAD_SECRET.encode()
    assert ticket_of_message_id(key, reply["Message-ID"]) == TICKET
    assert ticket_of_references(key, reply["In-Reply-To"], reply["References"]) == TICKET


def test_a_resend_of_the_same_delivery_keeps_its_message_id() -> None:
    threads = ThreadHeaders.of(settings())
    first = threads.headers(TICKET, "k-7", is_root=False, to_requester=True)
    again = threads.headers(TICKET, "k-7", is_root=False, to_requester=True)
    other = threads.headers(TICKET, "k-8", is_root=False, to_requester=True)
    assert first == again
    assert dict(first)["Message-ID"] != dict(other)["Message-ID"]


def test_with_inbound_mail_a_requester_replies_to_the_tickets_signed_address() -> None:
    threads = ThreadHeaders.of(
        settings(inbound_mail_address="support@help.example", mail_thread_secret=THREAD_SECRET)
    )
    requester = sent(threads.headers(TICKET, "k-1", is_root=False, to_requester=True))
    agent = sent(threads.headers(TICKET, "k-2", is_root=False, to_requester=False))
    reply_to = requester["Reply-To"]
    assert reply_to.startswith("support+")
    assert reply_to.endswith("@help.example")
    assert ticket_of_address(THREAD_SECRET.encode(), reply_to) == TICKET
    assert agent["Reply-To"] is None  # an agent's answer to an alert is not the requester's


def test_without_inbound_mail_no_mail_asks_for_a_reply_to_a_mailbox_nobody_reads() -> None:
    threads = ThreadHeaders.of(settings(inbound_mail_address=None))
    message = sent(threads.headers(TICKET, "k-1", is_root=False, to_requester=True))
    assert message["Reply-To"] is None
    assert message["Message-ID"].endswith("@helpstream.local>")  # still threads in clients
    assert message["In-Reply-To"] == threads.root(TICKET)


def test_inbound_mail_without_the_thread_secret_refuses_to_start() -> None:
    values = {**secret_settings(NotifierSettings), "inbound_mail_address": "support@x.example"}
    values.pop("mail_thread_secret", None)
    with pytest.raises(ValidationError, match="HELPSTREAM_MAIL_THREAD_SECRET is required"):
        NotifierSettings(**values)


@pytest.mark.parametrize("address", ["support", "support+x@x.example", "@x.example"])
def test_the_inbound_address_must_be_a_plain_mailbox(address: str) -> None:
    with pytest.raises(ValidationError, match="plain mailbox"):
        settings(inbound_mail_address=address, mail_thread_secret=THREAD_SECRET)


def test_an_empty_inbound_address_means_no_inbound_mail() -> None:
    assert settings(inbound_mail_address="").inbound_mail_address is None


@pytest.mark.parametrize("to", ["li.wei@example.com", "李伟@例子.cn"])
def test_threading_headers_stay_on_one_line_as_written_for_any_recipient(to: str) -> None:
    """A folded or encoded In-Reply-To is one no mail client threads by."""
    threads = ThreadHeaders.of(
        settings(inbound_mail_address="support@help.example", mail_thread_secret=THREAD_SECRET)
    )
    headers = threads.headers(TICKET, "k-1", is_root=False, to_requester=True)
    out = prepare(Email("k-1", TICKET, to, "s", "text", "", headers), "support@help.example")
    lines = out.data.decode().split("\r\n")
    for name, value in headers:
        assert f"{name}: {value}" in lines
