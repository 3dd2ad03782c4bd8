"""Crypto-shredding of personal fields in events on Kafka: pure mechanics, no I/O.

A topic keeps every record until its retention ends, and consumers (ours, a replay, a
platform's analytics) read it from the beginning; anonymizing databases does not reach
it. So the personal fields of ticket events (the requester's address, the subject,
transfer details, message bodies) leave the outbox sealed with AES-256-GCM under a key
of that requester's own (`shared.keyring`). Erasure destroys the key: every copy of those
fields in every topic, replica and backup becomes unreadable at once, while the rest of
each event (ids, status, clocks) stays usable for replays.

A sealed field is a JSON string `hs-sealed:v1:<key id>:<base64url(nonce ‖ ciphertext)>`;
the key id, the event id and the field's path are bound as associated data, so a sealed
value copied into another event or field does not open. Opening replaces each sealed
field with its plaintext, or, when the key is gone, with the field's erased value
(`[erased]` for texts, null for the address and transfer details), which every consumer
already accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "hs-sealed:v1:"
MARK = PREFIX.encode()
ERASED_TEXT = "[erased]"
KEY_BYTES = 32
_NONCE = 12

Path = tuple[str, ...]

# Event type → personal field → what stands in its place once the key is destroyed.
# Every ticket event names its requester in `ticket.requester_id` (TicketSummary).
PERSONAL_FIELDS: dict[str, dict[Path, Any]] = {
    "helpstream.ticket.created": {
        ("requester", "email"): None,
        ("subject",): ERASED_TEXT,
        ("crypto",): None,
    },
    "helpstream.ticket.message_added": {("body",): ERASED_TEXT},
    # the mail gateway's command and bounces, under the sender's address (`mail_owner`)
    "helpstream.ticket.receive_mail": {
        ("sender",): ERASED_TEXT,
        ("sender_name",): None,
        ("subject",): ERASED_TEXT,
        ("body",): ERASED_TEXT,
        ("attachments",): [],
    },
    "helpstream.mail.bounced": {("address",): ERASED_TEXT, ("diagnostic",): ""},
}
REQUESTER_PATH: Path = ("ticket", "requester_id")


@dataclass(frozen=True)
class RequesterKey:
    """The key to seal a requester's fields with; `erased_before`: events made up to
    this time belong to data already erased and leave with their fields erased."""

    key_id: str
    key: bytes
    erased_before: datetime | None = None


def mail_owner(address: str) -> str:
    """Whose key seals what the mail gateway says about an address: the gateway does not
    know the requester, intake does, and destroys this key with the requester's."""
    return "mail:" + hashlib.sha256(address.strip().casefold().encode()).hexdigest()


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _aad(key_id: str, event_id: str, path: Path) -> bytes:
    return "\x1f".join((key_id, event_id, *path)).encode()


def seal_value(key: RequesterKey, event_id: str, path: Path, value: Any) -> str:
    nonce = os.urandom(_NONCE)
    plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = AESGCM(key.key).encrypt(nonce, plaintext, _aad(key.key_id, event_id, path))
    return f"{PREFIX}{key.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def open_value(keys: Mapping[str, bytes], event_id: str, path: Path, sealed: str) -> Any:
    """The plaintext, or `KeyError` when the key is gone (or the value was tampered)."""
    key_id, _, blob = sealed.removeprefix(PREFIX).partition(":")
    key = keys.get(key_id)
    if key is None:
        raise KeyError(key_id)
    try:
        raw = base64.urlsafe_b64decode(blob)
        plaintext = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(key_id, event_id, path))
    except (InvalidTag, ValueError) as exc:
        raise KeyError(key_id) from exc
    return json.loads(plaintext)


def _get(data: Mapping[str, Any], path: Path) -> tuple[Mapping[str, Any] | None, Any]:
    """(the mapping holding the last step, the value) or (None, None) when absent."""
    node: Any = data
    for step in path[:-1]:
        node = node.get(step) if isinstance(node, dict) else None
    if not isinstance(node, dict) or path[-1] not in node:
        return None, None
    return node, node[path[-1]]


def _time(event: Mapping[str, Any]) -> datetime:
    """The event's time; an event without a readable one counts as made long ago."""
    try:
        made = datetime.fromisoformat(str(event.get("time")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return made if made.tzinfo else made.replace(tzinfo=UTC)


def personal_fields(event: Mapping[str, Any]) -> dict[Path, Any]:
    return PERSONAL_FIELDS.get(str(event.get("type")), {})


def requester_of(event: Mapping[str, Any]) -> str | None:
    """The requester whose key seals this event, if it has personal fields."""
    if not personal_fields(event):
        return None
    _, requester = _get(event.get("data") or {}, REQUESTER_PATH)
    return requester if isinstance(requester, str) and requester else None


def seal_event(event: dict[str, Any], key: RequesterKey) -> tuple[int, int]:
    """Seals the event's personal fields in place, or erases them when the event was made
    before its requester's data was erased. Returns (sealed, erased)."""
    data = event.get("data")
    if not isinstance(data, dict):
        return 0, 0
    erase = key.erased_before is not None and _time(event) <= key.erased_before
    sealed = erased_count = 0
    for path, erased in personal_fields(event).items():
        holder, value = _get(data, path)
        if holder is None or value is None or value == erased:
            continue
        if isinstance(value, str) and value.startswith(PREFIX):
            continue  # sealed already (a republished outbox entry)
        assert isinstance(holder, dict)
        if erase:
            holder[path[-1]] = erased
            erased_count += 1
        else:
            holder[path[-1]] = seal_value(key, str(event["id"]), path, value)
            sealed += 1
    return sealed, erased_count


def sealed_key_ids(event: Mapping[str, Any]) -> set[str]:
    ids = set()
    for path in personal_fields(event):
        _, value = _get(event.get("data") or {}, path)
        if isinstance(value, str) and value.startswith(PREFIX):
            ids.add(value.removeprefix(PREFIX).partition(":")[0])
    return ids


def open_event(event: dict[str, Any], keys: Mapping[str, bytes]) -> tuple[int, int]:
    """Opens the event's sealed fields in place; a field whose key is gone gets its
    erased value. Returns (opened, erased)."""
    opened = erased = 0
    data = event.get("data")
    if not isinstance(data, dict):
        return 0, 0
    for path, erased_value in personal_fields(event).items():
        holder, value = _get(data, path)
        if holder is None or not (isinstance(value, str) and value.startswith(PREFIX)):
            continue
        assert isinstance(holder, dict)
        try:
            holder[path[-1]] = open_value(keys, str(event.get("id")), path, value)
            opened += 1
        except KeyError:
            holder[path[-1]] = erased_value
            erased += 1
    return opened, erased
