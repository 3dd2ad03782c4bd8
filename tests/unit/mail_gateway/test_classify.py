"""Auto-replies, bounces and our own mail are told apart from mail a person wrote."""

from __future__ import annotations

import pytest

from services.mail_gateway.classify import Kind, classify
from services.mail_gateway.parsing import InboundMail, parse_mail
from tests.mail_gateway.samples import SAMPLES, Sample

OWN = ["support@helpstream.example", "notify@helpstream.example"]


def mail(headers: str, body: str = "hello") -> InboundMail:
    raw = headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body
    return parse_mail(raw.encode()).mail


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_sample_is_classified_as_expected(sample: Sample) -> None:
    verdict = classify(parse_mail(sample.raw).mail, own_addresses=OWN)
    assert verdict.kind == sample.meta["kind"]
    assert verdict.threadable == (sample.meta["kind"] == "ordinary")
    if "failed" in sample.meta:
        assert list(verdict.failed_recipients) == sample.meta["failed"]
    if "delayed" in sample.meta:
        assert list(verdict.delayed_recipients) == sample.meta["delayed"]
    if "original_message_id" in sample.meta:
        assert verdict.original_message_id == sample.meta["original_message_id"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-replied", "auto-submitted:auto-replied"),
        ("Auto-Submitted: auto-generated; owner-email=x@y.z", "auto-submitted:auto-generated"),
        ("Precedence: bulk", "precedence:bulk"),
        ("Precedence: junk", "precedence:junk"),
        ("Precedence: list", "precedence:list"),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autorespond: vacation", "x-autorespond"),
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("Subject: Out of Office: Re: ticket", "subject"),
        ("Subject: Automatic reply: [#482913]", "subject"),
        ("Subject: 自动回复：Re:[#482913] 提现未到账", "subject"),
        ("Subject: [自动回复] 休假中", "subject"),
    ],
)
def test_auto_replies_are_recognised(header: str, reason: str) -> None:
    verdict = classify(mail(f"From: a@example.com\n{header}"), own_addresses=OWN)
    assert (verdict.kind, verdict.reason) == (Kind.AUTO_REPLY, reason)


def test_auto_submitted_no_is_a_person_writing() -> None:
    verdict = classify(mail("From: a@example.com\nAuto-Submitted: no"), own_addresses=OWN)
    assert verdict.kind is Kind.ORDINARY


def test_a_subject_that_mentions_office_is_ordinary() -> None:
    verdict = classify(mail("From: a@example.com\nSubject: Re: office hours?"), own_addresses=OWN)
    assert verdict.kind is Kind.ORDINARY


def test_null_envelope_sender_from_a_daemon_is_a_bounce() -> None:
    parsed = mail("From: MAILER-DAEMON@mx.example.org\nSubject: failure notice")
    verdict = classify(parsed, own_addresses=OWN, envelope_sender="")
    assert verdict.kind is Kind.BOUNCE


def test_null_sender_without_other_signals_is_never_threaded() -> None:
    verdict = classify(mail("From: a@example.com\nReturn-Path: <>"), own_addresses=OWN)
    assert not verdict.threadable


def test_x_failed_recipients_names_the_failed_address() -> None:
    parsed = mail(
        "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
        "X-Failed-Recipients: Gone@Example.org\nSubject: Mail delivery failed"
    )
    verdict = classify(parsed, own_addresses=OWN)
    assert (verdict.kind, verdict.failed_recipients) == (Kind.BOUNCE, ("gone@example.org",))


@pytest.mark.parametrize(
    "sender", ["support@helpstream.example", "Support+abc.def@HelpStream.example"]
)
def test_mail_from_our_own_address_is_a_loop(sender: str) -> None:
    verdict = classify(mail(f"From: {sender}"), own_addresses=OWN)
    assert verdict.kind is Kind.OWN_MAIL


def test_our_x_loop_header_is_a_loop() -> None:
    parsed = mail("From: forwarder@example.com\nX-Loop: support@helpstream.example")
    assert classify(parsed, own_addresses=OWN).kind is Kind.OWN_MAIL


def test_envelope_sender_of_our_own_is_a_loop() -> None:
    parsed = mail("From: someone@example.com")
    verdict = classify(parsed, own_addresses=OWN, envelope_sender="notify@helpstream.example")
    assert verdict.kind is Kind.OWN_MAIL


def test_a_requester_is_ordinary() -> None:
    verdict = classify(mail("From: Li Wei <liwei@qq.com>\nSubject: 回复：提现"), own_addresses=OWN)
    assert (verdict.kind, verdict.threadable) == (Kind.ORDINARY, True)
