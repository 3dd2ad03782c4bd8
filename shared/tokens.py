"""Signed, expiring tokens for links sent to requesters (surveys, inbox, ticket status).

`<payload>.<signature>`, both base64url; the payload is JSON with `exp` (epoch seconds)
and a `purpose`, so a survey token cannot open an inbox. HMAC-SHA256 with a server
secret: forging needs the secret, and `verify` compares in constant time.

Secrets rotate without breaking outstanding links: a token names the key that signed it
(`kid`, a short hash of the secret, so nothing else needs configuring), new tokens are
signed with the current secret, and a token signed with the previous one still verifies
until it expires or the previous secret is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from pydantic import SecretStr


@dataclass(frozen=True)
class SigningKeys:
    """The secret that signs new tokens, and older ones that still verify."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, current: SecretStr, *previous: SecretStr | None) -> SigningKeys:
        return cls(
            current.get_secret_value().encode(),
            tuple(p.get_secret_value().encode() for p in previous if p is not None),
        )

    def by_kid(self, kid: object) -> bytes | None:
        for key in (self.current, *self.previous):
            if key_id(key) == kid:
                return key
        return None


def key_id(secret: bytes) -> str:
    """Names a secret without revealing it: what a token's `kid` claim holds."""
    return hashlib.sha256(b"helpstream-token-kid:" + secret).hexdigest()[:12]


def _keys(secret: bytes | SigningKeys) -> SigningKeys:
    return secret if isinstance(secret, SigningKeys) else SigningKeys(secret)


class TokenError(Exception):
    """Why a token was refused: `reason` is `malformed`, `forged`, `wrong_purpose` or `expired`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(
    secret: bytes | SigningKeys,
    purpose: str,
    claims: dict[str, Any],
    now: datetime,
    ttl: timedelta,
) -> str:
    key = _keys(secret).current
    payload = {
        **claims,
        "purpose": purpose,
        "exp": int((now + ttl).timestamp()),
        "kid": key_id(key),
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def verify(secret: bytes | SigningKeys, purpose: str, token: str, now: datetime) -> dict[str, Any]:
    """The token's claims, or `TokenError` saying why not."""
    body, _, signature = token.partition(".")
    if not body or not signature or not token.isascii():
        raise TokenError("malformed")
    try:
        claims = json.loads(_unb64(body))
    except ValueError as exc:
        raise TokenError("malformed") from exc
    if not isinstance(claims, dict):
        raise TokenError("malformed")
    key = _keys(secret).by_kid(claims.get("kid"))
    if key is None:
        raise TokenError("forged")  # signed by no secret this service holds
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise TokenError("forged")
    if claims.get("purpose") != purpose:
        raise TokenError("wrong_purpose")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now.timestamp():
        raise TokenError("expired")
    return claims
