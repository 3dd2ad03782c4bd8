"""Threading email replies into tickets without a lookup across services.

notifier signs what it puts into outgoing mail; the inbound mail gateway verifies it.
Both hold `HELPSTREAM_MAIL_THREAD_SECRET`. A reply names its ticket in two ways, either
enough on its own, and neither can be forged without the secret:

- the reply address `support+<ticket>.<sig>@<domain>` (survives clients that drop
  `In-Reply-To`, and forwarding by the requester);
- the Message-ID `<<ticket>.<nonce>.<sig>@<domain>>` of the mail it answers, which
  mail clients copy into `In-Reply-To` and `References`.

`<ticket>` is the ticket id (a UUID, written as 32 lower-case hex digits; other ids in
lower-case base32). Everything is lower case because mail systems may fold the case of
local parts. Signatures are truncated HMAC-SHA256 (60 bits in the address, which must fit
the 64-character local part; 80 in the Message-ID): forging one means guessing it, and a
wrong guess threads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

LOCAL_PART_MAX = 64
_ADDRESS_SIG_CHARS = 12
_MESSAGE_SIG_CHARS = 16
_TOKEN = re.compile(r"^(?P<ticket>[a-z2-7]+|[0-9a-f]{32})\.(?P<sig>[a-z2-7]+)$")
_MESSAGE_ID = re.compile(
    r"^<?(?P<ticket>[a-z2-7]+|[0-9a-f]{32})\.(?P<nonce>[a-z0-9]{1,40})\.(?P<sig>[a-z2-7]+)@"
    r"(?P<domain>[^>\s]+)>?$"
)


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unb32(text: str) -> bytes:
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))


def _encode_ticket(ticket_id: str) -> str:
    try:
        return uuid.UUID(ticket_id).hex if len(ticket_id) == 36 else _b32(ticket_id.encode())
    except ValueError:
        return _b32(ticket_id.encode())


def _decode_ticket(token: str) -> str | None:
    if len(token) == 32 and all(c in "0123456789abcdef" for c in token):
        return str(uuid.UUID(hex=token))
    try:
        return _unb32(token).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _sign(secret: bytes, purpose: str, text: str, chars: int) -> str:
    digest = hmac.new(secret, f"{purpose}:{text}".encode(), hashlib.sha256).digest()
    return _b32(digest)[:chars]


def reply_address(secret: bytes, ticket_id: str, mailbox: str) -> str | None:
    """`support+<ticket>.<sig>@domain` for `mailbox` `support@domain`; None when the
    ticket id is too long for a local part (the Message-ID still threads replies)."""
    local, _, domain = mailbox.rpartition("@")
    token = _encode_ticket(ticket_id)
    tagged = f"{local}+{token}.{_sign(secret, 'reply', token, _ADDRESS_SIG_CHARS)}"
    return f"{tagged}@{domain}" if local and len(tagged) <= LOCAL_PART_MAX else None


def ticket_of_address(secret: bytes, address: str) -> str | None:
    """The ticket a signed reply address names, or None (untagged, forged, malformed)."""
    local, _, _ = address.strip().lower().rpartition("@")
    _, plus, tag = local.partition("+")
    found = _TOKEN.match(tag) if plus else None
    if found is None:
        return None
    expected = _sign(secret, "reply", found["ticket"], _ADDRESS_SIG_CHARS)
    if not hmac.compare_digest(expected, found["sig"]):
        return None
    return _decode_ticket(found["ticket"])


def message_id(secret: bytes, ticket_id: str, nonce: str, domain: str) -> str:
    """A Message-ID that names its ticket; `nonce` (e.g. the delivery's key) makes it
    unique per mail and the same for a resend of that mail."""
    token = _encode_ticket(ticket_id)
    short = _b32(hashlib.sha256(nonce.encode()).digest())[:20]
    sig = _sign(secret, "message", f"{token}.{short}", _MESSAGE_SIG_CHARS)
    return f"<{token}.{short}.{sig}@{domain}>"


def ticket_of_message_id(secret: bytes, value: str) -> str | None:
    """The ticket a Message-ID of ours names, or None (someone else's, forged, malformed)."""
    found = _MESSAGE_ID.match(value.strip().lower())
    if found is None:
        return None
    expected = _sign(secret, "message", f"{found['ticket']}.{found['nonce']}", _MESSAGE_SIG_CHARS)
    if not hmac.compare_digest(expected, found["sig"]):
        return None
    return _decode_ticket(found["ticket"])


def ticket_of_references(secret: bytes, *headers: str | None) -> str | None:
    """The ticket named by the newest of our Message-IDs in `In-Reply-To`/`References`."""
    for header in headers:
        for candidate in reversed(re.findall(r"<[^<>\s]{1,250}>", header or "")):
            ticket = ticket_of_message_id(secret, candidate)
            if ticket is not None:
                return ticket
    return None
