"""Server-rendered pages: Jinja2 on a shared base layout, Babel dates, safe headers.

Every page extends `base.html` (lang attribute, viewport meta, skip link, language
switcher, inline CSS). Templates are autoescaped; the only inline `<style>` and
`<script>` carry a per-response CSP nonce, so injected markup can neither style nor
script the page. Pages are opened by bearer links, so responses are `no-store` and send
no referrer (the token in the URL must not leak to other sites).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale
from babel.dates import format_datetime
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, pass_context

from shared.web.i18n import LANGUAGE_NAMES, LANGUAGES, Catalogue

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from jinja2.runtime import Context
    from starlette.requests import Request

SHARED_TEMPLATES = Path(__file__).parent / "templates"
ERROR_KINDS = ("not_found", "expired", "forbidden", "unavailable")


def zone(name: str | None) -> ZoneInfo:
    """The named time zone; UTC when it is missing or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_datetime(when: datetime, lang: str, timezone: str | None, fmt: str = "medium") -> str:
    """`when` as the requester reads it: their language, their time zone."""
    return format_datetime(
        when, format=fmt, tzinfo=zone(timezone), locale=Locale.parse(lang.replace("-", "_"))
    )


@pass_context
def _localtime(context: Context, value: datetime | None, fmt: str = "medium") -> str:
    if not isinstance(value, datetime):
        return ""
    return local_datetime(value, context["lang"], context["timezone"], fmt)


def switcher(request: Request, lang: str, keep: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Links to this page in every language; only the query parameters in `keep` stay."""
    links = []
    for code in LANGUAGES:
        query = [(k, v) for k, v in request.query_params.multi_items() if k in keep]
        query.append(("lang", code))
        links.append(
            {
                "code": code,
                "name": LANGUAGE_NAMES[code],
                "href": f"{request.url.path}?{urlencode(query)}",
                "current": code == lang,
            }
        )
    return links


def secure_headers(response: HTMLResponse, nonce: str) -> None:
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"


class Pages:
    """Renders a service's page templates (its folder first, then the shared ones)."""

    def __init__(self, folder: Path | None, catalogue: Catalogue) -> None:
        loaders = [FileSystemLoader(folder)] if folder is not None else []
        loaders.append(FileSystemLoader(SHARED_TEMPLATES))
        self.catalogue = catalogue
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["localtime"] = _localtime

    def render(
        self,
        request: Request,
        template: str,
        *,
        lang: str,
        timezone: str | None = None,
        status: int = 200,
        keep: Iterable[str] = (),
        context: Mapping[str, Any] | None = None,
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        values: dict[str, Any] = {
            "lang": lang,
            "timezone": timezone or "UTC",
            "nonce": nonce,
            "switcher": switcher(request, lang, keep),
            "t": lambda key: self.catalogue.text(lang, key),
            **(context or {}),
        }
        html = self.env.get_template(template).render(values)
        response = HTMLResponse(html, status_code=status)
        secure_headers(response, nonce)
        return response

    def error(
        self,
        request: Request,
        *,
        lang: str,
        status: int,
        kind: str,
        detail: str | None = None,
        keep: Iterable[str] = (),
    ) -> HTMLResponse:
        """A friendly explanation (never a stack trace or a JSON problem) for a page."""
        assert kind in ERROR_KINDS, kind
        return self.render(
            request,
            "error.html",
            lang=lang,
            status=status,
            keep=keep,
            context={
                "title": self.catalogue.text(lang, f"{kind}_title"),
                "detail": detail or self.catalogue.text(lang, f"{kind}_detail"),
            },
        )
