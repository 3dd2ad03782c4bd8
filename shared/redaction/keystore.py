"""Encrypted wallet files (Ethereum keystore v3 JSON) and the password pasted next to them.

A keystore is only as strong as its password, and a user who pastes one usually pastes the
password with it, so both are removed: the whole JSON object (not only its ciphertext: the
KDF parameters and MAC are what a cracker needs), and a password-labelled value on the
lines around it. A password far from any keystore is no wallet secret and is left alone.
"""

from __future__ import annotations

import bisect
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.redaction.spans import Span

KEYSTORE_KIND = "keystore_json"
PASSWORD_KIND = "keystore_password"

# What the scan looks at: braces, and the two keys a keystore cannot lack: "crypto" (geth's
# older files: "Crypto") holding an object, and "ciphertext" holding a string. Quotes may
# be escaped, when the keystore was pasted inside another JSON string.
_KEYS = r"""(?:crypto|Crypto|CRYPTO)\\?["']\s*:(?=\s*\{)|ciphertext\\?["']\s*:(?=\s*\\?["'])"""
# Each alternative starts with a literal or a set: the engine skips ahead between them.
_EVENTS = re.compile(rf"""[{{}}]|["'](?:{_KEYS})|\\["'](?:{_KEYS})""")
_PASSWORD_LABEL = re.compile(
    r"(?:(?<![a-z])(?:password|passphrase|passwd|pwd|pw|pass(?=\s*[:：=]))(?![a-z])"
    r"(?:\s+(?:for|of)\s+(?:it|this|that|the|my)(?:\s+\w+)?)?"
    r"(?:[ \t]+(?:is|was))?"
    r"|(?:密码|口令|密碼)(?:[ \t]*(?:是|为|為))?)"
    r"[ \t]*[:：=-]?[ \t]*(?:\n[ \t]*)?",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"""["'“‘]([^"'”’\n]{1,200})["'”’]""")
_VALUE = re.compile(r"[^\s，。；、]{1,200}")
# How far from a keystore a password label may stand, in lines.
_NEAR_LINES = 3


def _keystore_objects(text: str) -> list[tuple[int, int]]:
    """(start, end) of every outermost JSON object holding a "crypto" object or a
    "ciphertext", in one pass with a stack of open braces. An object left open at the end
    of the text runs to the end (a truncated paste)."""
    if "rypto" not in text and "RYPTO" not in text and "ciphertext" not in text:
        return []  # the common case, at the cost of a substring search
    stack: list[int] = []
    marked: list[bool] = []
    found: list[tuple[int, int]] = []
    for event in _EVENTS.finditer(text):
        if event.group() == "{":
            stack.append(event.start())
            marked.append(False)
        elif event.group() == "}":
            if stack:
                start, mark = stack.pop(), marked.pop()
                if mark:
                    found.append((start, event.end()))
        elif stack:
            # "crypto" marks the keystore that holds it; "ciphertext" the crypto object it
            # sits in (which is all there is when only that part was pasted).
            marked[-1] = True
    for start, mark in zip(stack, marked, strict=True):
        if mark:
            found.append((start, len(text)))
            break  # every later open object lies inside this one
    outermost: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if not outermost or start >= outermost[-1][1]:
            outermost.append((start, end))
    return outermost


def _password_value(text: str, at: int) -> tuple[int, int] | None:
    """The value right after a password label (which ends past any line break after it):
    a quoted string, else the next run of non-blank characters. Both are bounded, so a
    label costs a constant amount of work however long its line."""
    quoted = _QUOTED.match(text, at)
    if quoted:
        return quoted.start(), quoted.end()
    value = _VALUE.match(text, at)
    if value is None or not any(c.isalnum() for c in value.group()):
        return None  # "I forgot the password, ..." names no password
    return value.span()


def keystore_spans(text: str) -> list[Span]:
    """Keystore objects, and the nearest password-labelled value before and after each
    (within a few lines). Labels are found once and looked up by bisection."""
    objects = _keystore_objects(text)
    if not objects:
        return []
    spans: list[Span] = [(start, end, KEYSTORE_KIND) for start, end in objects]
    newlines = [m.start() for m in re.finditer("\n", text)]
    labels = [m.span() for m in _PASSWORD_LABEL.finditer(text)]
    label_starts = [start for start, _ in labels]

    def line_of(position: int) -> int:
        return bisect.bisect_left(newlines, position)

    for start, end in objects:
        first_line, last_line = line_of(start) - _NEAR_LINES, line_of(end) + _NEAR_LINES
        after = bisect.bisect_left(label_starts, end)
        before = bisect.bisect_left(label_starts, start) - 1
        candidates = []
        if after < len(labels) and line_of(labels[after][0]) <= last_line:
            candidates.append(labels[after])
        if before >= 0 and line_of(labels[before][0]) >= first_line:
            candidates.append(labels[before])
        for _, label_end in candidates:
            value = _password_value(text, label_end)
            if value is not None:
                spans.append((*value, PASSWORD_KIND))
    return spans
