"""Signed commands: a command on `helpstream.commands` carries the authority of an API key.

A producer holds an intake API key (`hs_<id>_<random>`). It signs each record with a
key derived from that API key, so one credential serves both doors and revoking the key
revokes its commands too:

    signing_key = HMAC-SHA256(key=api_key, msg="helpstream.commands.v1")
    signature   = HMAC-SHA256(key=signing_key, msg=f"{timestamp}.".encode() + value)

The record carries three headers: `helpstream-key-id` (the `<id>` part of the API key),
`helpstream-timestamp` (Unix seconds) and `helpstream-signature` (`v1=<hex>`). intake
stores the derived signing key next to the key's hash (never the API key itself),
recomputes the signature over the exact bytes received, and refuses a timestamp outside
the replay window; a repeat inside the window is a duplicate command id, which intake
already ignores.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

KEY_ID_HEADER = "helpstream-key-id"
TIMESTAMP_HEADER = "helpstream-timestamp"
SIGNATURE_HEADER = "helpstream-signature"
SIGNATURE_VERSION = "v1"
_DERIVATION_LABEL = b"helpstream.commands.v1"
DEFAULT_REPLAY_WINDOW_S = 300
_MAX_TIMESTAMP_DIGITS = 12
_MAX_SIGNATURE_LENGTH = 128


def signing_key(api_key: str) -> bytes:
    """The key a producer signs with: derived from its API key, never sent anywhere."""
    return hmac.new(api_key.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()


def _signature(key: bytes, timestamp: int, value: bytes) -> str:
    digest = hmac.new(key, f"{timestamp}.".encode() + value, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def key_id_of(api_key: str) -> str:
    """The `<id>` of `hs_<id>_<random>` (what the key-id header carries)."""
    rest = api_key.removeprefix("hs_")
    key_id, sep, secret = rest.partition("_")
    if not api_key.startswith("hs_") or not sep or not key_id or not secret:
        raise ValueError("an API key looks like hs_<id>_<random>")
    return key_id


def sign_headers(api_key: str, value: bytes, now: datetime) -> list[tuple[str, bytes]]:
    """The headers that make `value` a command of `api_key`'s holder (add them to the record)."""
    timestamp = int(now.timestamp())
    return [
        (KEY_ID_HEADER, key_id_of(api_key).encode()),
        (TIMESTAMP_HEADER, str(timestamp).encode()),
        (SIGNATURE_HEADER, _signature(signing_key(api_key), timestamp, value).encode()),
    ]


@dataclass(frozen=True)
class SignedBy:
    """What a record's headers claim; `check` decides whether the claim holds."""

    key_id: str
    timestamp: int
    signature: str


class SignatureError(Exception):
    """Why a record's signature was refused: `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def read_headers(headers: Iterable[tuple[str, bytes]] | None) -> SignedBy:
    """The claimed signer, or `SignatureError("unsigned_command", ...)` when headers lack it."""
    found: dict[str, bytes] = {}
    for name, raw in headers or ():
        if name in (KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
            found[name] = raw or b""
    missing = [h for h in (KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if h not in found]
    if missing:
        raise SignatureError("unsigned_command", f"missing header(s): {', '.join(missing)}")
    try:
        key_id = found[KEY_ID_HEADER].decode("ascii")
        raw_timestamp = found[TIMESTAMP_HEADER].decode("ascii")
        signature = found[SIGNATURE_HEADER].decode("ascii")
    except UnicodeDecodeError as exc:
        raise SignatureError("malformed_signature", "signature headers are not ASCII") from exc
    if not key_id or len(key_id) > 64 or not key_id.isalnum():
        raise SignatureError("malformed_signature", "the key id is not a key id")
    # Unix seconds as plain digits: a bounded number, so the window arithmetic cannot overflow.
    if not raw_timestamp.isdigit() or len(raw_timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError("malformed_signature", "the timestamp is not Unix seconds")
    if len(signature) > _MAX_SIGNATURE_LENGTH:
        raise SignatureError("malformed_signature", "the signature is too long")
    timestamp = int(raw_timestamp)
    return SignedBy(key_id=key_id, timestamp=timestamp, signature=signature)


def check(
    claim: SignedBy,
    key: bytes,
    value: bytes,
    now: datetime,
    window_s: float = DEFAULT_REPLAY_WINDOW_S,
) -> None:
    """Raises `SignatureError` unless `key` signed exactly `value` within the replay window."""
    expected = _signature(key, claim.timestamp, value)
    if not hmac.compare_digest(expected.encode(), claim.signature.encode("ascii", "replace")):
        raise SignatureError("bad_signature", f"not signed by key {claim.key_id}")
    if abs(now.timestamp() - claim.timestamp) > window_s:
        raise SignatureError(
            "stale_command", f"signed at {claim.timestamp}, outside the {window_s:.0f} s window"
        )
