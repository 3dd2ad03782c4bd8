"""Page mechanics: language choice, catalogues, CSRF, signed status links, rendering."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from services.feedback.pages import TEXTS as FEEDBACK_TEXTS
from services.intake.pages import TEXTS as INTAKE_TEXTS
from services.notifier.pages import TEXTS as NOTIFIER_TEXTS
from shared.tokens import TokenError, sign
from shared.web.csrf import COOKIE, Csrf
from shared.web.i18n import COMMON, Catalogue, page_language
from shared.web.links import TicketLink, sign_ticket_link, verify_ticket_link
from shared.web.render import Pages, local_datetime

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def request(path: str = "/t/abc", query: str = "", cookie: str | None = None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
            "scheme": "http",
            "server": ("testserver", 80),
        }
    )


@pytest.mark.parametrize(
    ("locale", "override", "accept", "expected"),
    [
        ("zh-CN", None, None, "zh-CN"),
        ("zh_TW", None, None, "zh-CN"),
        ("en-GB", None, None, "en"),
        ("zh-CN", "en", None, "en"),
        ("en", "zh-CN", None, "zh-CN"),
        ("en", "fr", None, "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, None, None, "en"),
        ("de", None, None, "en"),
    ],
)
def test_the_page_language_follows_switcher_then_link_then_browser(
    locale: str | None, override: str | None, accept: str | None, expected: str
) -> None:
    assert page_language(locale, override, accept) == expected


@pytest.mark.parametrize("texts", [COMMON, FEEDBACK_TEXTS, INTAKE_TEXTS, NOTIFIER_TEXTS])
def test_every_page_string_exists_in_both_languages(texts: dict[str, dict[str, str]]) -> None:
    assert set(texts["en"]) == set(texts["zh-CN"])


def test_a_missing_string_falls_back_to_english_then_to_its_key() -> None:
    catalogue = Catalogue(COMMON).extend({"en": {"only_en": "Only English"}})
    assert catalogue.text("zh-CN", "only_en") == "Only English"
    assert catalogue.text("zh-CN", "nowhere") == "nowhere"


def test_a_csrf_field_works_only_with_its_cookie_and_its_link() -> None:
    csrf = Csrf(b"secret")
    nonce, field = csrf.issue(request(), "token-a")
    with_cookie = request(cookie=nonce)
    assert csrf.valid(with_cookie, "token-a", field)
    assert not csrf.valid(with_cookie, "token-b", field)
    assert not csrf.valid(request(), "token-a", field)
    assert not csrf.valid(with_cookie, "token-a", None)
    assert not csrf.valid(with_cookie, "token-a", "0" * 64)
    assert not Csrf(b"other").valid(with_cookie, "token-a", field)


def test_a_browser_keeps_its_csrf_cookie_across_pages() -> None:
    csrf = Csrf(b"secret")
    nonce, _ = csrf.issue(request(), "t")
    again, _ = csrf.issue(request(cookie=nonce), "t")
    assert again == nonce
    fresh, _ = csrf.issue(request(cookie="short"), "t")
    assert fresh != "short"


def test_a_status_link_opens_one_ticket_for_one_requester_until_it_expires() -> None:
    link = TicketLink("u-42", "T-1", "zh-CN", "Asia/Shanghai")
    token = sign_ticket_link(b"k", link, NOW, timedelta(days=1))
    assert verify_ticket_link(b"k", token, NOW + timedelta(hours=23)) == link
    with pytest.raises(TokenError, match="expired"):
        verify_ticket_link(b"k", token, NOW + timedelta(days=2))
    with pytest.raises(TokenError, match="forged"):
        verify_ticket_link(b"other", token, NOW)
    inbox = sign(b"k", "inbox", {"requester_id": "u-42"}, NOW, timedelta(days=1))
    with pytest.raises(TokenError, match="wrong_purpose"):
        verify_ticket_link(b"k", inbox, NOW)
    with pytest.raises(TokenError, match="malformed"):
        verify_ticket_link(b"k", "票.据", NOW)
    no_ticket = sign(b"k", "ticket", {"requester_id": "u-42"}, NOW, timedelta(days=1))
    with pytest.raises(TokenError, match="malformed"):
        verify_ticket_link(b"k", no_ticket, NOW)


def test_times_print_in_the_requesters_language_and_zone() -> None:
    assert local_datetime(NOW, "zh-CN", "Asia/Shanghai") == "2026年11月23日 20:00:00"
    assert local_datetime(NOW, "en", "Not/AZone").startswith("Nov 23, 2026, 12:00:00")


def test_an_error_page_is_escaped_localised_and_locked_down() -> None:
    pages = Pages(None, Catalogue(COMMON))
    response = pages.error(
        request(query="lang=zh-CN&token=x&evil=1"),
        lang="zh-CN",
        status=404,
        kind="not_found",
        detail="<script>alert(1)</script>",
        keep=("token",),
    )
    html = bytes(response.body).decode()
    assert response.status_code == 404
    assert '<html lang="zh-CN">' in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "链接无效" in html
    assert 'href="/t/abc?token=x&amp;lang=en"' in html
    assert "evil" not in html
    nonce = re.search(r'<style nonce="([^"]+)"', html)
    assert nonce is not None
    csp = response.headers["content-security-policy"]
    assert f"'nonce-{nonce.group(1)}'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
