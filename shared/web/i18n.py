"""Which language a page speaks, and the strings every page shares.

A page speaks the language of the signed link's locale (any `zh*` locale is zh-CN,
anything else en), unless the requester picked another one with the switcher
(`?lang=`). Services add their own strings with `Catalogue.extend`; a key missing in
one language falls back to English, then to the key itself, so a page never breaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
FALLBACK = "en"
LANGUAGE_NAMES: dict[str, str] = {"zh-CN": "中文", "en": "English"}


def page_language(
    locale: str | None, override: str | None = None, accept_language: str | None = None
) -> str:
    """`override` (the switcher) when it names a supported language; else the link's
    locale; else, when the link tells nothing (a broken link), the browser's first choice."""
    first_accepted = (accept_language or "").split(",")[0].split(";")[0].strip()
    for wanted in (override, locale, first_accepted):
        if not wanted:
            continue
        if wanted in LANGUAGES:
            return wanted
        if wanted.lower().replace("_", "-").startswith("zh"):
            return "zh-CN"
        if wanted.lower().startswith("en"):
            return "en"
    return FALLBACK


COMMON: dict[str, dict[str, str]] = {
    "en": {
        "brand": "Support",
        "language": "Language",
        "skip": "Skip to content",
        "footer_safety": "We will never ask for your seed phrase or private keys.",
        "error_title": "This link cannot be opened",
        "error_back": "If you still need help, reply to the email we sent you or open a new "
        "request in the app.",
        "forbidden_title": "This form has expired",
        "forbidden_detail": "For your security the form could not be sent. Reload the page "
        "and try again.",
        "not_found_title": "Link not valid",
        "not_found_detail": "This link is not valid or does not belong to you. Check that you "
        "copied the whole link from the email.",
        "expired_title": "Link expired",
        "expired_detail": "This link has expired. Links in our emails only work for a "
        "limited time to keep your account safe.",
        "unavailable_title": "Temporarily unavailable",
        "unavailable_detail": "This page is not available right now. Please try again later.",
    },
    "zh-CN": {
        "brand": "客服中心",
        "language": "语言",
        "skip": "跳到正文",
        "footer_safety": "我们绝不会向您索要助记词或私钥。",
        "error_title": "无法打开此链接",
        "error_back": "如仍需帮助，请直接回复我们发给您的邮件，或在 App 中提交新的请求。",
        "forbidden_title": "表单已失效",
        "forbidden_detail": "为了您的安全，表单未能提交。请刷新页面后重试。",
        "not_found_title": "链接无效",
        "not_found_detail": "此链接无效或不属于您。请确认您复制了邮件中的完整链接。",
        "expired_title": "链接已过期",
        "expired_detail": "此链接已过期。为保护您的账户安全，邮件中的链接仅在有限时间内有效。",
        "unavailable_title": "暂时无法使用",
        "unavailable_detail": "此页面暂时无法访问，请稍后再试。",
    },
}


class Catalogue:
    """Strings per language; `text(lang, key)` never fails."""

    def __init__(self, strings: Mapping[str, Mapping[str, str]] = COMMON) -> None:
        self._strings: dict[str, dict[str, str]] = {k: dict(v) for k, v in strings.items()}

    def extend(self, strings: Mapping[str, Mapping[str, str]]) -> Catalogue:
        """A new catalogue with `strings` added (a service's own page texts)."""
        merged = Catalogue(self._strings)
        for lang, texts in strings.items():
            merged._strings.setdefault(lang, {}).update(texts)
        return merged

    def text(self, lang: str, key: str) -> str:
        found = self._strings.get(lang, {}).get(key)
        if found is None:
            found = self._strings.get(FALLBACK, {}).get(key, key)
        return found

    def keys(self, lang: str) -> set[str]:
        return set(self._strings.get(lang, {}))
