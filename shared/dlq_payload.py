"""What a dead-lettered message keeps: its payload with requester secrets redacted.

A DLQ is read by operators and replayed by tools, and it is kept for a long time, so it
falls under the same rule as the ticket store: a seed phrase or private key that reaches it
counts as leaked. Poison is often exactly the message that missed the redaction at intake
(an over-size command, a forged event), so the DLQ cannot rely on it having happened.

- JSON (UTF-8): every string, key or value, at any depth goes through `redact`; when
  anything was found the document is written again (compact, UTF-8), otherwise the
  original bytes are kept as they were, so a clean message can be replayed unchanged.
- Anything else (and JSON with a string too long for `redact`): the text form
  (undecodable bytes kept as they are) is redacted and cut to `TEXT_LIMIT` bytes: an
  unparseable payload is kept for diagnosis, not for replay, and a megabyte of it helps
  no one.

Headers say what happened: `dlq-redacted` (the kinds found) and `dlq-truncated-from`
(the original size in bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.redaction import TextTooLong, redact

TEXT_LIMIT = 64 * 1024  # bytes kept of a payload that is not JSON
_CUT_MARGIN = 4 * 1024  # scanned past the cut: a secret there is removed whole, not halved
REDACTED_HEADER = "dlq-redacted"
TRUNCATED_HEADER = "dlq-truncated-from"


@dataclass(frozen=True)
class Scrubbed:
    value: bytes | None
    headers: list[tuple[str, bytes]]


def scrub(value: bytes | None) -> Scrubbed:
    """The payload as the DLQ may keep it, and the headers that say what was changed."""
    if not value:
        return Scrubbed(value, [])
    kinds: set[str] = set()
    document = _json(value)
    if document is not None:
        try:
            cleaned = _walk(document[0], kinds)
            out = _dumps(cleaned) if kinds else value
        except (RecursionError, TextTooLong):  # too deep or too long to walk: as text
            kinds.clear()
        else:
            found = ",".join(sorted(kinds)).encode()
            return Scrubbed(out, [(REDACTED_HEADER, found)] if kinds else [])
    # Only what can be kept is scanned, with a margin so a phrase across the cut is seen whole.
    window = value[: TEXT_LIMIT + _CUT_MARGIN]
    text = redact(window.decode("utf-8", "surrogateescape"))
    out = text.text.encode("utf-8", "surrogateescape")  # undecodable bytes come back as is
    headers: list[tuple[str, bytes]] = []
    if text.kinds:
        headers.append((REDACTED_HEADER, ",".join(text.kinds).encode()))
    if len(value) > len(window) or len(out) > TEXT_LIMIT:
        out = out[:TEXT_LIMIT]
        headers.append((TRUNCATED_HEADER, str(len(value)).encode()))
    return Scrubbed(out, headers)


def redact_text(text: str) -> str:
    """A short text (an error message that may quote the input) with secrets removed."""
    return redact(text).text


def _json(value: bytes) -> tuple[Any] | None:
    """The parsed document (in a 1-tuple, as `null` is a document), or None if not JSON."""
    try:
        return (json.loads(value.decode("utf-8")),)
    except (ValueError, RecursionError):  # bad UTF-8 / JSON, over-long integers, too deep
        return None


def _dumps(document: Any) -> bytes:
    try:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate (`"\\ud800"`) stays escaped
        return json.dumps(document, separators=(",", ":")).encode()


def _walk(node: Any, kinds: set[str]) -> Any:
    if isinstance(node, str):
        found = redact(node)
        kinds.update(found.kinds)
        return found.text
    if isinstance(node, list):
        return [_walk(item, kinds) for item in node]
    if isinstance(node, dict):
        return {_walk(key, kinds): _walk(item, kinds) for key, item in node.items()}
    return node
