"""Signed, expiring tokens for links sent to requesters (surveys, inbox, ticket status).

`<payload>.<signature>`, both base64url; the payload is JSON with `exp` (epoch seconds)
and a `purpose`, so a survey token cannot open an inbox. HMAC-SHA256 with a server
secret: forging needs the secret, and `verify` compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime, timedelta


class TokenError(Exception):
    """Why a token was refused: `reason` is `malformed`, `forged`, `wrong_purpose` or `expired`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, purpose: str, claims: dict[str, Any], now: datetime, ttl: timedelta) -> str:
    payload = {**claims, "purpose": purpose, "exp": int((now + ttl).timestamp())}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def verify(secret: bytes, purpose: str, token: str, now: datetime) -> dict[str, Any]:
    """The token's claims, or `TokenError` saying why not."""
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise TokenError("malformed")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise TokenError("forged")
    try:
        claims = json.loads(_unb64(body))
    except ValueError as exc:
        raise TokenError("malformed") from exc
    if not isinstance(claims, dict) or claims.get("purpose") != purpose:
        raise TokenError("wrong_purpose")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now.timestamp():
        raise TokenError("expired")
    return claims
