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

Cost: every detector runs in time linear in the text (a ticket body is attacker-controlled,
and an earlier version took minutes on 400 KB of ``seed`` + hex tokens because each hex
string rescanned its whole sentence). The hex rule finds sentence breaks, key words and
transaction words once per text and answers each hex string's context by bisecting those
positions; no detector slices or rescans the text per match. A detector added here must keep
that property (``bench/bench_redaction.py`` times each class on 1 MB of adversarial input).
Texts longer than ``MAX_CHARS`` are refused (``TextTooLong``) rather than scanned, and
``redact_async`` moves texts longer than ``OFF_LOOP_CHARS`` to a worker thread so a server's
event loop keeps answering while they are scanned.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnemonic import Mnemonic

from shared.errors import Invalid

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MIN_MNEMONIC_WORDS = 12
# Longest text `redact` accepts, in characters: well above every text a service takes
# (intake's message body is 20,000), so only a caller that forgot its own limit meets it.
MAX_CHARS = 2_000_000
# Texts longer than this are scanned in a worker thread by `redact_async` (about a
# millisecond of work: below it, the hop to a thread costs more than it saves).
OFF_LOOP_CHARS = 8_000

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


class TextTooLong(Invalid):
    """A text longer than `MAX_CHARS`: the caller should have refused it at its door."""

    def __init__(self, length: int) -> None:
        super().__init__(
            "text_too_long", f"{length} characters; redaction takes at most {MAX_CHARS}"
        )
        self.length = length


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
    """`text` with every secret replaced by its placeholder; linear in `len(text)`."""
    if len(text) > MAX_CHARS:
        raise TextTooLong(len(text))
    spans = [span for detect in DETECTORS for span in detect(text)]
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


async def redact_async(text: str) -> Redaction:
    """`redact` for a server: long texts go to a worker thread, so the event loop keeps
    serving other requests meanwhile (the regex engine holds the GIL, but the interpreter
    hands it back to the loop every switch interval instead of once at the end)."""
    if len(text) <= OFF_LOOP_CHARS:
        return redact(text)
    return await asyncio.to_thread(redact, text)


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
    """One pass over the words; each gap between two words is looked at once."""
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
# A character that makes a clause non-blank (`[\W_]` is what blank clauses are made of).
_WORD_CHAR = re.compile(r"[^\W_]")

_LOOKBACK_CLAUSES = 3


@dataclass(frozen=True)
class _Labels:
    """Where one kind of label word occurs in a text: found once, looked up by bisection.

    Matches never overlap, so both lists are sorted. A label never spans two clauses
    (only ``private\nkey`` could, and such a match is dropped: within one clause it is
    no label either)."""

    starts: list[int]
    ends: list[int]

    @classmethod
    def find(cls, pattern: re.Pattern[str], text: str) -> _Labels:
        found = [m.span() for m in pattern.finditer(text) if "\n" not in m.group()]
        return cls([s for s, _ in found], [e for _, e in found])

    def last_end(self, left: int, start: int) -> int | None:
        """End of the last label inside [left, start), if any."""
        i = bisect.bisect_right(self.ends, start) - 1
        return self.ends[i] if i >= 0 and self.starts[i] >= left else None

    def first_start(self, end: int, right: int) -> int | None:
        """Start of the first label inside [end, right), if any."""
        i = bisect.bisect_left(self.starts, end)
        return self.starts[i] if i < len(self.starts) and self.ends[i] <= right else None


@dataclass
class _HexContext:
    """A text's clauses and label words, found once for all of its hex strings."""

    text: str
    starts: list[int] = field(init=False)
    ends: list[int] = field(init=False)
    keys: _Labels = field(init=False)
    txs: _Labels = field(init=False)
    _first_word: dict[int, int] = field(init=False, default_factory=dict)
    _blank: dict[int, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.starts, self.ends = [0], []
        for brk in _CLAUSE_BREAK.finditer(self.text):
            self.ends.append(brk.start())
            self.starts.append(brk.end())
        self.ends.append(len(self.text))
        self.keys = _Labels.find(_KEY_WORDS, self.text)
        self.txs = _Labels.find(_TX_WORDS, self.text)

    def is_key(self, start: int, end: int) -> bool:
        index = bisect.bisect_right(self.starts, start) - 1
        left, right = self.starts[index], self.ends[index]
        if self._alone(index, start, end):
            # Alone on its line: a label on the line above ("私钥：") is its context.
            above = self._previous(index)
            if above is None:
                return False
            left, right = self.starts[above], self.ends[above]
            # Everything between that clause and the hex string is blank, so distances can
            # be measured from the clause's end: the same for both kinds of label.
            start = end = right
        key = self._nearest(self.keys, left, start, end, right)
        if key is None:
            return False
        tx = self._nearest(self.txs, left, start, end, right)
        return tx is None or key <= tx

    @staticmethod
    def _nearest(
        labels: _Labels, left: int, start: int, end: int, right: int
    ) -> tuple[int, int] | None:
        """Distance to the closest label, ranked so that any label before beats any after."""
        before = labels.last_end(left, start)
        if before is not None:
            return (0, start - before)
        after = labels.first_start(end, right)
        return (1, after - end) if after is not None else None

    def _alone(self, index: int, start: int, end: int) -> bool:
        """Nothing but blanks around the hex string in its clause. Only the clause's first
        word can be alone, so each clause is searched at most twice."""
        if index not in self._first_word:
            found = _WORD_CHAR.search(self.text, self.starts[index], self.ends[index])
            self._first_word[index] = found.start() if found else -1
        return self._first_word[index] == start and self._is_blank(end, self.ends[index])

    def _previous(self, index: int) -> int | None:
        """The nearest non-blank clause before clause `index`, looking back a few at most."""
        for above in range(index - 1, max(-1, index - 1 - _LOOKBACK_CLAUSES), -1):
            if above not in self._blank:
                self._blank[above] = self._is_blank(self.starts[above], self.ends[above])
            if not self._blank[above]:
                return above
        return None

    def _is_blank(self, left: int, right: int) -> bool:
        return _WORD_CHAR.search(self.text, left, right) is None


def _hex_key_spans(text: str) -> list[_Span]:
    matches = [m.span() for m in _HEX64.finditer(text)]
    if not matches:
        return []
    context = _HexContext(text)
    return [(s, e, "hex_private_key") for s, e in matches if context.is_key(s, e)]


# --- Base58 keys ---------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_B58 = "1-9A-HJ-NP-Za-km-z"
# The look-behind fails at once inside a run of Base58, so each run is tried once.
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


# Every detector: text -> (start, end, kind) spans, in time linear in the text. `redact`
# replaces the union; where spans overlap, the earliest (then the longest) wins.
DETECTORS: tuple[Callable[[str], Iterable[_Span]], ...] = (
    _mnemonic_spans,
    _hex_key_spans,
    _wif_spans,
    _xprv_spans,
)
