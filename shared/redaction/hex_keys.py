"""Raw 32-byte private keys in hex: told from transaction hashes by the words around them."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.redaction.spans import Span

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


def hex_key_spans(text: str) -> list[Span]:
    matches = [m.span() for m in _HEX64.finditer(text)]
    if not matches:
        return []
    context = _HexContext(text)
    return [(s, e, "hex_private_key") for s, e in matches if context.is_key(s, e)]
