"""BIP-39 seed phrases: runs of wordlist words with nothing but separators between them."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from mnemonic import Mnemonic

if TYPE_CHECKING:
    from shared.redaction.spans import Span

MIN_MNEMONIC_WORDS = 12

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


def mnemonic_spans(text: str) -> list[Span]:
    """One pass over the words; each gap between two words is looked at once."""
    spans: list[Span] = []
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
