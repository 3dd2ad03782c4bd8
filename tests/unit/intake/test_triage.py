from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from services.intake.triage import (
    CATEGORIES,
    DEFAULT_RULES_PATH,
    Triage,
    TriageConfigError,
    TriageRules,
    UnknownCategoryError,
    load_rules,
    parse_rules,
    triage,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def rules() -> TriageRules:
    return load_rules()


def run(
    rules: TriageRules,
    description: str,
    *,
    subject: str = "",
    category: str | None = None,
    asset: str | None = None,
    amount: Decimal | None = None,
    tier: str | None = None,
) -> Triage:
    return triage(
        rules,
        subject=subject,
        description=description,
        category=category,
        asset=asset,
        amount=amount,
        tier=tier,
    )


EXAMPLES = [
    ("account_security", "en", "My account was hacked, there is an unknown login from Brazil"),
    ("account_security", "zh-CN", "我的账号被盗了，有异地登录"),
    ("scam_report", "en", "I sent funds to a scammer pretending to be fake support"),
    ("scam_report", "zh-CN", "我被骗了，有个假客服让我转账"),
    ("withdrawal_delay", "en", "Withdrawal stuck for 5 hours, withdrawal not received"),
    ("withdrawal_delay", "zh-CN", "提现未到账，提币卡住了"),
    ("deposit_missing", "en", "Deposit not credited, I think I used the wrong network"),
    ("deposit_missing", "zh-CN", "充值未到账，可能充错链了"),
    ("transfer_failed", "en", "Transfer failed with insufficient gas"),
    ("transfer_failed", "zh-CN", "转账失败，提示矿工费不足"),
    ("wallet_recovery", "en", "I lost my phone and need to restore wallet"),
    ("wallet_recovery", "zh-CN", "换手机了，怎么恢复钱包"),
    ("kyc", "en", "KYC verification rejected twice, my passport is valid"),
    ("kyc", "zh-CN", "实名认证失败，身份证已经上传"),
    ("trading", "en", "My order not filled and then I got liquidated"),
    ("trading", "zh-CN", "订单未成交，结果爆仓了"),
    ("fees", "en", "Why is the trading fee so high? I was overcharged"),
    ("fees", "zh-CN", "手续费太高了，还多扣了"),
    ("complaint", "en", "I want to file a complaint, the agent was rude"),
    ("complaint", "zh-CN", "我要投诉，客服态度差"),
    ("other", "en", "Do you have a listing schedule for new tokens?"),
    ("other", "zh-CN", "请问你们有上币计划吗"),
]


@pytest.mark.parametrize(
    ("expected", "text"),
    [(c, t) for c, _, t in EXAMPLES],
    ids=[f"{c}-{lang}" for c, lang, _ in EXAMPLES],
)
def test_category_is_detected_from_keywords(rules: TriageRules, expected: str, text: str) -> None:
    result = run(rules, text)

    assert result.category == expected
    assert bool(result.matched) == (expected != "other")


def test_every_category_has_an_example_in_both_languages() -> None:
    assert {(c, lang) for c, lang, _ in EXAMPLES} == {
        (c, lang) for c in CATEGORIES for lang in ("en", "zh-CN")
    }


@pytest.mark.parametrize(
    ("category", "priority", "group"),
    [
        ("account_security", "urgent", "security"),
        ("scam_report", "urgent", "security"),
        ("withdrawal_delay", "high", "payments"),
        ("deposit_missing", "high", "payments"),
        ("complaint", "high", "complaints"),
        ("kyc", "normal", "general"),
        ("other", "normal", "general"),
    ],
)
def test_category_sets_base_priority_and_group(
    rules: TriageRules, category: str, priority: str, group: str
) -> None:
    result = run(rules, "", category=category)

    assert (result.priority, result.group) == (priority, group)


def test_matched_keywords_explain_the_decision(rules: TriageRules) -> None:
    result = run(rules, "有异地登录", subject="Account hacked")

    assert result.matched == ("account hacked", "hacked", "异地登录")


def test_english_keywords_match_whole_words_only(rules: TriageRules) -> None:
    assert run(rules, "Thanks for the feedback on my scammers report").category == "other"
    assert run(rules, "thanks for the FEEDBACK").matched == ()


def test_english_keywords_ignore_case_and_touching_chinese(rules: TriageRules) -> None:
    result = run(rules, "我的账号HACKED了")

    assert result.category == "account_security"
    assert "hacked" in result.matched


def test_category_with_more_matches_wins(rules: TriageRules) -> None:
    result = run(rules, "Withdrawal fee was charged twice, the trading fee too")

    assert result.category == "fees"


def test_ties_follow_the_precedence_order(rules: TriageRules) -> None:
    # one security keyword and one trading keyword: security comes first
    result = run(rules, "phishing, then liquidation")

    assert result.category == "account_security"


def test_explicit_category_wins_over_keywords(rules: TriageRules) -> None:
    result = run(rules, "My account was hacked and I was scammed", category="kyc")

    assert (result.category, result.group, result.priority) == ("kyc", "general", "normal")
    assert result.matched == ()


def test_unknown_explicit_category_is_rejected(rules: TriageRules) -> None:
    with pytest.raises(UnknownCategoryError, match="lottery"):
        run(rules, "", category="lottery")


@pytest.mark.parametrize(
    ("asset", "amount", "priority"),
    [
        ("USDT", "1000.01", "high"),
        ("USDT", "1000", "normal"),
        ("USDT", "999", "normal"),
        ("usdt", "5000", "high"),
        ("USDT-TRC20", "5000", "high"),
        ("BTC", "0.021", "high"),
        ("BTC", "0.02", "normal"),
        ("ETH", "0.6", "high"),
        ("ETH", "0.1", "normal"),
        ("DOGE", "1000000", "high"),  # no threshold for the asset: category priority
        (None, "1", "high"),
        ("USDT", None, "high"),
    ],
)
@pytest.mark.parametrize("category", ["withdrawal_delay", "deposit_missing"])
def test_amount_above_threshold_is_high_otherwise_normal(
    rules: TriageRules, category: str, asset: str | None, amount: str | None, priority: str
) -> None:
    result = run(
        rules,
        "",
        category=category,
        asset=asset,
        amount=None if amount is None else Decimal(amount),
    )

    assert result.priority == priority


def test_amount_rule_applies_to_keyword_detected_category(rules: TriageRules) -> None:
    result = run(rules, "提现未到账", asset="USDT", amount=Decimal("50"))

    assert (result.category, result.priority) == ("withdrawal_delay", "normal")


@pytest.mark.parametrize(
    ("category", "amount", "priority"),
    [
        ("kyc", None, "high"),
        ("withdrawal_delay", "10", "high"),
        ("withdrawal_delay", "10000", "urgent"),
        ("account_security", None, "urgent"),
    ],
)
def test_vip_bumps_one_level_capped_at_urgent(
    rules: TriageRules, category: str, amount: str | None, priority: str
) -> None:
    result = run(
        rules,
        "",
        category=category,
        asset="USDT",
        amount=None if amount is None else Decimal(amount),
        tier="VIP",
    )

    assert result.priority == priority


@pytest.mark.parametrize("tier", [None, "", "regular", "gold-unknown"])
def test_other_tiers_do_not_bump(rules: TriageRules, tier: str | None) -> None:
    assert run(rules, "", category="kyc", tier=tier).priority == "normal"


# --- configuration errors ------------------------------------------------------------------


def default_config() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_shipped_rules_load() -> None:
    assert set(load_rules().categories) == set(CATEGORIES)


def test_unknown_key_is_a_config_error() -> None:
    data = default_config()
    data["categories"]["kyc"]["keywrods"] = ["typo"]

    with pytest.raises(TriageConfigError, match=r"categories\.kyc\.keywrods"):
        parse_rules(yaml.safe_dump(data))


def test_unknown_priority_is_a_config_error() -> None:
    data = default_config()
    data["categories"]["fees"]["priority"] = "critical"

    with pytest.raises(TriageConfigError, match=r"categories\.fees\.priority.*'urgent'"):
        parse_rules(yaml.safe_dump(data))


def test_unknown_priority_in_amount_rule_is_a_config_error() -> None:
    data = default_config()
    data["categories"]["withdrawal_delay"]["amount_rule"]["above"] = "asap"

    with pytest.raises(TriageConfigError, match=r"withdrawal_delay\.amount_rule\.above"):
        parse_rules(yaml.safe_dump(data))


def test_unknown_category_is_a_config_error() -> None:
    data = default_config()
    data["categories"]["lottery"] = data["categories"]["other"]

    with pytest.raises(TriageConfigError, match="lottery"):
        parse_rules(yaml.safe_dump(data))


def test_missing_category_is_a_config_error() -> None:
    data = default_config()
    del data["categories"]["fees"]

    with pytest.raises(TriageConfigError, match=r"missing.*fees"):
        parse_rules(yaml.safe_dump(data))


def test_undeclared_group_is_a_config_error() -> None:
    data = default_config()
    data["categories"]["kyc"]["group"] = "compliance"

    with pytest.raises(TriageConfigError, match="unknown group 'compliance'"):
        parse_rules(yaml.safe_dump(data))


def test_incomplete_precedence_is_a_config_error() -> None:
    data = default_config()
    data["precedence"].remove("trading")

    with pytest.raises(TriageConfigError, match="precedence"):
        parse_rules(yaml.safe_dump(data))


def test_bad_threshold_is_a_config_error() -> None:
    data = default_config()
    data["categories"]["deposit_missing"]["amount_rule"]["thresholds"]["BTC"] = "lots"

    with pytest.raises(TriageConfigError, match=r"thresholds\.BTC"):
        parse_rules(yaml.safe_dump(data))


def test_invalid_yaml_is_a_config_error() -> None:
    with pytest.raises(TriageConfigError, match="not valid YAML"):
        parse_rules("groups: [security\n")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TriageConfigError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")


def test_rules_load_from_a_given_path(tmp_path: Path) -> None:
    data = default_config()
    data["tier_bumps"] = {"whale": 3}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    result = run(load_rules(path), "", category="fees", tier="Whale")

    assert result.priority == "urgent"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(TriageConfigError, ValueError)


_RULES = load_rules()
_WORDS = sorted(
    {part for rule in _RULES.categories.values() for k in rule.keywords for part in k.text.split()}
)


@given(
    st.lists(
        st.one_of(
            st.sampled_from(_WORDS),
            st.sampled_from([w.upper() for w in _WORDS]),
            st.text(alphabet=" -_\n.,!0123456789aZkKſİ账号", max_size=4),
        ),
        max_size=12,
    )
)
def test_keyword_probes_never_change_what_matches(pieces: list[str]) -> None:
    text = " ".join(pieces)
    for rule in _RULES.categories.values():
        plain = tuple(k.text for k in rule.keywords if k.pattern.search(text))
        assert rule.matches(text) == plain
