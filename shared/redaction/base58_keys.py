"""Base58 private keys: WIF (checksummed) and extended private keys (prefixed)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.redaction.spans import Span

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_DIGITS = bytes.maketrans(_B58_ALPHABET.encode(), bytes(range(58)))
B58_CLASS = "1-9A-HJ-NP-Za-km-z"
# The look-behind fails at once inside a run of Base58, so each run is tried once.
_WIF_CANDIDATE = re.compile(rf"(?<![{B58_CLASS}])[5KL9c][{B58_CLASS}]{{50,51}}(?![{B58_CLASS}])")
_XPRV = re.compile(rf"(?<![{B58_CLASS}])[xyztuvYZUV]prv[{B58_CLASS}]{{100,112}}(?![{B58_CLASS}])")
_WIF_VERSIONS = (0x80, 0xEF)


def b58decode(value: str) -> bytes:
    """Base58 (Bitcoin alphabet) to bytes; every character must be in the alphabet."""
    number = 0
    for digit in value.encode("ascii").translate(_B58_DIGITS):
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    leading_zeros = len(value) - len(value.lstrip("1"))
    return b"\x00" * leading_zeros + body


def _is_wif(candidate: str) -> bool:
    raw = b58decode(candidate)
    payload, checksum = raw[:-4], raw[-4:]
    if len(payload) not in (33, 34) or payload[0] not in _WIF_VERSIONS:
        return False
    if len(payload) == 34 and payload[-1] != 0x01:
        return False
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum


def wif_spans(text: str) -> list[Span]:
    return [
        (m.start(), m.end(), "wif_private_key")
        for m in _WIF_CANDIDATE.finditer(text)
        if _is_wif(m.group())
    ]


def xprv_spans(text: str) -> list[Span]:
    return [(m.start(), m.end(), "extended_private_key") for m in _XPRV.finditer(text)]
