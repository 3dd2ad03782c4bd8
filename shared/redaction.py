"""Remove seed phrases and private keys from ticket text before anything stores it.

Real support never needs a user's secrets, and a ticket store is read by many agents and
copied to backups, so a secret that reaches it counts as leaked. Redaction errs on the side
of removing too much, except where that would destroy what agents need to help: addresses
and transaction hashes are never touched.

What is redacted, and why:

- ``bip39_mnemonic``: a run of at least 12 BIP-39 English words with nothing but separators
  between them (whitespace, commas and other list punctuation, numbering such as ``1.``,
  ``2)``, ``#3``). Any run of 12 or more counts, not only the valid lengths 12/15/18/21/24
  with a good checksum: a user who pastes 13 words has a typo or an extra word in a real
  phrase, and a partial phrase still hands most of the wallet to a brute-forcer. A word
  also counts when its first four letters are those of a list word (BIP-39 words are unique
  by their first four letters, and wallets accept such abbreviations and end-of-word typos).
  Ordinary prose does not form such runs: "the", "a", "to", "is", "my", "I" are not in the
  list, so real sentences break the run long before twelve words.
- ``hex_private_key``: exactly 64 hex digits, with or without ``0x``, *when key words are
  near*. Ethereum/Tron transaction hashes (``0x`` + 64 hex) and Bitcoin txids (64 hex) have
  the same shape as raw keys, so the shape alone decides nothing. The rule:

  1. The context is the sentence or line holding the hex string (split at line breaks and
     at ``. ! ? ; 。！？；``). If the string stands alone on its line, the nearest non-blank
     line above (up to three back) counts as its context too (``Private key:\\n0x...``).
  2. Key words: ``private key``, ``privkey``, ``priv key``, ``secret``, ``seed``, ``私钥``,
     ``密钥``, ``秘钥``. Transaction words: ``tx``, ``txid``, ``txn``, ``txhash``, ``hash``,
     ``transaction``, ``交易``, ``哈希``.
  3. No key word in the context: kept (a transaction hash or txid; the ``0x`` prefix is no
     evidence either way, as Ethereum keys are often pasted with it).
  4. Key word and no transaction word: redacted.
  5. Both: the nearest word decides, and a word before the hex string beats any word after
     it, since labels precede values (``tx hash: 0x..., private key: 0x...``). A tie redacts.

- ``wif_private_key``: a Base58Check string of 51 or 52 characters starting with 5/K/L
  (mainnet) or 9/c (testnet) whose payload is a WIF key (version 0x80/0xEF, 32 key bytes,
  optional 0x01 compression flag) and whose checksum is valid. The checksum is what tells
  a key from an address or other Base58 text, so no context is needed.
- ``extended_private_key``: ``xprv``/``yprv``/``zprv``/``tprv``/``uprv``/``vprv`` (and the
  multisig ``Yprv``/``Zprv``/``Uprv``/``Vprv``) followed by 100-112 Base58 characters. The
  prefix is unambiguous, so even a mangled key (bad checksum) is removed.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from dataclasses import dataclass

from mnemonic import Mnemonic

MIN_MNEMONIC_WORDS = 12

REDACTION_WARNING: dict[str, str] = {
    "en": (
        "For your safety we removed what looked like a seed phrase or private key from your "
        "message. Never share your seed phrase or private keys with anyone: our real support "
        "team will never ask for them, and anyone who does is a scammer. If you have shared "
        "them anywhere else, assume they are compromised and move your funds to a new wallet "
        "right away."
    ),
    "zh-CN": (
        "为了您的资金安全，我们已删除您消息中疑似助记词或私钥的内容。请勿向任何人透露您的助记词或"
        "私钥：官方客服绝不会向您索要，任何索要者都是骗子。如果您曾在其他地方泄露过，请视为已被盗"
        "用，并立即将资产转移到新的钱包。"
    ),
}


@dataclass(frozen=True)
class Redaction:
    text: str
    kinds: tuple[str, ...]

    @property
    def redacted(self) -> bool:
        return bool(self.kinds)


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def redact(text: str) -> Redaction:
    spans = _mnemonic_spans(text) + _hex_key_spans(text) + _wif_spans(text) + _xprv_spans(text)
    if not spans:
        return Redaction(text=text, kinds=())
    parts: list[str] = []
    kinds: set[str] = set()
    cursor = 0
    for start, end, kind in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < cursor:  # overlaps a span already replaced
            continue
        parts.append(text[cursor:start])
        parts.append(placeholder(kind))
        kinds.add(kind)
        cursor = end
    parts.append(text[cursor:])
    return Redaction(text="".join(parts), kinds=tuple(sorted(kinds)))


_Span = tuple[int, int, str]

# --- BIP-39 mnemonics ---------------------------------------------------------------------

_CHUNK = re.compile(r"[A-Za-z0-9]+")
# What may stand between two words of a pasted phrase: whitespace and list punctuation.
_SEPARATOR = re.compile(r"[\s,，、;；:：.。()（）\[\]【】#*•·\-–—|/\"'“”‘’]*")
_NUMBERING = re.compile(r"\d{1,3}")


@functools.cache
def _wordlist() -> frozenset[str]:
    return frozenset(Mnemonic("english").wordlist)


@functools.cache
def _prefixes() -> frozenset[str]:
    return frozenset(word[:4] for word in _wordlist() if len(word) >= 4)


def _is_mnemonic_word(chunk: str) -> bool:
    word = chunk.lower()
    if word in _wordlist():
        return True
    return len(word) >= 4 and word.isalpha() and word[:4] in _prefixes()


def _mnemonic_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    run_start = run_end = -1
    words = 0
    last_end = 0

    def close_run() -> None:
        if words >= MIN_MNEMONIC_WORDS:
            spans.append((run_start, run_end, "bip39_mnemonic"))

    for match in _CHUNK.finditer(text):
        chunk = match.group()
        if words and not _SEPARATOR.fullmatch(text, last_end, match.start()):
            close_run()
            words = 0
        last_end = match.end()
        if _is_mnemonic_word(chunk):
            if not words:
                run_start = match.start()
            run_end = match.end()
            words += 1
        elif not (words and _NUMBERING.fullmatch(chunk)):
            close_run()
            words = 0
    close_run()
    return spans


# --- raw hex private keys ------------------------------------------------------------------

_HEX64 = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]{64}(?![0-9A-Za-z])")
_CLAUSE_BREAK = re.compile(r"\n|[!?;。！？；]|\.(?=\s|$)")
_KEY_WORDS = re.compile(
    r"(?<![a-z])(?:priv(?:ate)?[\s_-]*key|secret|seed)|私钥|密钥|秘钥", re.IGNORECASE
)
_TX_WORDS = re.compile(
    r"(?<![a-z])(?:tx(?:id|n|hash)?|hash(?:es)?|transactions?)(?![a-z])|交易|哈希", re.IGNORECASE
)
_NO_WORDS = re.compile(r"[\W_]*")


_LOOKBACK_CLAUSES = 3


def _clauses(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line or sentence, in order, breaks excluded."""
    bounds, start = [], 0
    for brk in _CLAUSE_BREAK.finditer(text):
        bounds.append((start, brk.start()))
        start = brk.end()
    bounds.append((start, len(text)))
    return bounds


def _previous_clause(text: str, clauses: list[tuple[int, int]], index: int) -> str:
    """The nearest non-blank clause before ``clauses[index]``, looking back a few at most."""
    for start, end in reversed(clauses[max(0, index - _LOOKBACK_CLAUSES) : index]):
        if not _NO_WORDS.fullmatch(text, start, end):
            return text[start:end]
    return ""


def _nearest(pattern: re.Pattern[str], before: str, after: str) -> tuple[int, int] | None:
    """Distance to the closest match, ranked so that any word before beats any word after."""
    preceding = [len(before) - m.end() for m in pattern.finditer(before)]
    if preceding:
        return (0, min(preceding))
    following = [m.start() for m in pattern.finditer(after)]
    return (1, min(following)) if following else None


def _is_key_context(
    text: str, clauses: list[tuple[int, int]], starts: list[int], start: int, end: int
) -> bool:
    index = bisect.bisect_right(starts, start) - 1
    left, right = clauses[index]
    before, after = text[left:start], text[end:right]
    if _NO_WORDS.fullmatch(before) and _NO_WORDS.fullmatch(after):
        # Alone on its line: a label on the line above ("私钥：") is its context.
        before = _previous_clause(text, clauses, index) + " " + before
    key = _nearest(_KEY_WORDS, before, after)
    if key is None:
        return False
    tx = _nearest(_TX_WORDS, before, after)
    return tx is None or key <= tx


def _hex_key_spans(text: str) -> list[_Span]:
    matches = list(_HEX64.finditer(text))
    if not matches:
        return []
    clauses = _clauses(text)
    starts = [start for start, _ in clauses]
    return [
        (m.start(), m.end(), "hex_private_key")
        for m in matches
        if _is_key_context(text, clauses, starts, m.start(), m.end())
    ]


# --- Base58 keys ---------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_B58 = "1-9A-HJ-NP-Za-km-z"
_WIF_CANDIDATE = re.compile(rf"(?<![{_B58}])[5KL9c][{_B58}]{{50,51}}(?![{_B58}])")
_XPRV = re.compile(rf"(?<![{_B58}])[xyztuvYZUV]prv[{_B58}]{{100,112}}(?![{_B58}])")
_WIF_VERSIONS = (0x80, 0xEF)


def _b58decode(value: str) -> bytes:
    number = 0
    for char in value:
        number = number * 58 + _B58_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    leading_zeros = len(value) - len(value.lstrip("1"))
    return b"\x00" * leading_zeros + body


def _is_wif(candidate: str) -> bool:
    raw = _b58decode(candidate)
    payload, checksum = raw[:-4], raw[-4:]
    if len(payload) not in (33, 34) or payload[0] not in _WIF_VERSIONS:
        return False
    if len(payload) == 34 and payload[-1] != 0x01:
        return False
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum


def _wif_spans(text: str) -> list[_Span]:
    return [
        (m.start(), m.end(), "wif_private_key")
        for m in _WIF_CANDIDATE.finditer(text)
        if _is_wif(m.group())
    ]


def _xprv_spans(text: str) -> list[_Span]:
    return [(m.start(), m.end(), "extended_private_key") for m in _XPRV.finditer(text)]
