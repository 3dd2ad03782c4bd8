"""What a received mail becomes, decided without I/O: a command, bounce reports, nothing,
or a refusal; which ticket it names and on what proof."""

from __future__ import annotations

import base64
import hashlib

import pytest
from mnemonic import Mnemonic

from services.mail_gateway.gateway import (
    NO_TEXT,
    ONLY_ATTACHMENTS,
    Bounce,
    Drop,
    Envelope,
    Receive,
    Refuse,
    Rules,
    check_recipient,
    decide,
    locale_of,
)
from shared.mail_threading import message_id, reply_address
from tests.mail_gateway.samples import SAMPLES

SECRET = b"thread-secret-0123456789abcdefghijklmnop"
SUPPORT = "support@helpstream.example"
TICKET = "0190f3b2-7c1a-7d4e-9a55-3c2b1a0f9e8d"
OTHER_TICKET = "0190f3b2-0000-7d4e-9a55-3c2b1a0f9e8d"
RULES = Rules(
    thread_secret=SECRET,
    own_addresses=(SUPPORT, "notify@helpstream.example"),
    public_url="https://gw.example",
    attachment_max_bytes=1000,
    executable_extensions=(".exe", ".scr", ".js", ".apk"),
    executable_types=frozenset({"application/x-msdownload"}),
    max_message_bytes=1 << 20,
)
RELAY = Envelope("li.wei@example.com", (SUPPORT,))
SAMPLE = {s.name: s.raw for s in SAMPLES}
PE = b"MZ" + b"\x00" * 58 + (64).to_bytes(4, "little") + b"PE\x00\x00" + b"\x00" * 32


def raw_mail(
    headers: dict[str, str] | None = None,
    body: str = "Any news on my withdrawal?",
    parts: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    fields = {"From": "Li Wei <li.wei@example.com>", "To": SUPPORT, "Subject": "Re: help"}
    fields.update(headers or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v)
    if not parts:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
    out = head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    out += f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    for name, ctype, data in parts:
        out += (
            f'--b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename="{name}"'
            f"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        )
        out += base64.b64encode(data).decode() + "\r\n"
    return (out + "--b--\r\n").encode()


def received(raw: bytes, envelope: Envelope = RELAY) -> Receive:
    decision = decide(raw, envelope, RULES)
    assert isinstance(decision, Receive), decision
    return decision


# -- threading


def test_a_signed_reply_address_names_its_ticket() -> None:
    tagged = reply_address(SECRET, TICKET, SUPPORT)
    assert tagged is not None
    decision = received(raw_mail({"To": tagged}), Envelope("li.wei@example.com", (tagged,)))
    assert (decision.subject, decision.command.threaded_by) == (TICKET, "reply_address")
    assert decision.outcome == "threaded"


def test_a_reply_address_with_a_forged_signature_names_nothing() -> None:
    tagged = reply_address(SECRET, TICKET, SUPPORT)
    assert tagged is not None
    forged = tagged.replace(tagged.split(".")[1][:3], "aaa", 1)
    decision = received(raw_mail({"To": forged}), Envelope("x@example.com", (forged,)))
    assert decision.command.threaded_by == "none"
    assert decision.subject.startswith("mail:")
    assert decision.outcome == "new"


def test_a_reply_address_signed_with_another_secret_names_nothing() -> None:
    tagged = reply_address(b"another-secret-0123456789abcdefghijkl", TICKET, SUPPORT)
    assert tagged is not None
    decision = received(raw_mail({"To": tagged}), Envelope("x@example.com", (tagged,)))
    assert decision.command.threaded_by == "none"


def test_our_message_id_in_references_names_its_ticket() -> None:
    ours = message_id(SECRET, TICKET, "d-1", "helpstream.example")
    decision = received(raw_mail({"References": f"<a@gmail.com> {ours} <b@gmail.com>"}))
    assert (decision.subject, decision.command.threaded_by) == (TICKET, "message_id")


def test_the_reply_address_wins_over_the_message_id() -> None:
    tagged = reply_address(SECRET, TICKET, SUPPORT)
    assert tagged is not None
    ours = message_id(SECRET, OTHER_TICKET, "d-1", "helpstream.example")
    decision = received(raw_mail({"To": tagged, "In-Reply-To": ours}))
    assert (decision.subject, decision.command.threaded_by) == (TICKET, "reply_address")


def test_mail_that_threads_nowhere_is_keyed_by_a_digest_of_its_sender() -> None:
    decision = received(raw_mail({"From": "LI Wei <Li.Wei@EXAMPLE.com>"}))
    digest = hashlib.sha256(b"Li.Wei@example.com").hexdigest()[:32]
    assert decision.subject == f"mail:{digest}"
    assert decision.command.sender == "Li.Wei@example.com"


# -- the same mail twice


def test_a_second_delivery_of_the_same_message_id_is_the_same_command() -> None:
    first = received(raw_mail({"Message-ID": "<m1@gmail.com>"}))
    again = received(raw_mail({"Message-ID": "<m1@gmail.com>", "X-Relay": "second hop"}))
    other = received(raw_mail({"Message-ID": "<m2@gmail.com>"}))
    assert first.command_id == again.command_id != other.command_id


def test_a_message_id_reused_by_another_sender_is_another_command() -> None:
    first = received(raw_mail({"Message-ID": "<m1@gmail.com>"}))
    spoof = received(raw_mail({"Message-ID": "<m1@gmail.com>", "From": "eve@evil.example"}))
    assert first.command_id != spoof.command_id


def test_without_a_message_id_the_same_bytes_are_the_same_command() -> None:
    assert received(raw_mail()).command_id == received(raw_mail()).command_id
    assert received(raw_mail()).command_id != received(raw_mail(body="other")).command_id


# -- what is never threaded


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("auto_reply_gmail_vacation_en", "auto_reply"),
        ("auto_reply_163_zh", "auto_reply"),
        ("own_mail_loop", "own"),
    ],
)
def test_auto_replies_and_our_own_mail_are_dropped(name: str, outcome: str) -> None:
    decision = decide(SAMPLE[name], RELAY, RULES)
    assert isinstance(decision, Drop)
    assert decision.outcome == outcome


def test_a_bounce_reports_each_failed_address_and_threads_nothing() -> None:
    decision = decide(SAMPLE["bounce_postfix_to_qq"], Envelope("", (SUPPORT,)), RULES)
    assert isinstance(decision, Bounce)
    [report] = decision.reports  # the delayed recipient is not a bounce
    assert report.event.address == "999999999@qq.com"
    assert report.event.reason == "hard"
    assert report.event.ticket_id is None
    assert report.subject.startswith("mail:")


def test_a_bounce_of_our_signed_message_is_keyed_by_its_ticket() -> None:
    original = b"<3f9c2a1b7d4e4f0a9b8c6d5e4f3a2b1c.mq2x8f1k.a3bd7k2m9q4xw5ty@helpstream.example>"
    ours = message_id(SECRET, TICKET, "d-9", "helpstream.example").encode()
    raw = SAMPLE["bounce_postfix"].replace(original, ours)
    decision, again = (decide(raw, Envelope("", (SUPPORT,)), RULES) for _ in range(2))
    assert isinstance(decision, Bounce)
    assert isinstance(again, Bounce)
    [report] = decision.reports
    assert (report.event.ticket_id, report.subject) == (TICKET, TICKET)
    assert report.event_id == again.reports[0].event_id  # a second delivery is the same event


def test_a_bounce_that_names_no_address_reports_nothing() -> None:
    decision = decide(SAMPLE["bounce_qq_system_zh"], Envelope("", (SUPPORT,)), RULES)
    assert isinstance(decision, Bounce)
    assert decision.reports == ()


# -- refusals


def test_bytes_that_are_not_mail_are_refused_permanently() -> None:
    decision = decide(b"   \r\n", RELAY, RULES)
    assert isinstance(decision, Refuse)
    assert decision.reply.startswith("550 5.6.0")


def test_mail_without_any_sender_address_is_refused() -> None:
    decision = decide(raw_mail({"From": ""}), Envelope("not-an-address", (SUPPORT,)), RULES)
    assert isinstance(decision, Refuse)
    assert decision.reply.startswith("550 5.1.7")


@pytest.mark.parametrize(
    ("address", "reply"),
    [
        (SUPPORT, None),
        ("Support@Helpstream.Example", None),
        ("support+anything.tag@helpstream.example", None),
        ("victim@gmail.com", "550 5.7.1"),
        ("support@helpstream.example.evil.com", "550 5.7.1"),
        ("ceo@helpstream.example", "550 5.1.1"),
        ("no-at-sign", "501 5.1.3"),
    ],
)
def test_recipients_are_our_support_mailboxes_only(address: str, reply: str | None) -> None:
    refusal = check_recipient(address, (SUPPORT,))
    assert (refusal[:9] if refusal else None) == reply


# -- body, locale, attachments


def test_only_the_new_text_is_kept() -> None:
    body = "Still waiting.\n\nOn Sun, 29 Nov 2026, Support <s@x.com> wrote:\n> Send the hash"
    assert received(raw_mail(body=body)).command.body == "Still waiting."


def test_a_mail_with_only_attachments_says_so_and_an_empty_one_too() -> None:
    with_file = received(raw_mail(body="", parts=[("a.png", "image/png", b"\x89PNG")]))
    assert with_file.command.body == ONLY_ATTACHMENTS
    assert received(raw_mail(body="")).command.body == NO_TEXT


@pytest.mark.parametrize(
    ("text", "declared", "locale"),
    [
        ("提现还没有到账，请帮忙看一下。", None, "zh-CN"),
        ("Withdrawal pending since Monday, please check", None, "en"),
        ("Please check 提现", None, "en"),
        ("我已经 KYC 完成了，但是提现额度还是很低", None, "zh-CN"),
        ("Hello", "zh-CN", "zh-CN"),
        ("Hello", "en-US", "en"),
        ("", None, "en"),
    ],
)
def test_the_locale_is_chinese_when_mostly_chinese_or_declared(
    text: str, declared: str | None, locale: str
) -> None:
    assert locale_of(text, declared) == locale


def test_content_language_zh_makes_the_locale_chinese() -> None:
    decision = received(raw_mail({"Content-Language": "zh-CN"}, body="OK, thanks"))
    assert decision.command.locale == "zh-CN"


@pytest.mark.parametrize(
    ("name", "ctype", "data"),
    [
        ("fix.exe", "application/octet-stream", b"anything"),
        ("FIX.EXE.", "application/octet-stream", b"anything"),
        ("invoice.pdf.js", "text/plain", b"alert(1)"),
        ("tool.bin", "application/x-msdownload", b"anything"),
        ("screenshot.jpg", "image/jpeg", PE),
        ("wallet", "application/octet-stream", b"\x7fELF\x02\x01\x01"),
    ],
)
def test_executables_are_recorded_but_not_kept(name: str, ctype: str, data: bytes) -> None:
    decision = received(raw_mail(parts=[(name, ctype, data)]))
    [attachment] = decision.command.attachments
    assert (attachment.refused, attachment.url) == ("executable", None)
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert decision.keep == ()


def test_a_text_starting_with_mz_is_not_an_executable() -> None:
    decision = received(raw_mail(parts=[("notes.txt", "text/plain", b"MZ bank statement " * 8)]))
    assert decision.command.attachments[0].refused is None


def test_an_attachment_over_the_limit_is_recorded_but_not_kept() -> None:
    decision = received(raw_mail(parts=[("big.pdf", "application/pdf", b"%" * 1001)]))
    [attachment] = decision.command.attachments
    assert (attachment.refused, attachment.size, attachment.url) == ("too_large", 1001, None)
    assert decision.keep == ()


def test_a_kept_attachment_is_stored_once_and_named_by_its_digest() -> None:
    png = b"\x89PNG" + b"x" * 100
    digest = hashlib.sha256(png).hexdigest()
    decision = received(
        raw_mail(parts=[("a.png", "image/png", png), ("copy.png", "image/png", png)])
    )
    assert [a.url for a in decision.command.attachments] == [
        f"https://gw.example/v1/attachments/{digest}"
    ] * 2
    [kept] = decision.keep
    assert (kept.sha256, kept.content, kept.filename) == (digest, png, "a.png")


# -- secrets never leave the gateway

PHRASE = Mnemonic("english").to_mnemonic(bytes(range(16)))
WORDS = PHRASE.split()


def test_a_seed_phrase_in_the_text_subject_sender_name_and_file_name_is_never_published() -> None:
    raw = raw_mail(
        headers={
            "Subject": f"wallet {PHRASE}",
            "From": f"{PHRASE} <li.wei@example.com>",
        },
        body=f"My recovery phrase is {PHRASE}, please help",
        parts=[(f"{PHRASE}.png", "image/png", b"\x89PNG" + bytes(200))],
    )

    command = received(raw).command

    published = command.model_dump_json()
    assert " ".join(WORDS[3:6]) not in published
    assert "[REDACTED:bip39_mnemonic]" in command.body
    assert "[REDACTED:bip39_mnemonic]" in command.attachments[0].name


def test_a_text_attachment_is_kept_with_its_secrets_redacted_under_the_new_digest() -> None:
    exported = f"backup 2026-11-29\nseed: {PHRASE}\n".encode()
    decision = received(raw_mail(parts=[("backup.txt", "text/plain", exported)]))

    (kept,) = decision.keep
    (recorded,) = decision.command.attachments
    assert " ".join(WORDS[:3]).encode() not in kept.content
    assert b"[REDACTED:bip39_mnemonic]" in kept.content
    assert kept.sha256 == recorded.sha256 == hashlib.sha256(kept.content).hexdigest()
    assert recorded.size == len(kept.content)
    assert recorded.url is not None
    assert recorded.url.endswith(kept.sha256)


def test_a_text_attachment_without_secrets_and_binary_files_are_kept_as_they_came() -> None:
    notes = b"withdrawal W-88213, txid 3f2a..., pending since 10:00"
    image = b"\x89PNG" + bytes(300)
    decision = received(
        raw_mail(parts=[("notes.txt", "text/plain", notes), ("a.png", "image/png", image)])
    )

    assert {k.content for k in decision.keep} == {notes, image}
