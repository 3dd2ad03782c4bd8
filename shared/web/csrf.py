"""CSRF protection for page forms: a double-submit cookie bound to the page's link.

Showing a form sets a random nonce in the `hs_csrf` cookie (HttpOnly, SameSite=Strict)
and puts `HMAC(key, link token + nonce)` in a hidden field. A POST is accepted only when
the field matches the cookie it came with and the link it was posted to. Another site
can neither read the cookie nor compute the field (it lacks the key), and a field taken
from one page does not work on another link. A form without the cookie or the field is
refused (the page answers 403 with a friendly explanation).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

COOKIE = "hs_csrf"
FIELD = "csrf_token"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class Csrf:
    def __init__(self, secret: bytes) -> None:
        # A key of its own, so a form field never doubles as a link signature.
        self._key = hmac.new(secret, b"helpstream-page-csrf", hashlib.sha256).digest()

    def _field(self, bound_to: str, nonce: str) -> str:
        message = f"{bound_to}\x00{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, request: Request, bound_to: str) -> tuple[str, str]:
        """(nonce for the cookie, value for the hidden field); the browser's nonce is kept."""
        nonce = request.cookies.get(COOKIE, "")
        if not _NONCE.match(nonce):
            nonce = secrets.token_urlsafe(32)
        return nonce, self._field(bound_to, nonce)

    @staticmethod
    def set_cookie(request: Request, response: Response, nonce: str) -> None:
        response.set_cookie(
            COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def valid(self, request: Request, bound_to: str, sent: str | None) -> bool:
        nonce = request.cookies.get(COOKIE, "")
        if not sent or not _NONCE.match(nonce):
            return False
        return hmac.compare_digest(self._field(bound_to, nonce).encode(), sent.encode())
