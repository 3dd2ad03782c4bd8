"""Ed25519 (Solana) secret keys: 64 bytes, as Base58, as 128 hex digits, or as a JSON array
of byte values (``solana-keygen``'s file format).

A Solana transaction signature is also 64 bytes in Base58 (87-88 characters), and agents
need it. What tells them apart is arithmetic, not wording: a secret key's last 32 bytes are
the Ed25519 public key of its first 32, while a signature's halves are unrelated.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.redaction.base58_keys import B58_CLASS, b58decode
from shared.redaction.hex_keys import LabelContext

if TYPE_CHECKING:
    from shared.redaction.spans import Span

# 64 bytes are 87-88 Base58 characters, fewer when the key starts with zero bytes (each
# written as a "1", where it would have taken 1.37 characters).
_B58_64 = re.compile(rf"(?<![{B58_CLASS}])[{B58_CLASS}]{{64,90}}(?![{B58_CLASS}])")
_HEX128 = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]{128}(?![0-9A-Za-z])")
# 32 to 64 integers in brackets; counted and range-checked in Python. Each "[" is tried
# once and reads at most 64 numbers, so the scan stays linear.
_BYTE_ARRAY = re.compile(r"\[\s*\d{1,3}(?:\s*,\s*\d{1,3}){31,63}\s*,?\s*\]")
_NUMBER = re.compile(r"\d+")

# Ed25519 checks per text (about 40 µs each). Past this many, every further 64-byte
# candidate counts as a key unchecked: an honest ticket holds a handful of signatures, and
# a flood of key-shaped strings must not buy unbounded work.
MAX_KEY_CHECKS = 2_000


class _Checker:
    """Ed25519 key-pair checks with a per-text budget."""

    def __init__(self) -> None:
        self.left = MAX_KEY_CHECKS

    def is_key_pair(self, raw: bytes) -> bool:
        if self.left <= 0:
            return True
        self.left -= 1
        public = Ed25519PrivateKey.from_private_bytes(raw[:32]).public_key()
        return public.public_bytes_raw() == raw[32:]


def solana_key_spans(text: str) -> list[Span]:
    """Base58 and hex strings of 64 bytes whose second half is the public key of the first."""
    checker = _Checker()
    spans: list[Span] = []
    for match in _B58_64.finditer(text):
        raw = b58decode(match.group())
        if len(raw) == 64 and checker.is_key_pair(raw):
            spans.append((match.start(), match.end(), "solana_secret_key"))
    for match in _HEX128.finditer(text):
        raw = bytes.fromhex(match.group()[-128:])
        if checker.is_key_pair(raw):
            spans.append((match.start(), match.end(), "solana_secret_key"))
    return spans


def byte_array_key_spans(text: str, context: LabelContext | None = None) -> list[Span]:
    """Arrays of byte values that hold a key: 64 numbers (a Solana key file) always; 32
    numbers when the words around call them a key (a bare 32-byte seed is too common a
    shape, hashes and ids among them, to remove unlabelled)."""
    spans: list[Span] = []
    for match in _BYTE_ARRAY.finditer(text):
        numbers = _NUMBER.findall(match.group())
        if len(numbers) not in (32, 64) or any(int(n) > 255 for n in numbers):
            continue
        if len(numbers) == 32:
            context = context or LabelContext(text)
            if context.verdict(match.start(), match.end()) != "key":
                continue
        spans.append((match.start(), match.end(), "byte_array_key"))
    return spans
