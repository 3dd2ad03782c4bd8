"""Only the new text of a reply reaches the ticket, for every client requesters use."""

from __future__ import annotations

import pytest

from services.mail_gateway.parsing import parse_mail
from services.mail_gateway.replies import extract_reply
from tests.mail_gateway.samples import REPLIES, Sample, loosely_equal, squash


def _extracted(raw: bytes) -> str:
    return extract_reply(parse_mail(raw).mail.text).text


@pytest.mark.parametrize("sample", REPLIES, ids=str)
def test_sample_reply_is_extracted_as_a_person_would(sample: Sample) -> None:
    assert sample.expected is not None
    assert squash(_extracted(sample.raw)) == squash(sample.expected)


def test_extraction_accuracy_over_the_corpus() -> None:
    exact = loose = 0
    for sample in REPLIES:
        assert sample.expected is not None
        got = _extracted(sample.raw)
        exact += squash(got) == squash(sample.expected)
        loose += loosely_equal(got, sample.expected)
    total = len(REPLIES)
    print(f"\nreply extraction over {total} samples: exact {exact}/{total}, loose {loose}/{total}")
    assert total >= 30
    assert exact / total >= 0.95


QUOTE = "> 请提供该笔提现的交易哈希。\n> — Helpstream 客服"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("好的\n\n------------------ 原始邮件 ------------------\n发件人: x", "好的"),
        ("ok\n\n------------------ Original ------------------\nFrom: x\nDate: y", "ok"),
        ("好的\n\n------------------&nbsp;原始邮件&nbsp;------------------\n发件人: x", "好的"),
        (f"收到\n\n在 2026年11月29日 18:56，Helpstream 客服 <s@h.example> 写道：\n{QUOTE}", "收到"),
        (f'收到\n\n在 2026-11-29 18:56:33，"客服" <s@h.example> 写道：\n{QUOTE}', "收到"),
        (
            f"收到\n\nHelpstream 客服 <s@h.example> 于2026年11月29日周日 18:56写道：\n{QUOTE}",
            "收到",
        ),
        (f"謝謝\n\n在 2026年11月29日 下午6:56，Support <s@h.example> 寫道：\n{QUOTE}", "謝謝"),
        ("好\n\n发件人: 客服 <s@h.example>\n发送时间: 2026年11月29日 18:56\n收件人: 我", "好"),
        ("ok\n\n________________________________\nFrom: S <s@h.example>\nSent: Sunday", "ok"),
        ("ok\n\n-----邮件原件-----\n发件人: S\n发送时间: 2026年11月29日", "ok"),
        ("ok\n\nOn Sun, Nov 29, 2026 at 6:56 PM Support <\ns@h.example> wrote:\n> hi", "ok"),
        ("ok\n\n> On 29 Nov 2026, at 18:56, Support <s@h.example> wrote:\n> \n> hi", "ok"),
    ],
)
def test_quoted_history_is_cut_for_each_client_marker(text: str, expected: str) -> None:
    reply = extract_reply(text)
    assert reply.text == expected
    assert reply.had_history


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Done.\n\nSent from my iPhone", "Done."),
        ("好的\n\n发自我的iPhone", "好的"),
        ("好的\n\n发自网易邮箱大师", "好的"),
        ("好的\n\n发自我的华为手机", "好的"),
        ("Done.\n\nGet Outlook for Android<https://aka.ms/AAb9ysg>", "Done."),
        ("Done.\n\n-- \nAlice Walker\nCTO, Example", "Done."),
    ],
)
def test_mobile_signatures_and_sig_delimiter_are_cut(text: str, expected: str) -> None:
    reply = extract_reply(text)
    assert reply.text == expected
    assert reply.signature


def test_a_sign_off_and_hyphen_lists_are_the_senders_words() -> None:
    text = "Steps:\n- restarted\n- reinstalled\n\nThanks, that is all.\nBest regards,\nAlice"
    assert extract_reply(text).text == text


def test_a_mail_without_history_is_kept_whole() -> None:
    text = "我昨天充值的 USDT 还没到账。\n\n交易哈希：abc123"
    reply = extract_reply(text)
    assert reply.text == text
    assert not reply.had_history


def test_bottom_posted_reply_keeps_the_unquoted_text() -> None:
    text = "On Sun, Nov 29, 2026 at 6:56 PM Support <s@h.example> wrote:\n> old text\n\nmy answer"
    assert extract_reply(text).text == "my answer"


def test_crlf_nbsp_and_zero_width_characters_are_normalised() -> None:
    text = "Hello\u00a0there\u200b\r\n\r\nOn Sun, Nov 29, 2026, Support wrote:\r\n> x\r\n"
    assert extract_reply(text).text == "Hello there"
