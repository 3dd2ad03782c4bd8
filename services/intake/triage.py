"""Pick a category, priority and team for a new ticket from rules kept in YAML.

Support leads tune keywords and thresholds more often than engineers touch code, so the
rules live in ``triage_rules.yaml`` and are validated strictly on load: a typo in the file
must stop the service at start-up, not silently send tickets to the wrong team.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
"""Lowest to highest."""

Category = Literal[
    "account_security",
    "scam_report",
    "withdrawal_delay",
    "deposit_missing",
    "transfer_failed",
    "kyc",
    "wallet_recovery",
    "trading",
    "fees",
    "complaint",
    "other",
]
CATEGORIES: tuple[Category, ...] = get_args(Category)

DEFAULT_RULES_PATH = Path(__file__).with_name("triage_rules.yaml")


class TriageConfigError(ValueError):
    """The triage rules file is unreadable or invalid; the message names the problem."""


class UnknownCategoryError(ValueError):
    """A caller passed a category that the triage rules do not define."""

    def __init__(self, category: str) -> None:
        super().__init__(f"unknown ticket category {category!r}; expected one of {CATEGORIES}")
        self.category = category


@dataclass(frozen=True)
class Triage:
    category: str
    priority: str
    group: str
    matched: tuple[str, ...]


# --- configuration schema ------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeywordsConfig(_Model):
    en: list[str] = Field(default_factory=list, description="whole-word, case-insensitive")
    zh_cn: list[str] = Field(default_factory=list, alias="zh-CN", description="substrings")


class AmountRuleConfig(_Model):
    above: Priority
    at_or_below: Priority
    thresholds: dict[str, Decimal] = Field(description="asset symbol -> amount")


class CategoryConfig(_Model):
    group: str
    priority: Priority
    keywords: KeywordsConfig = Field(default_factory=KeywordsConfig)
    amount_rule: AmountRuleConfig | None = None


class RulesConfig(_Model):
    groups: list[str]
    precedence: list[Category]
    fallback: Category
    tier_bumps: dict[str, int] = Field(default_factory=dict)
    categories: dict[Category, CategoryConfig]

    @model_validator(mode="after")
    def _consistent(self) -> RulesConfig:
        missing = [c for c in CATEGORIES if c not in self.categories]
        if missing:
            raise ValueError(f"categories missing from rules: {missing}")
        if sorted(self.precedence) != sorted(CATEGORIES):
            raise ValueError(
                f"precedence must list every category exactly once: {list(CATEGORIES)}"
            )
        for name, category in self.categories.items():
            if category.group not in self.groups:
                raise ValueError(
                    f"category {name!r} uses unknown group {category.group!r}; "
                    f"declare it in groups {self.groups}"
                )
        for tier, bump in self.tier_bumps.items():
            if bump < 0:
                raise ValueError(f"tier bump for {tier!r} must not be negative, got {bump}")
        return self


# --- compiled rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Keyword:
    text: str
    pattern: re.Pattern[str]
    # A cheap necessary condition checked before the regex (which costs ~1 µs and a ticket
    # meets ~240 keywords): a substring the lower-cased text must contain when the text is
    # pure ASCII. "" when any ASCII text may match; NEVER when none can (CJK keywords).
    probe: str = ""


NEVER = "\uffff"  # not ASCII, so never inside an ASCII text


@dataclass(frozen=True)
class CategoryRule:
    name: Category
    group: str
    priority: Priority
    keywords: tuple[_Keyword, ...]
    amount_rule: AmountRuleConfig | None

    def matches(self, text: str) -> tuple[str, ...]:
        if not text.isascii():
            return tuple(k.text for k in self.keywords if k.pattern.search(text))
        lowered = text.lower()
        return tuple(k.text for k in self.keywords if k.probe in lowered and k.pattern.search(text))


@dataclass(frozen=True)
class TriageRules:
    categories: dict[Category, CategoryRule]
    precedence: tuple[Category, ...]
    fallback: Category
    tier_bumps: dict[str, int]


def _english(keyword: str) -> re.Pattern[str]:
    # ASCII boundaries, not \b: in Unicode regexes CJK characters are word characters, so
    # \b would miss "hacked" in "账号hacked".
    body = r"[\s_-]+".join(re.escape(part) for part in keyword.split())
    return re.compile(rf"(?<![a-z0-9]){body}(?![a-z0-9])", re.IGNORECASE)


def _chinese(keyword: str) -> re.Pattern[str]:
    return re.compile(re.escape(keyword), re.IGNORECASE)


def _keyword(text: str, pattern: re.Pattern[str], parts: list[str]) -> _Keyword:
    """`parts`: the literals the pattern matches case-insensitively."""
    if text.isascii():  # ASCII against ASCII: IGNORECASE is exactly lower-case equality
        return _Keyword(text, pattern, probe=max(parts, key=len).lower())
    # A non-ASCII character may still match an ASCII one ignoring case (the Kelvin sign
    # matches "k"); only a keyword with a character that matches none is unreachable.
    reachable = all(
        ch.isascii() or any(re.fullmatch(re.escape(ch), chr(c), re.IGNORECASE) for c in range(128))
        for ch in text
    )
    return _Keyword(text, pattern, probe="" if reachable else NEVER)


def _compile(config: RulesConfig) -> TriageRules:
    categories: dict[Category, CategoryRule] = {}
    for name, category in config.categories.items():
        keywords = tuple(_keyword(k, _english(k), k.split()) for k in category.keywords.en) + tuple(
            _keyword(k, _chinese(k), [k]) for k in category.keywords.zh_cn
        )
        categories[name] = CategoryRule(
            name=name,
            group=category.group,
            priority=category.priority,
            keywords=keywords,
            amount_rule=category.amount_rule,
        )
    return TriageRules(
        categories=categories,
        precedence=tuple(config.precedence),
        fallback=config.fallback,
        tier_bumps={tier.lower(): bump for tier, bump in config.tier_bumps.items()},
    )


def parse_rules(text: str, *, source: str = "<string>") -> TriageRules:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TriageConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        config = RulesConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TriageConfigError(f"{source}: invalid triage rules: {problems}") from exc
    return _compile(config)


def load_rules(path: Path | None = None) -> TriageRules:
    path = path or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TriageConfigError(f"cannot read triage rules at {path}: {exc}") from exc
    return parse_rules(text, source=str(path))


# --- triage --------------------------------------------------------------------------------


def triage(
    rules: TriageRules,
    *,
    subject: str,
    description: str,
    category: str | None,
    asset: str | None,
    amount: Decimal | None,
    tier: str | None,
) -> Triage:
    text = f"{subject}\n{description}"
    if category is not None:
        rule = _known(rules, category)
        matched = rule.matches(text)
    else:
        rule, matched = _best_match(rules, text)
    priority = _priority_for_amount(rule, asset, amount)
    priority = _bump(priority, rules.tier_bumps.get((tier or "").strip().lower(), 0))
    return Triage(category=rule.name, priority=priority, group=rule.group, matched=matched)


def _known(rules: TriageRules, category: str) -> CategoryRule:
    for name, rule in rules.categories.items():
        if name == category:
            return rule
    raise UnknownCategoryError(category)


def _best_match(rules: TriageRules, text: str) -> tuple[CategoryRule, tuple[str, ...]]:
    best: tuple[CategoryRule, tuple[str, ...]] | None = None
    for name in rules.precedence:  # strict ">" below: earlier categories win ties
        rule = rules.categories[name]
        matched = rule.matches(text)
        if matched and (best is None or len(matched) > len(best[1])):
            best = (rule, matched)
    return best or (rules.categories[rules.fallback], ())


def _priority_for_amount(rule: CategoryRule, asset: str | None, amount: Decimal | None) -> Priority:
    if rule.amount_rule is None or asset is None or amount is None:
        return rule.priority
    threshold = _threshold(rule.amount_rule.thresholds, asset)
    if threshold is None:
        return rule.priority
    return rule.amount_rule.above if amount > threshold else rule.amount_rule.at_or_below


def _threshold(thresholds: dict[str, Decimal], asset: str) -> Decimal | None:
    """Look up "usdt", "USDT" and network-qualified symbols such as "USDT-TRC20"."""
    by_symbol = {symbol.upper(): value for symbol, value in thresholds.items()}
    symbol = asset.strip().upper()
    if symbol in by_symbol:
        return by_symbol[symbol]
    return by_symbol.get(re.split(r"[-_ .]", symbol, maxsplit=1)[0])


def _bump(priority: Priority, levels: int) -> Priority:
    index = min(PRIORITIES.index(priority) + levels, len(PRIORITIES) - 1)
    return PRIORITIES[index]
