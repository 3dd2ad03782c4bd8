"""Raw mail from any client becomes a typed InboundMail; nothing malformed escapes."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mail_gateway.charsets import decode
from services.mail_gateway.html_text import html_to_text
from services.mail_gateway.parsing import InvalidMail, ParsedMail, parse_mail
from tests.mail_gateway.samples import SAMPLES, Sample

SUPPORT = "support+3f9c2a1b7d4e4f0a9b8c6d5e4f3a2b1c.k7m2q4x9a3bd@helpstream.example"
NOTIFIER_ID = "<3f9c2a1b7d4e4f0a9b8c6d5e4f3a2b1c.mq2x8f1k.a3bd7k2m9q4xw5ty@helpstream.example>"


def mail(headers: str, body: bytes = b"hello\r\n") -> ParsedMail:
    return parse_mail(headers.strip().replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_every_sample_parses_with_sender_subject_and_text(sample: Sample) -> None:
    parsed = parse_mail(sample.raw).mail
    assert parsed.subject
    if sample.meta.get("malformed"):
        return
    assert parsed.from_ is not None
    assert "\ufffd" not in parsed.subject
    if sample.meta["kind"] == "ordinary" and not sample.meta.get("malformed"):
        assert "\ufffd" not in parsed.text
        assert parsed.message_id
        assert NOTIFIER_ID in parsed.in_reply_to + parsed.references or not parsed.in_reply_to
    if sample.meta.get("html_only"):
        assert parsed.text_source == "html"
    if "subject" in sample.meta:
        assert parsed.subject == sample.meta["subject"]


@pytest.mark.parametrize("sample", [s for s in SAMPLES if "attachments" in s.meta], ids=str)
def test_sample_attachments_are_recorded_with_name_type_size_and_digest(sample: Sample) -> None:
    parsed = parse_mail(sample.raw)
    recorded = [(a.filename, a.content_type, a.size) for a in parsed.mail.attachments]
    assert recorded == [tuple(a) for a in sample.meta["attachments"]]
    for attachment in parsed.mail.attachments:
        content = parsed.contents[attachment.sha256]
        assert hashlib.sha256(content).hexdigest() == attachment.sha256
        assert len(content) == attachment.size


def test_addresses_and_thread_headers_are_read() -> None:
    parsed = mail(f"""
From: =?UTF-8?B?5p2O5Lyf?= <LiWei@Example.com>
To: "Helpstream" <{SUPPORT}>, other@example.com
Cc: cc@example.com
Delivered-To: {SUPPORT}
Subject: =?gb2312?B?u9i4tA==?=
Message-ID: <abc@mail.example.com>
In-Reply-To: {NOTIFIER_ID}
References: <first@x> {NOTIFIER_ID}
Date: Sun, 29 Nov 2026 19:04:11 +0800
""").mail
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.normalised) == ("李伟", "liwei@example.com")
    assert [a.address for a in parsed.to] == [SUPPORT, "other@example.com"]
    assert [a.address for a in parsed.cc] == ["cc@example.com"]
    assert [a.address for a in parsed.delivered_to] == [SUPPORT]
    assert parsed.subject == "回复"
    assert parsed.message_id == "<abc@mail.example.com>"
    assert parsed.in_reply_to == (NOTIFIER_ID,)
    assert parsed.references == ("<first@x>", NOTIFIER_ID)
    assert parsed.date is not None
    assert parsed.date.utcoffset() is not None


def test_null_sender_return_path_is_an_empty_string() -> None:
    assert mail("From: a@b.c\nReturn-Path: <>").mail.return_path == ""
    assert mail("From: a@b.c\nReturn-Path: <x@b.c>").mail.return_path == "x@b.c"
    assert mail("From: a@b.c").mail.return_path is None


@pytest.mark.parametrize(
    ("label", "text", "codec"),
    [
        ("gb2312", "王喆的充值记录", "gbk"),  # 喆 is GBK-only: clients decode gb2312 as GB18030
        ("GBK", "提现未到账", "gbk"),
        ("gb18030", "钱包 €", "gb18030"),
        ("big5", "提幣未到帳", "big5"),
        ("utf-8", "资金 — fonds", "utf-8"),
        ("iso-8859-1", "资金还没到", "utf-8"),  # UTF-8 mislabelled by webmail
        ("us-ascii", "充值没到账", "gbk"),  # GBK mislabelled
        ("x-unknown", "提现", "gbk"),
    ],
)
def test_bodies_decode_whatever_the_label(label: str, text: str, codec: str) -> None:
    body = base64.b64encode(text.encode(codec))
    parsed = mail(
        f"From: a@b.c\nContent-Type: text/plain; charset={label}\n"
        "Content-Transfer-Encoding: base64",
        body,
    ).mail
    assert parsed.text == text


def test_latin1_stays_latin1() -> None:
    assert decode("café résumé".encode("latin-1"), "iso-8859-1")[0] == "café résumé"


def test_rfc2047_gb2312_header_with_gbk_only_characters() -> None:
    word = base64.b64encode("答复: 王喆".encode("gbk")).decode()
    assert mail(f"From: a@b.c\nSubject: =?gb2312?B?{word}?=").mail.subject == "答复: 王喆"


def test_raw_eight_bit_headers_are_decoded() -> None:
    raw = "From: a@b.c\r\nSubject: 回复：充值\r\n\r\nx".encode("gbk")
    assert parse_mail(raw).mail.subject == "回复：充值"


def test_rfc2231_and_rfc2047_filenames() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"
        b"--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment;"
        b" filename*=gb18030''%D7%AA%D5%CB.csv\r\n\r\na,b\r\n"
        b'--b\r\nContent-Type: image/png; name="=?UTF-8?B?5oiq5Zu+LnBuZw==?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="..\\\\..\\\\evil.exe"\r\n\r\nMZ\r\n--b--\r\n'
    )
    parsed = mail('From: a@b.c\nContent-Type: multipart/mixed; boundary="b"', body).mail
    assert parsed.text == "see files"
    assert [a.filename for a in parsed.attachments] == ["转账.csv", "截图.png", "evil.exe"]


def test_html_only_mail_becomes_readable_text() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<p>First&nbsp;paragraph</p><p>Second<br>line</p>"
        "<ul><li>one</li><li>two</li></ul><ol><li>a</li><li>b</li></ol>"
        '<p>See <a href="https://status.example/tx/1">the explorer</a>.</p></body></html>'
    )
    assert html_to_text(html) == (
        "First paragraph\n\nSecond\nline\n\n- one\n- two\n\n1. a\n2. b\n\n"
        "See the explorer (https://status.example/tx/1)."
    )


def test_plain_text_is_preferred_over_html() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b--\r\n"
    )
    parsed = mail('From: a@b.c\nContent-Type: multipart/alternative; boundary="b"', body).mail
    assert (parsed.text, parsed.text_source) == ("plain words", "plain")


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"\r\n\r\njust a body"])
def test_bytes_that_are_not_mail_are_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidMail):
        parse_mail(raw)


def test_oversized_mail_is_invalid() -> None:
    with pytest.raises(InvalidMail) as error:
        parse_mail(b"From: a@b.c\r\n\r\n" + b"x" * 100, max_bytes=50)
    assert error.value.reason == "too_large"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_but_invalid_mail(raw: bytes) -> None:
    try:
        parse_mail(raw)
    except InvalidMail:
        pass


_HEADER_NAMES = st.sampled_from(
    ["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding", "Message-ID",
     "References", "Date", "Content-Disposition", "Return-Path"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_HEADER_NAMES, st.binary(max_size=80)), max_size=8),
    st.binary(max_size=1500),
)
def test_mail_shaped_garbage_never_raises_anything_but_invalid_mail(
    headers: list[tuple[str, bytes]], body: bytes
) -> None:
    raw = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    raw = b"From: x@y.z\r\n" + raw + b"\r\n" + body
    try:
        parse_mail(raw)
    except InvalidMail:
        pass
