"""The email as it goes over the wire."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from services.notifier.mail import Email, prepare
from shared.errors import Invalid

SENDER = "帮助中心 <support@helpstream.local>"


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_mail_carries_text_and_html_a_stable_message_id_and_the_ticket() -> None:
    subject = "[T-ack] 我们已收到您的请求：提现未到账，请耐心等待我们的回复，谢谢您的理解与支持"
    out = prepare(
        Email("k-1", "T-ack", "li.wei@example.com", subject, "你好\n" * 3, "<p>你好</p>"),
        SENDER,
    )
    message = parsed(out.data)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert (out.sender, out.to, out.smtputf8) == (
        "support@helpstream.local",
        "li.wei@example.com",
        False,
    )
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == subject
    assert message["From"] == SENDER
    assert message["Message-ID"] == "<k-1@helpstream>"
    assert message["X-Helpstream-Ticket"] == "T-ack"
    assert plain is not None
    assert plain.get_content().splitlines() == ["你好"] * 3
    assert html is not None
    assert html.get_content().strip() == "<p>你好</p>"
    assert out.data.isascii()  # any relay takes it, 8BITMIME or not


def test_a_mail_to_an_international_address_is_sent_as_smtputf8() -> None:
    out = prepare(Email("k-2", "T-2", "李伟@例子.cn", "Hi", "text", "<p>html</p>"), SENDER)
    assert out.smtputf8
    assert parsed(out.data)["To"] == "李伟@例子.cn"


def test_a_line_break_in_a_header_value_is_refused_for_good() -> None:
    with pytest.raises(Invalid):
        prepare(Email("k-3", "T-3\r\nBcc: x@evil.test", "a@example.com", "s", "t", ""), SENDER)
