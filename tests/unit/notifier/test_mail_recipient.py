"""A recipient no relay could take fails that one message, never the batch."""

from __future__ import annotations

import email
import email.policy

import pytest

from services.notifier.mail import Email, prepare
from shared.errors import Invalid

SENDER = "Helpstream <support@helpstream.local>"


@pytest.mark.parametrize(
    "to",
    ["ü@[", "x@[127.0.0.1]", "a b@example.com", "a\x00@example.com", "@example.com", "a@-x.com"],
)
def test_an_undeliverable_recipient_is_invalid_not_a_crash(to: str) -> None:
    with pytest.raises(Invalid) as caught:
        prepare(Email("k", "T-1", to, "Hi", "text", "<p>html</p>"), SENDER)
    assert caught.value.reason == "bad_address"


@pytest.mark.parametrize(
    ("to", "smtputf8"),
    [
        ("li.wei@example.com", False),
        ("李伟@例子.cn", True),
        ("payments-team@helpstream.local", False),
    ],
)
def test_ordinary_international_and_team_addresses_are_sent(to: str, smtputf8: bool) -> None:
    out = prepare(Email("k", "T-1", to, "Hi", "text", "<p>html</p>"), SENDER)
    assert (out.to, out.smtputf8) == (to, smtputf8)


@pytest.mark.parametrize("to", ["li.wei@example.com", "李伟@例子.cn"])
def test_a_line_break_the_requester_typed_in_a_subject_becomes_a_space(to: str) -> None:
    subject = "[T-1] We received your request: line\r\nBcc: victim@example.com\u2028x"
    out = prepare(Email("k", "T-1", to, subject, "text", ""), SENDER)
    message = email.message_from_bytes(out.data, policy=email.policy.default)
    assert message["Subject"] == "[T-1] We received your request: line Bcc: victim@example.com x"
    assert message["Bcc"] is None
