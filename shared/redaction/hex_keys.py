"""Raw 32-byte private keys in hex: every 64-hex string is a key unless the words around it
say it is a transaction (or it sits in a URL path).

Users introduce keys with any wording ("what MetaMask showed me when I clicked export"), so
key words cannot be required; a transaction hash, by contrast, is nearly always named as one
(tx, hash, txid, 交易, an explorer link, a deposit or withdrawal). An agent can ask again for
a hash that was removed; a key that was stored is leaked for good.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from shared.redaction.spans import Span

_HEX64 = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]{64}(?![0-9A-Za-z])")
# The same string copied from a narrow screen: two pieces on two lines, taken when they
# add up to 64 digits and the first is not an address (0x + 40).
_HEX64_WRAPPED = re.compile(
    r"(?<![0-9A-Za-z])(0[xX])?([0-9a-fA-F]{16,48})[ \t]*\r?\n"
    r"[ \t]*([0-9a-fA-F]{16,48})(?![0-9A-Za-z])"
)
_CLAUSE_BREAK = re.compile(r"\n|[!?;。！？；]|\.(?=\s|$)")
# Label words, matched in the lowercased text; a match preceded by a letter is part of a
# longer word and is dropped. Every alternative starts with a literal, so the regex engine
# skips ahead to the characters that can start one instead of trying each position.
# "secret" is no key word as part of a name (Secret Network and its dApps).
_SECRET_NAMES = r"network|swap|labs?|foundation|tokens?|chain|protocol|dao|finance|bridge|scrt"
_KEY_WORDS = re.compile(
    r"(?:private[\s_-]*keys?|priv[\s_-]*keys?|secret[\s_-]*keys?|secret(?![a-z])(?!\s*(?:"
    + _SECRET_NAMES
    + r")(?![a-z]))"
    r"|seed|key(?<!public.key)(?<!pub.key)(?<!api.key)s?"
    r"|export(?:ed|ing|s)?|import(?:ed|ing|s)?|back\s*up|restor(?:e|ed|ing)|recover(?:y|ed)?"
    r")(?![a-z])|私钥|密钥|秘钥|导出|导入|备份|恢复|助记词"
)
# Transaction words name a transaction, its explorer, or what happened to it ("has not
# arrived", 没到账); a few name other hashes agents need (checksums, order ids).
# "deposit", "withdraw", "transfer" alone are not among them: scam victims write "I can't
# withdraw, here is my wallet: <key>".
_TX_WORDS = re.compile(
    r"(?:tx(?:id|n|hash|s)?|hash(?:es)?|transactions?|transaction[\s_-]*(?:hash|id)"
    r"|block[\s_-]*(?:hash|number|height)|blockchain|sha-?256|explorer"
    r"|etherscan|bscscan|polygonscan|arbiscan|ftmscan|tronscan|solscan|basescan|mempool"
    r"|blockchair|blockstream|oklink|tokenview|public[\s_-]*key|pubkey"
    r"|checksum|sha256sum|digest|order[\s_-]*(?:id|no|number)"
    r"|arrived|credited|stuck|pending|unconfirmed|confirm(?:ed|ations?)"
    r"|(?:not|never|didn'?t|did\s+not|haven'?t|hasn'?t|has\s+not|have\s+not)\s+(?:been\s+)?"
    r"(?:arrive[ds]?|receive[ds]?|credited|show(?:n|ed)?\s+up)"
    r"|(?:transfer|deposit|withdrawal)\s+(?:records?|receipt|id)"
    r")(?![a-z])|交易|哈希|到账|没收到|未收到|没到|未到|区块|浏览器|公钥|订单|链上|这笔"
    r"|(?:转账|充值|提现|提币|充币)(?:记录|单号|凭证|id|hash)"
)
_ASCII_LOWER = str.maketrans({chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)})
# A character that makes a clause non-blank (`[\W_]` is what blank clauses are made of).
_WORD_CHAR = re.compile(r"[^\W_]")

_LOOKBACK_CLAUSES = 3

Verdict = Literal["key", "tx"] | None


@dataclass(frozen=True)
class _Labels:
    """Where one kind of label word occurs in a text: found once, looked up by bisection.

    Matches never overlap, so both lists are sorted. A label never spans two clauses
    (only ``private\nkey`` could, and such a match is dropped: within one clause it is
    no label either)."""

    starts: list[int]
    ends: list[int]

    @classmethod
    def find(cls, pattern: re.Pattern[str], lowered: str) -> _Labels:
        found = [
            m.span()
            for m in pattern.finditer(lowered)
            if "\n" not in m.group() and not (m.start() and "a" <= lowered[m.start() - 1] <= "z")
        ]
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
class LabelContext:
    """A text's clauses and label words, found once for all of its candidates; each
    candidate's verdict then costs a few bisections, so a text is scanned a bounded number
    of times however many candidates it holds."""

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
        lowered = self.text.lower()
        if len(lowered) != len(self.text):  # a letter that lowercases to two ("İ")
            lowered = self.text.translate(_ASCII_LOWER)
        self.keys = _Labels.find(_KEY_WORDS, lowered)
        self.txs = _Labels.find(_TX_WORDS, lowered)

    def verdict(self, start: int, end: int) -> Verdict:
        """What the words around text[start:end] call it: a key, a transaction, or nothing.

        The context is the clause (line or sentence) holding the value; if the value stands
        alone in it, the nearest non-blank clause above (a few back at most) instead
        (``Private key:\\n0x...``). The nearest label decides, and any label before the
        value beats any after it, since labels precede values (``tx hash: 0x..., private
        key: 0x...``). A tie goes to the key."""
        index = bisect.bisect_right(self.starts, start) - 1
        left, right = self.starts[index], self.ends[index]
        if self._alone(index, start, end):
            above = self._previous(index)
            if above is None:
                return None
            left, right = self.starts[above], self.ends[above]
            # Everything between that clause and the value is blank, so distances can be
            # measured from the clause's end: the same for both kinds of label.
            start = end = right
        key = self._nearest(self.keys, left, start, end, right)
        tx = self._nearest(self.txs, left, start, end, right)
        if key is None and tx is None:
            return None
        return "key" if tx is None or (key is not None and key <= tx) else "tx"

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
        """Nothing but blanks around the value in its clause. The clause's first word is
        found once, so each clause is searched at most twice."""
        if index not in self._first_word:
            found = _WORD_CHAR.search(self.text, self.starts[index], self.ends[index])
            self._first_word[index] = found.start() if found else len(self.text)
        return self._first_word[index] >= start and self._is_blank(end, self.ends[index])

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


def _in_url_path(text: str, start: int) -> bool:
    """A hex string right after a slash is a path segment (``etherscan.io/tx/0x...``)."""
    return start > 0 and text[start - 1] == "/"


def hex_key_spans(text: str, context: LabelContext | None = None) -> list[Span]:
    """Every 64-hex string that nothing calls a transaction and no URL holds."""
    matches = [m.span() for m in _HEX64.finditer(text) if not _in_url_path(text, m.start())]
    matches += [
        m.span()
        for m in _HEX64_WRAPPED.finditer(text)
        if len(m.group(2)) + len(m.group(3)) == 64
        and not (m.group(1) and len(m.group(2)) == 40)
        and not _in_url_path(text, m.start())
    ]
    if not matches:
        return []
    context = context or LabelContext(text)
    return [(s, e, "hex_private_key") for s, e in matches if context.verdict(s, e) != "tx"]
