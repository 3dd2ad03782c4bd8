"""Help articles: the packaged folder loads, and a ticket's text finds the right answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.faq import (
    ArticleIndex,
    load_index,
    packaged_index,
    render_markdown,
    tokens,
    valid_article_id,
)
from shared.errors import ConfigError
from shared.events import Category

if TYPE_CHECKING:
    from pathlib import Path

# (ticket text, locale, category, asset, network) -> the article that must come first
FIRST_ANSWER = [
    (
        "我的USDT提现已经3小时还没到账",
        "zh-CN",
        Category.withdrawal_delay,
        "USDT",
        "TRC20",
        "usdt-trc20-withdrawal-pending-zh",
    ),
    ("提币卡住了，波场网络", "zh-CN", None, None, None, "usdt-trc20-withdrawal-pending-zh"),
    (
        "My USDT withdrawal is stuck",
        "en",
        Category.withdrawal_delay,
        "USDT",
        "tron",
        "usdt-trc20-withdrawal-pending-en",
    ),
    (
        "ETH withdrawal pending for hours, gas?",
        "en",
        None,
        "ETH",
        "ERC20",
        "erc20-withdrawal-pending-en",
    ),
    (
        "BSC withdrawal not received on BscScan",
        "en",
        None,
        None,
        None,
        "bep20-withdrawal-pending-en",
    ),
    ("比特币提现一直未确认", "zh-CN", None, "BTC", None, "btc-withdrawal-unconfirmed-zh"),
    ("Solana USDC withdrawal not arrived", "en", None, "USDC", "SOL", "sol-withdrawal-pending-en"),
    (
        "I forgot the destination tag when depositing XRP",
        "en",
        None,
        None,
        None,
        "deposit-missing-memo-tag-en",
    ),
    (
        "充值忘填memo了",
        "zh-CN",
        Category.deposit_missing,
        None,
        None,
        "deposit-missing-memo-tag-zh",
    ),
    ("充错链了，把USDT充到了BEP20", "zh-CN", None, None, None, "deposit-wrong-network-zh"),
    (
        "deposit not credited after 30 confirmations",
        "en",
        Category.deposit_missing,
        None,
        None,
        "deposit-not-credited-en",
    ),
    (
        "实名认证一直失败，身份证照片",
        "zh-CN",
        Category.kyc,
        None,
        None,
        "kyc-verification-rejected-zh",
    ),
    (
        "lost my phone and my google authenticator",
        "en",
        Category.account_security,
        None,
        None,
        "lost-2fa-reset-en",
    ),
    ("有人自称客服让我提供助记词", "zh-CN", None, None, None, "fake-support-seed-phrase-zh"),
    (
        "I was scammed by a fake airdrop and sent my USDT",
        "en",
        Category.scam_report,
        None,
        None,
        "scam-report-funds-sent-en",
    ),
    (
        "my account is frozen, cannot withdraw",
        "en",
        None,
        None,
        None,
        "account-frozen-risk-review-en",
    ),
    (
        "换手机后怎么恢复钱包",
        "zh-CN",
        Category.wallet_recovery,
        None,
        None,
        "restore-self-custody-wallet-zh",
    ),
    (
        "转账失败 矿工费不足",
        "zh-CN",
        Category.transfer_failed,
        None,
        None,
        "transfer-failed-gas-nonce-zh",
    ),
    ("withdrawal fee too high", "en", Category.fees, None, None, "withdrawal-and-network-fees-en"),
    ("合约爆仓了", "zh-CN", Category.trading, None, None, "futures-liquidation-orders-zh"),
    ("P2P seller is not releasing my USDT", "en", None, None, None, "p2p-order-dispute-en"),
    ("my API key leaked", "en", None, None, None, "api-key-security-en"),
    ("币种要下架了怎么办", "zh-CN", None, None, None, "token-delisting-withdraw-zh"),
]


@pytest.mark.parametrize(
    ("text", "locale", "category", "asset", "network", "expected"), FIRST_ANSWER
)
def test_a_ticket_gets_the_article_that_answers_it_first(
    text: str,
    locale: str,
    category: Category | None,
    asset: str | None,
    network: str | None,
    expected: str,
) -> None:
    found = packaged_index().suggest(
        subject=text,
        description="",
        locale=locale,
        category=category,
        asset=asset,
        network=network,
    )
    assert [s.id for s in found][:1] == [expected]
    assert len(found) == 3


def test_the_packaged_articles_cover_every_category_in_both_languages() -> None:
    index = packaged_index()
    assert len(index.articles) >= 30
    for language in ("zh-CN", "en"):
        covered = {
            c for a in index.articles.values() if a.language == language for c in a.categories
        }
        assert covered >= set(Category) - {Category.other}


def test_articles_in_the_requesters_language_come_first() -> None:
    found = packaged_index().suggest(
        subject="USDT TRC20 withdrawal", description="", locale="zh-CN"
    )
    assert all(s.language == "zh-CN" for s in found)


def test_no_article_ever_asks_for_a_secret() -> None:
    asks = ("send us your seed", "provide your private key", "请提供助记词", "发送您的私钥")
    for article in packaged_index().articles.values():
        assert not any(phrase in article.body.lower() for phrase in asks), article.id


def test_raw_html_in_an_article_is_shown_as_text_and_script_links_are_not_links() -> None:
    html = render_markdown("<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x>")
    assert "<script>" not in html
    assert "<img" not in html
    assert 'href="javascript' not in html


@pytest.mark.parametrize(
    "article_id", ["../../etc/passwd", "a/b", "UPPER", "x" * 101, "", "-lead", "a--b", "a.md"]
)
def test_anything_but_an_article_id_finds_no_article(article_id: str) -> None:
    assert not valid_article_id(article_id)
    assert packaged_index().get(article_id) is None


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


GOOD = """---
id: {id}
title: A good article
language: en
categories: [kyc]
---
Enough text to explain something useful to the requester who reads it.
"""


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("no front matter at all, just text that goes on", "no front matter"),
        (GOOD.replace("language: en", "language: fr"), "language"),
        (GOOD.replace("[kyc]", "[nonsense]"), "categories"),
        (GOOD.replace("title: A good article", "title: A good article\nowner: me"), "owner"),
        (
            GOOD.replace(
                "Enough text to explain something useful to the requester who reads it.", "short"
            ),
            "too short",
        ),
        (GOOD.replace("id: {id}", "id: another-name"), "file name"),
    ],
)
def test_a_bad_article_stops_the_start_naming_the_file(
    tmp_path: Path, text: str, says: str
) -> None:
    _write(tmp_path, "bad-article.md", text.replace("{id}", "bad-article"))
    with pytest.raises(ConfigError) as caught:
        load_index(tmp_path)
    assert "bad-article.md" in str(caught.value)
    assert says in str(caught.value)


def test_an_empty_folder_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \*\.md"):
        load_index(tmp_path)


def test_a_folder_of_good_articles_loads(tmp_path: Path) -> None:
    _write(tmp_path, "good-one.md", GOOD.replace("{id}", "good-one"))
    index = load_index(tmp_path)
    assert isinstance(index, ArticleIndex)
    assert index.get("good-one") is not None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["zh-CN", "en", "fr"]))
def test_any_ticket_text_gets_at_most_three_distinct_articles(text: str, locale: str) -> None:
    found = packaged_index().suggest(subject=text, description=text, locale=locale)
    assert len(found) <= 3
    assert len({s.id for s in found}) == len(found)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_tokens_never_hold_punctuation_or_blanks(text: str) -> None:
    assert all(t.strip() and any(ch.isalnum() for ch in t) for t in tokens(text))
