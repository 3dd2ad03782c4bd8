"""BIP-39 seed phrases in any of the twelve wordlists, however they were pasted.

What counts as a mnemonic, and why:

- **Words.** A token is a word of a language when, folded (lower case, accents and kana
  voicing marks dropped, as users type them), it is in that BIP-39 list, or is a
  four-letter abbreviation of a list word where the list is unique by its first four
  letters (wallets accept both). A Chinese word is one Han character.
- **Runs.** Words of one language with nothing between them but separators (white space of
  any script, punctuation such as ``, ， 、 ・ | ; : . -``, brackets) and numbering
  (``1.``, ``(1)``, ``#1``, ``1-``, ``01:``, ``①``, ``第1个``, or digits glued to the
  word: ``1abandon2ability``). A gap holding ``? !``, a number of four or more digits,
  more than three line breaks or more than 64 characters ends the run.
- **Typos.** Up to two tokens of a run may be misspelled: edit distance 1 (2 for tokens of
  six letters or more) to a word of the run's language, found with a deletion-
  neighbourhood index (built once per language). Only tokens where a run would otherwise
  break are looked up, so a typo neither splits a phrase nor costs time on prose.
- **Evidence.** List words are everyday English ("can", "access", "account", "because",
  "wallet", "open", "today", "update" all are), so a run is weighed, not just counted:
  the share of its words that are not everyday English (random words from the list
  rarely are), its length, a valid BIP-39 checksum, numbering or list layout (one word per
  line, commas, tabs, pipes), and a label near it ("seed phrase", "recovery phrase",
  "mnemonic", "助记词", "恢复短语", "私钥"…). A run is a mnemonic when it has

  1. 12 or more words and a label near them;
  2. 12 or more words, a valid checksum and at least a quarter not everyday English;
  3. 12 or more words, at least a third of them not everyday English (a partial phrase,
     a bad checksum or an extra word still hands most of a wallet to a brute-forcer);
  4. 11 or more words, a list layout or a label, and 30 % not everyday English.

- **Chinese without separators.** The Chinese lists are the 2048 most common characters
  in order of frequency, so Chinese prose is almost all list characters; what sets a
  phrase apart is that its characters are drawn uniformly from the list. Each character
  is scored by how much likelier it is in a random phrase than in prose (Zipf's law over
  the list's ranks); a glued run is a mnemonic when 12 or more list characters follow a
  label (``助记词：``, ``我的助记词是``) and do not read like prose, or when a window of
  12/15/18/21/24 characters looks random and has a valid checksum (the whole run; or,
  inside a longer one, 12 or 15 characters that repeat none and sit between prose's
  commonest characters, such as ``抄下来的<phrase>为什么``, since 12 characters of prose
  can score as high as a phrase and a 4-bit checksum holds for one window in 16).

Cost: linear in the text. One regex pass yields (gap, token) pairs; gaps and tokens are
classified through per-call caches; runs are built per language from each language's
token positions; typo look-ups happen only where a run would break; checksums are only
computed for windows of random-looking characters, within a budget per text beyond which
random-looking windows are redacted without one.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import math
import operator
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnemonic import Mnemonic

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shared.redaction.spans import Span

MIN_MNEMONIC_WORDS = 12
VALID_LENGTHS = (12, 15, 18, 21, 24)
KIND = "bip39_mnemonic"

_MIN_PARTIAL = 11
_MIN_CANDIDATE = _MIN_PARTIAL - 2  # before a typo or a glued character at either end
# Shares of words that are not everyday English a run needs: alone (12+ words), with a
# valid checksum, with a label or a list layout (11+ words).
_DISTINCT_ALONE = 0.34
_DISTINCT_CHECKSUM = 0.25
_DISTINCT_WITH_CONTEXT = 0.3
_MAX_TYPOS = 2
_MAX_GAP = 64
_MAX_GAP_LINES = 3
_LABEL_BEFORE = 160  # characters from a label's end to the run it names
_LABEL_AFTER = 60  # "... <- that is my seed phrase"
_CHINESE = ("chinese_simplified", "chinese_traditional")

# --- tokens ------------------------------------------------------------------------------

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_BUT_DI = "\u3400-\u4dbf\u4e00-\u7b2b\u7b2d-\u9fff\uf900-\ufaff"  # all but 第
# Numbers that are \w but no digit: circled and parenthesised numbers, Roman numerals,
# superscripts, 〇. They number words, never spell them.
_NUMERAL = (
    "\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218b\u2460-\u24ff\u2776-\u2793"
    "\u3007\u3021-\u3029\u3038-\u303a\u3192-\u3195\u3220-\u3249\u3251-\u325f\u3280-\u32bf"
)
_LETTER = rf"[^\W\d_{_HAN}{_NUMERAL}]"
_MARK = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u3099\u309a\ufe20-\ufe2f"
# Every character is a gap character, a letter (or mark, or U+FFFD: the `mnemonic`
# package's Russian list spells a word with two) or a Han character, so each match of
# _TOKENS starts where the previous one ended: one linear walk over the text, also at its
# end (the token is then empty). `第1个` is numbering, so it belongs to the gap. Each
# alternative repeats one character class at a time (`[…]+`), the regex engine's fast path.
_TOKENS = re.compile(
    rf"((?:[^\w\ufffd]+|[\d_{_NUMERAL}]+|第\s?\d{{1,3}}\s?[个個])*+)"
    rf"({_LETTER}+(?:[{_MARK}\ufffd]+{_LETTER}*)*|\ufffd+(?:{_LETTER}|[{_MARK}\ufffd])*"
    rf"|(?:[{_HAN_BUT_DI}]+|第(?!\s?\d{{1,3}}\s?[个個]))+|)"
)
_HAN_CHAR = re.compile(rf"[{_HAN}]")

# Gap classes, as bits.
_VALID = 1
_NUMBERED = 2
_LISTY = 4
_EMPTY = 8
_NUMBER = re.compile(rf"\d+|[{_NUMERAL}]")
_BREAKS = frozenset("?!？！¿¡")
_LIST_MARKS = frozenset(",，、;；|｜\t\n\u3000・･/•·")


def _gap_class(gap: str) -> int:
    """What stands between two tokens: nothing, separators, numbering, or a break."""
    if not gap:
        return _VALID | _EMPTY
    numbers = _NUMBER.findall(gap)
    numbering = 0 < len(numbers) <= 2 and all(len(n) <= 3 for n in numbers)
    bits = _NUMBERED | _LISTY if numbering else 0
    if any(c in _LIST_MARKS for c in gap):
        bits |= _LISTY
    if (
        (numbers and not numbering)
        or len(gap) > _MAX_GAP
        or gap.count("\n") > _MAX_GAP_LINES
        or any(c in _BREAKS for c in gap)
    ):
        return bits
    return bits | _VALID


def _fold(token: str) -> str:
    """How a word is compared: case, accents, kana voicing marks and Turkish dotless i
    are what users drop or change when they type a phrase."""
    if token.isascii():
        return token.lower()
    decomposed = unicodedata.normalize("NFKD", token.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ı", "i")


# --- the lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Language:
    name: str
    words: tuple[str, ...]  # folded, in list order
    index: dict[str, int]
    prefixes: dict[str, int]  # four-letter abbreviations, where they are unambiguous

    @property
    def han(self) -> bool:
        return self.name in _CHINESE


@functools.cache
def _languages() -> tuple[_Language, ...]:
    languages = []
    for name in sorted(Mnemonic.list_languages()):
        words = tuple(_fold(w) for w in Mnemonic(name).wordlist)
        long = [w for w in words if len(w) >= 4]
        unique = len({w[:4] for w in long}) == len(long)
        prefixes = {w[:4]: words.index(w) for w in long if unique and len(w) > 4}
        languages.append(_Language(name, words, {w: i for i, w in enumerate(words)}, prefixes))
    return tuple(languages)


@functools.cache
def _lexicon() -> dict[str, tuple[int, ...]]:
    """Folded token -> the languages (positions in `_languages()`) it is a word of."""
    found: dict[str, list[int]] = {}
    for lang, language in enumerate(_languages()):
        for word in itertools.chain(language.index, language.prefixes):
            found.setdefault(word, []).append(lang)
    return {word: tuple(sorted(set(langs))) for word, langs in found.items()}


@functools.cache
def _deletions(lang: int) -> dict[str, tuple[tuple[int, int], ...]]:
    """Every string made by deleting up to two letters of a list word -> (word, deleted)."""
    found: dict[str, dict[int, int]] = {}
    for i, word in enumerate(_languages()[lang].words):
        for variant, deleted in _variants(word):
            seen = found.setdefault(variant, {})
            seen[i] = min(deleted, seen.get(i, 2))
    return {variant: tuple(words.items()) for variant, words in found.items()}


def _variants(word: str) -> Iterable[tuple[str, int]]:
    yield word, 0
    ones = {word[:i] + word[i + 1 :] for i in range(len(word))}
    for one in ones:
        yield one, 1
    for one in ones:
        for i in range(len(one)):
            yield one[:i] + one[i + 1 :], 2


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance with adjacent transpositions, capped at `limit + 1`."""
    previous = list(range(len(b) + 1))
    before: list[int] = []
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


@functools.lru_cache(maxsize=8192)
def _typo(lang: int, folded: str, limit: int) -> int | None:
    """A list word `folded` is a misspelling of, if any: one reached by deletions and
    insertions alone is found in the index directly; the rest (substitutions, swaps) are
    checked against the few words sharing a deletion variant."""
    index = _deletions(lang)
    words = _languages()[lang].words
    others: dict[int, None] = {}
    for variant, deleted in _variants(folded):
        for word, word_deleted in index.get(variant, ()):
            if deleted + word_deleted <= limit:
                return word
            if abs(len(words[word]) - len(folded)) <= limit:
                others[word] = None
    for word in others:
        if _distance(folded, words[word], limit) <= limit:
            return word
    return None


def _checksum_ok(indexes: list[int]) -> bool:
    """BIP-39: the last n/3 bits of the 11-bit word indexes are the first bits of the
    SHA-256 of the rest."""
    if len(indexes) not in VALID_LENGTHS:
        return False
    value = 0
    for index in indexes:
        value = value << 11 | index
    bits = len(indexes) // 3
    entropy = (value >> bits).to_bytes(len(indexes) * 4 // 3, "big")
    return hashlib.sha256(entropy).digest()[0] >> (8 - bits) == value & ((1 << bits) - 1)


# --- everyday English ---------------------------------------------------------------------

# Everyday English, many of them list words ("can", "access", "because", "wallet"): a run
# of these is a sentence, not a phrase, so they do not count as evidence. Also never read as
# typos ("with" is not a misspelled "wish").
_EVERYDAY_EN = frozenset(
    """
    a about above access account across act action actual actually add address after again
    against age ago agree ahead all allow almost alone along already also always am among
    amount an and another answer any anyone anything app apart appear are area around arrive
    as ask at auto available average avoid aware away back bad balance bank base basic be
    because become been before begin behind being believe below best better between beyond
    big bit both bring broken build business busy but buy by call can cancel card care carry
    case cash cause certain change charge chat cheap check choice choose claim clean clear
    click client close code coin come common company confirm connect consider control copy
    correct cost could country course cover crash credit current custom customer day deal
    decide delay deposit describe detail device did differ direct display do document does
    doing done down during each early earn easily easy edit effort either else email empty
    end enough ensure enter entire error even ever every exact example exchange exist exit
    expect explain extra fact fail false family far fast fee feel few file final find fine
    finish first fix follow for forget forward found free friend from front fund funds
    future gain general get give glad go going good got great group guess guide had half
    hand happen happy hard has have he hello help her here high him his history hold home
    hope hour hours how however huge i idea if ignore image improve in include increase
    inform input inside install instead interest into is issue it item its job join just
    keep key kind know large last later learn least leave left less let level life light
    like limit link list little live load loan local lock long look lost lot love main major
    make man manage many matter may maybe me mean member mention menu message method might
    minute miss mistake mobile moment money month more morning most move much must my
    myself name near need never new news next nice night no normal not note nothing notice
    now number of off offer office often ok okay old on once one online only open option or
    order other our out over own page paid part pass password pay payment people person
    phone picture place plan please point possible post power present pretty price private
    problem process program proof provide public purchase put question quick quite random
    rather reach read ready real really reason receive recent record refund regular release
    remain remember remove repair repeat replace reply report require result return review
    right risk room rule run safe same save say second secret section security see seem
    sell send sense sent service set setup several she short should show side sign similar
    simple since site size small so solution solve some someone something soon sorry sort
    sound space speak special speed spend start state stay step still stop story stuff such
    sure support system take talk task team tell test text than thank thanks that the their
    them then there these they thing think this those though three through time to today
    together token tomorrow too top total toward trade transfer true trust try turn twice
    two type under unable unknown unlock until up update upgrade upon us use used useful
    user usual valid verify version very video view visit wait want was way we web week
    well were what when where whether which while who whole why will wish with within
    without word work world worry would write wrong year yes yet you young your
    arrive balance bonus bridge broken coin crash delay deposit error frozen gas history
    hour laptop low market mobile network photo record reward screen seven slow swap
    window zero wallet withdraw withdrawal fund exchange transaction trading crypto
    """.split()
)

# English function words: never read as a misspelled list word, so they always end a run.
_FUNCTION_EN = frozenset(
    """
    the and but not nor for from with are was were been does did have has had its this that
    these those you your him his she her our they them their there what which who whom
    when where why how will would can could should shall may might must than then too very
    just also after before about because please here into onto over under some any all
    """.split()
)

# --- labels --------------------------------------------------------------------------------

_LABEL = re.compile(
    # The first characters of every label, up front: the regex engine then skips ahead
    # instead of trying each alternative at each position (15x faster on Chinese text).
    r"(?=[sSrRbBmMwWpPfFkKoOфФсС助记恢种種备備密私ニリ復니복])(?:"
    r"(?<![a-z])(?:seed|recovery|recover|backup|back-up|secret|mnemonic|wallet|passphrase)"
    r"[\s_-]*(?:phrase|words?|sentence|code)s?(?![a-z])"
    r"|(?<![a-z])mnemonics?(?![a-z])|(?<![a-z])bip[\s-]?39(?![0-9])"
    r"|(?:(?<=\b1[258][\s-])|(?<=\b2[14][\s-])|(?<=twelve[\s-])|(?<=twenty[\s-]four[\s-]))"
    r"words?(?![a-z])"
    r"|助记词|助記詞|记忆词|恢复短语|恢復短語|恢复词|恢復詞|种子短语|種子短語|种子词|種子詞"
    r"|备份短语|備份短語|密语|私钥|私鑰|ニーモニック|リカバリーフレーズ|復元フレーズ|니모닉|복구\s?문구"
    r"|frase\s(?:semilla|de\s(?:recuperaci[oó]n|respaldo))|phrase\sde\s(?:r[eé]cup[eé]ration|secours)"
    r"|фраз[аы]\sвосстановления|сид[\s-]фраза|kurtarma\sifadesi|obnovovac[ií]\sfr[aá]ze)",
    re.IGNORECASE,
)
# What may stand between a label and a glued Chinese phrase: "助记词是…", "助记词如下：…".
_LABEL_TAIL = re.compile(r"(?:是|为|為|如下所示|如下)?[\s:：,，、]*")


@dataclass
class _Labels:
    """Label positions in one text, found on first need."""

    text: str
    _found: tuple[list[int], list[int]] | None = None

    @property
    def found(self) -> tuple[list[int], list[int]]:
        if self._found is None:
            spans = [m.span() for m in _LABEL.finditer(self.text)]
            self._found = ([s for s, _ in spans], [e for _, e in spans])
        return self._found

    def near(self, start: int, end: int) -> bool:
        """A label ends shortly before the run, inside it, or starts shortly after it."""
        starts, ends = self.found
        i = bisect.bisect_left(ends, start - _LABEL_BEFORE)
        return i < len(ends) and starts[i] <= end + _LABEL_AFTER

    def covers(self, position: int) -> bool:
        starts, ends = self.found
        i = bisect.bisect_right(starts, position) - 1
        return i >= 0 and position < ends[i]

    def phrase_start(self, start: int, end: int) -> int | None:
        """Where a phrase named by a label would start, if a label ends inside
        [start, end): past "是", "如下：" and the like."""
        ends = self.found[1]
        i = bisect.bisect_left(ends, end) - 1
        if i < 0 or ends[i] < start:
            return None
        tail = _LABEL_TAIL.match(self.text, ends[i], end)
        return tail.end() if tail else ends[i]


# --- separated runs ------------------------------------------------------------------------


@dataclass
class _Tokens:
    """The text's tokens, in order, with what each one is."""

    starts: list[int]
    ends: list[int]
    gaps: list[int]  # class of the gap before each token
    folded: list[str]
    han_runs: list[int]  # tokens of two or more Han characters
    positions: dict[int, list[int]]  # language -> its words' token numbers


class _GapClasses(dict[str, int]):
    """Gap text -> its class, computed once per distinct gap of a text."""

    def __missing__(self, gap: str) -> int:
        self[gap] = found = _gap_class(gap)
        return found


class _TokenInfo(dict[str, tuple[str, tuple[int, ...]]]):
    """Token text -> (folded, languages it is a word of); "" for a run of Han characters."""

    def __init__(self) -> None:
        super().__init__()
        self.lexicon = _lexicon()

    def __missing__(self, token: str) -> tuple[str, tuple[int, ...]]:
        if len(token) > 1 and _HAN_CHAR.match(token):
            found: tuple[str, tuple[int, ...]] = ("", ())
        elif token in (token.lower(), token.upper()) or token.istitle():
            folded = _fold(token)
            found = (folded, self.lexicon.get(folded, ()))
        else:  # "ANGnw", "cBLNb": a piece of Base58, not a (mis)typed word
            found = (token, ())
        self[token] = found
        return found


def _tokenize(text: str) -> _Tokens:
    """Every per-token step is a C-level map over the regex's (gap, token) pairs: a text
    of a million characters may hold half a million tokens."""
    parts = _TOKENS.split(text)  # "", gap, token, "", gap, token, …: matches are contiguous
    gap_texts, token_texts = parts[1::3], parts[2::3]
    while token_texts and not token_texts[-1]:  # the end of the text
        gap_texts.pop()
        token_texts.pop()
    token_lengths = list(map(len, token_texts))
    ends = list(itertools.accumulate(map(operator.add, map(len, gap_texts), token_lengths)))
    starts = list(map(operator.sub, ends, token_lengths))
    gaps = list(map(_GapClasses().__getitem__, gap_texts))
    infos = list(map(_TokenInfo().__getitem__, token_texts))
    folded = list(map(operator.itemgetter(0), infos))
    han_runs = list(itertools.compress(itertools.count(), map(operator.not_, folded)))
    langs = list(map(operator.itemgetter(1), infos))
    positions: dict[int, list[int]] = {}
    for i in itertools.compress(itertools.count(), langs):
        for lang in langs[i]:
            positions.setdefault(lang, []).append(i)
    return _Tokens(starts, ends, gaps, folded, han_runs, positions)


@dataclass
class _Run:
    """Consecutive tokens of one language: list words, and bridges (possible typos)."""

    words: list[int]  # token numbers, in order, bridges included
    bridges: list[int]


def _runs(tokens: _Tokens, lang: int) -> Iterable[_Run]:
    """Maximal runs of `lang` words joined by valid gaps, with at most two bridged
    tokens each; where a third would be needed the run is cut there, and the next one
    starts after its first bridge (so runs overlap)."""
    gaps, folded = tokens.gaps, tokens.folded
    language = _languages()[lang]
    words: list[int] = []
    bridges: list[int] = []
    for i in tokens.positions.get(lang, ()):
        if words:
            last = words[-1]
            if i == last + 1 and gaps[i] & _VALID:
                words.append(i)
                continue
            between = range(last + 1, i)
            if (
                len(between) <= _MAX_TYPOS
                and all(gaps[k] & _VALID for k in range(last + 1, i + 1))
                and all(_bridgeable(folded[k], language) for k in between)
            ):
                if len(bridges) + len(between) > _MAX_TYPOS:
                    yield _Run(words, bridges)
                    while len(bridges) + len(between) > _MAX_TYPOS:
                        words = words[words.index(bridges[0]) + 1 :]
                        bridges = bridges[1:]
                    words = list(words)
                words.extend(between)
                bridges = [*bridges, *between]
                words.append(i)
                continue
            yield _Run(words, bridges)
        words, bridges = [i], []
    if words:
        yield _Run(words, bridges)


def _bridgeable(folded: str, language: _Language) -> bool:
    """Could this token be a misspelled word of `language`? (In an English run a function
    word is not: "with" is no misspelled "wish".)"""
    if language.han:
        return len(folded) == 1 and bool(_HAN_CHAR.match(folded))
    if language.name == "english" and folded in _FUNCTION_EN:
        return False
    return 3 <= len(folded) <= 12 and folded == folded.lower()


@dataclass
class _Judge:
    """Decides the runs of one text; labels are looked up only when a run needs them."""

    text: str
    tokens: _Tokens
    labels: _Labels
    _resolved: dict[tuple[int, int, bool], int | None] = field(default_factory=dict)

    def spans(self, lang: int) -> Iterable[tuple[int, int]]:
        for run in _runs(self.tokens, lang):
            if len(run.words) >= _MIN_CANDIDATE:
                yield from self._split(run, lang)

    def _split(self, run: _Run, lang: int) -> Iterable[tuple[int, int]]:
        """Check the bridges, splitting the run at a token that is no typo."""
        part: list[int] = []
        typos = 0
        bridges = set(run.bridges)
        for i in run.words:
            if i in bridges and self._resolve(i, lang) is None:
                if len(part) >= _MIN_CANDIDATE:
                    yield from self._weigh(part, lang, typos)
                part, typos = [], 0
            else:
                part.append(i)
                typos += i in bridges
        if len(part) >= _MIN_CANDIDATE:
            yield from self._weigh(part, lang, typos)

    def _resolve(self, i: int, lang: int, edge: bool = False) -> int | None:
        """The list word token `i` stands for in `lang`: itself, its abbreviation, a typo
        (-1: a Chinese character not in the list). A typo between two words may be two
        edits away; at either end of a run, where nothing vouches for it, two only from
        five letters on ("USDT" is no misspelled "used")."""
        key = (i, lang, edge)
        if key not in self._resolved:
            self._resolved[key] = self._lookup(i, lang, edge)
        return self._resolved[key]

    def _lookup(self, i: int, lang: int, edge: bool) -> int | None:
        language = _languages()[lang]
        folded = self.tokens.folded[i]
        found = language.index.get(folded, language.prefixes.get(folded))
        if found is None and language.han:
            return -1  # a character not in the list: a typo of one
        if found is None:
            limit = 1 if edge and len(folded) < 5 else 2
            found = _typo(lang, folded, limit)
        return found

    def _weigh(self, part: list[int], lang: int, typos: int) -> Iterable[tuple[int, int]]:
        language, tokens = _languages()[lang], self.tokens
        part = self._extend(part, lang, _MAX_TYPOS - typos)
        start, end = tokens.starts[part[0]], tokens.ends[part[-1]]
        glued = 0
        if language.han:
            start, end, glued = self._glued_ends(part, start, end)
        n = len(part) + glued
        if n < _MIN_PARTIAL:
            return
        everyday = 0
        if language.name == "english":
            everyday = sum(tokens.folded[i] in _EVERYDAY_EN for i in part)
        distinct = (n - everyday) / n
        numbered = sum(tokens.gaps[i] & _NUMBERED != 0 for i in part)
        listy = sum(tokens.gaps[i] & _LISTY != 0 for i in part[1:])
        laid_out = numbered >= 0.75 * n or listy >= 0.75 * (len(part) - 1)
        if (
            n >= MIN_MNEMONIC_WORDS
            and (
                distinct >= _DISTINCT_ALONE
                or (distinct >= _DISTINCT_CHECKSUM and self._valid(part, lang))
                or self.labels.near(start, end)
            )
        ) or (distinct >= _DISTINCT_WITH_CONTEXT and (laid_out or self.labels.near(start, end))):
            if not language.han:
                part = self._trim(part, lang)
                start, end = tokens.starts[part[0]], tokens.ends[part[-1]]
            yield start, end

    def _trim(self, part: list[int], lang: int) -> list[int]:
        """The phrase inside a run that took in words around it ("help: <phrase> thanks",
        "seed phrase: <phrase>", "…will not open. <phrase>"). A numbered phrase is its
        numbered words. Otherwise, if the run's checksum fails and dropping up to three
        everyday, label or unlisted words from its ends, set apart by another separator than
        the phrase's own (or no list words at all), leaves a valid phrase: that phrase."""
        gaps = self.tokens.gaps
        if sum(gaps[i] & _NUMBERED != 0 for i in part) >= 0.75 * len(part):
            first = next(k for k, i in enumerate(part) if gaps[i] & _NUMBERED)
            last = max(k for k, i in enumerate(part) if gaps[i] & _NUMBERED)
            if first <= 3 and self._dropped(part[:first], lang):
                part = part[first:]
                last -= first
            if len(part) - last - 1 <= 3 and self._dropped(part[last + 1 :], lang):
                part = part[: last + 1]
            return part
        if self._valid(part, lang):
            return part
        heads = list(itertools.takewhile(lambda i: self._dropped([i], lang), part[:3]))
        tails = list(itertools.takewhile(lambda i: self._dropped([i], lang), part[:-4:-1]))
        for cut in sorted(
            ((a, b) for a in range(len(heads) + 1) for b in range(len(tails) + 1)), key=sum
        ):
            inner = part[cut[0] : len(part) - cut[1]]
            if len(inner) not in VALID_LENGTHS or not self._valid(inner, lang):
                continue
            # Words cut off are no list words ("thanks"), or stood apart from the phrase
            # ("help: ", ". "), unlike its own words.
            usual = self._gap(inner[1])
            head, tail = part[: cut[0]], part[len(part) - cut[1] :]
            if (not head or self._gap(inner[0]) != usual or self._unlisted(head, lang)) and (
                not tail or self._gap(tail[0]) != usual or self._unlisted(tail, lang)
            ):
                return inner
        return part

    def _dropped(self, words: list[int], lang: int) -> bool:
        """May these words at a run's end be left out of the phrase: everyday English,
        labels, or no list words?"""
        tokens, index = self.tokens, _languages()[lang].index
        return all(
            tokens.folded[i] in _EVERYDAY_EN
            or self.labels.covers(tokens.starts[i])
            or tokens.folded[i] not in index
            for i in words
        )

    def _unlisted(self, words: list[int], lang: int) -> bool:
        index = _languages()[lang].index
        return not any(self.tokens.folded[i] in index for i in words)

    def _valid(self, part: list[int], lang: int) -> bool:
        if len(part) not in VALID_LENGTHS:
            return False
        indexes = [self._resolve(i, lang) for i in part]
        known = [i for i in indexes if i is not None and i >= 0]
        return len(known) == len(indexes) and _checksum_ok(known)

    def _extend(self, part: list[int], lang: int, typos: int) -> list[int]:
        """Misspelled first or last words. In a numbered run: up to two numbered tokens at
        either end ("(1) cdiff, (2) guic, (3) example, …"), and nothing unnumbered (a
        label). Otherwise: tokens next to the run that are typos of list words, up to the
        run's remaining `typos`."""
        tokens, language = self.tokens, _languages()[lang]
        gaps = tokens.gaps
        numbered = sum(gaps[i] & _NUMBERED != 0 for i in part) >= 0.75 * len(part)

        def belongs(i: int, gap: int) -> bool:
            """Token `i` joins the run across the gap before token `gap`."""
            if not (0 <= i < len(gaps) and gaps[gap] & _VALID):
                return False
            if not _bridgeable(tokens.folded[i], language):
                return False
            if self.labels.covers(tokens.starts[i]):
                return False  # "mnemonic": "…" is no misspelled "mnemonico"
            if numbered:  # its own numbering may follow a question: "what is it? 1.…"
                return gaps[i] & _NUMBERED != 0 and gaps[gap] & _NUMBERED != 0
            outer = self._gap(i) if i < gap else self._gap(i + 1) if i + 1 < len(gaps) else ""
            if len(tokens.folded[i]) < 4 and not language.han and outer.isdigit():
                return False  # "…v1Kmd" ending a Base58 string is no misspelled "kid"
            return self._resolve(i, lang, edge=True) is not None

        left = right = _MAX_TYPOS if numbered else typos
        head: list[int] = []
        tail: list[int] = []
        while left and belongs(part[0] - len(head) - 1, part[0] - len(head)):
            head.append(part[0] - len(head) - 1)
            left -= 1
            right -= not numbered
        while right and belongs(part[-1] + len(tail) + 1, part[-1] + len(tail) + 1):
            tail.append(part[-1] + len(tail) + 1)
            right -= 1
        return [*reversed(head), *part, *tail]

    def _glued_ends(self, part: list[int], start: int, end: int) -> tuple[int, int, int]:
        """A spaced Chinese phrase glued to the text around it ("助记词是的 一 是…",
        "抄下来的螺\n姓\n扣…"): the character of a neighbouring run of Han characters that
        touches it, or stands as far from it as its words from each other, belongs to it."""
        tokens, glued = self.tokens, 0
        first, last = part[0], part[-1]
        usual = self._gap(part[1]) if len(part) > 1 else ""
        if first > 0 and not tokens.folded[first - 1] and self._gap(first) in ("", usual):
            start, glued = start - 1, glued + 1
        if (
            last + 1 < len(tokens.starts)
            and not tokens.folded[last + 1]
            and self._gap(last + 1) in ("", usual)
        ):
            end, glued = end + 1, glued + 1
        return start, end, glued

    def _gap(self, i: int) -> str:
        """The text between token `i` and the one before it."""
        return self.text[self.tokens.ends[i - 1] : self.tokens.starts[i]]


# --- Chinese without separators ------------------------------------------------------------

# How much likelier a character is in a random phrase than in prose: log(P(rank | uniform)
# / P(rank | Zipf)), prose taken as Zipf's law over the list's frequency ranks. Positive
# from rank ~250 on; a random phrase scores about +1.1 a character, prose about -2.
_ZIPF_NORM = sum(1 / r for r in range(1, 2049))


@dataclass(frozen=True)
class _HanTable:
    scores: dict[str, float]
    indexes: tuple[dict[str, int], ...]  # per Chinese list
    segments: re.Pattern[str]  # 12 or more list characters in a row


@functools.cache
def _han_table() -> _HanTable:
    lists = [language.index for language in _languages() if language.han]
    scores: dict[str, float] = {}
    for index in reversed(lists):  # the simplified list's rank wins where both have it
        for char, rank in index.items():
            scores[char] = math.log((rank + 1) * _ZIPF_NORM / 2048)
    chars = "".join(sorted(scores))
    segments = re.compile(f"[{re.escape(chars)}]{{{MIN_MNEMONIC_WORDS},}}")
    return _HanTable(scores, tuple(lists), segments)


class _ChecksumBudget:
    """Checksums computed for glued Chinese, bounded per text (a 1 MB text of random
    characters would otherwise need millions); past it, a random-looking window counts."""

    def __init__(self, text_length: int) -> None:
        self.left = 2_000 + text_length // 64

    def check(self, chars: str, table: _HanTable) -> bool:
        if self.left <= 0:
            return True
        self.left -= 1
        for index in table.indexes:
            if all(c in index for c in chars) and _checksum_ok([index[c] for c in chars]):
                return True
        return False


def _glued_han_spans(text: str, tokens: _Tokens, labels: _Labels) -> Iterable[tuple[int, int]]:
    table = _han_table()
    budget = _ChecksumBudget(len(text))
    for t in tokens.han_runs:
        start, end = tokens.starts[t], tokens.ends[t]
        if end - start < MIN_MNEMONIC_WORDS:
            continue
        phrase = labels.phrase_start(start, end)
        if phrase is None and start > 0:  # a label just before: "助记词：的一是…"
            before = labels.phrase_start(max(0, start - 8), start)
            phrase = start if before is not None and before >= start else None
        for segment in table.segments.finditer(text, start, end):
            if phrase is not None and segment.start() <= phrase <= segment.end() - 12:
                yield from _after_label(phrase, segment, table, budget)
            elif segment.span() == (start, end) and end - start in VALID_LENGTHS:
                threshold = _AFTER_LABEL_THRESHOLD if labels.near(start, end) else None
                yield from _whole(segment, table, budget, threshold)
            else:
                yield from _inside(segment, table, budget)
            yield from _repeated(segment, table, budget)


# Prose never uses one character five times in twelve, but phrases from low-entropy
# seeds do (all-zero entropy gives "的的的的的的的的的的的在", a few set bits "的的的这熟在宣
# 的的的的个"), and they score like prose a character.
_REPEAT = re.compile(r"(.)(?:.{0,4}?\1){4,}")


def _repeated(
    segment: re.Match[str], table: _HanTable, budget: _ChecksumBudget
) -> Iterable[tuple[int, int]]:
    """Checksummed windows overlapping such a run that are 5/12 one character (the run
    may start in the prose before the phrase: "抄下来的的的…")."""
    chars, offset = segment.group(), segment.start()
    for run in _REPEAT.finditer(chars):
        first, last, char = *run.span(), run.group(1)
        for length in VALID_LENGTHS:
            lowest, highest = max(0, first + 5 - length), min(last - 5, len(chars) - length)
            for begin in range(lowest, highest + 1):
                window = chars[begin : begin + length]
                if 12 * window.count(char) >= 5 * length and budget.check(window, table):
                    yield offset + begin, offset + begin + length
                    break


def _after_label(
    phrase: int, segment: re.Match[str], table: _HanTable, budget: _ChecksumBudget
) -> Iterable[tuple[int, int]]:
    """List characters right after a label: the longest checksummed phrase there, and
    (a mistyped or partial phrase has no checksum; a short one may hold by chance) the
    characters up to a phrase's length when the first twelve do not read like prose."""
    chars = segment.group()[phrase - segment.start() :]
    end = 0
    for length in reversed(VALID_LENGTHS):
        if length <= len(chars) and budget.check(chars[:length], table):
            end = phrase + length
            break
    head = chars[:MIN_MNEMONIC_WORDS]
    if sum(map(table.scores.__getitem__, head)) >= _AFTER_LABEL_THRESHOLD * len(head):
        end = max(end, phrase + min(len(chars), max(VALID_LENGTHS) + 4))
    if end:
        yield phrase, end


def _whole(
    segment: re.Match[str],
    table: _HanTable,
    budget: _ChecksumBudget,
    threshold: float | None = None,
) -> Iterable[tuple[int, int]]:
    """A run of exactly 12/15/18/21/24 list characters on its own: checksum and random
    look."""
    chars = segment.group()
    score = sum(map(table.scores.__getitem__, chars))
    least = _WHOLE_THRESHOLD if threshold is None else threshold  # lower with a label near
    if score >= least * len(chars) and budget.check(chars, table):
        yield segment.span()


# After a label, a phrase's characters need only not read like prose (a random phrase's
# twelve characters average +1.1, none of 20,000 below -0.7; prose averages about -1).
_AFTER_LABEL_THRESHOLD = -0.5
# Inside a longer run the phrase's ends are unknown and many windows are tried, so a
# window must look more random the shorter it is (support prose reaches ~0.4 a character
# over 15 characters, ~0.25 over 18; a random phrase averages 1.1).
_INSIDE_THRESHOLD = {12: 0.5, 15: 0.45, 18: 0.3, 21: 0.3, 24: 0.3}
# Up to 15 characters, prose can look as random as a phrase ("显示网络错误麻烦尽快回复"
# scores +1.0): such a window must also repeat no character (prose repeats itself; 12
# random characters rarely do) and sit between the commonest characters of prose ("抄下来的
# <phrase>为什么") or at the end of its run.
_INSIDE_DISTINCT = 15
_COMMON_NEIGHBOUR = -1.5  # score of the ~55 commonest characters
_REPEATS_FORGIVEN = 0.9  # a repeat in a window this random is chance (prose peaks ~0.6)
# A run of exactly a phrase's length on its own needs a valid checksum and this score a
# character. Measured on 20,000 random phrases and the 26,585 twelve- to eighteen-character
# list-only windows of the corpus' Chinese prose: at 0.3, 1 % of phrases are missed and
# 0.015 % of prose windows redacted; at 0.0, 0.1 % and 0.05 %; at -0.6, none and 0.6 %.
_WHOLE_THRESHOLD = 0.0


def _stands_out(chars: str, first: int, length: int, table: _HanTable) -> bool:
    window = chars[first : first + length]
    score = sum(map(table.scores.__getitem__, window)) / length
    if len(set(window)) < length and score < _REPEATS_FORGIVEN:
        return False
    before = chars[first - 1] if first else ""
    after = chars[first + length] if first + length < len(chars) else ""
    return all(not c or table.scores[c] <= _COMMON_NEIGHBOUR for c in (before, after))


def _inside(
    segment: re.Match[str], table: _HanTable, budget: _ChecksumBudget
) -> Iterable[tuple[int, int]]:
    """Windows of valid lengths that look random and have a valid checksum. A segment with
    more random-looking windows than checksums left to spend is a block of random
    characters (phrases, or an attack on this very loop): all of it goes."""
    chars, offset = segment.group(), segment.start()
    prefix = list(itertools.accumulate(map(table.scores.__getitem__, chars), initial=0.0))
    for length, threshold in _INSIDE_THRESHOLD.items():
        if length > len(chars):
            break
        sums = map(operator.sub, prefix[length:], prefix[:-length])
        hot = list(itertools.compress(itertools.count(), map((threshold * length).__le__, sums)))
        if len(hot) > budget.left:
            yield segment.span()
            return
        for first in hot:
            window = chars[first : first + length]
            if length <= _INSIDE_DISTINCT and not _stands_out(chars, first, length, table):
                continue
            if budget.check(window, table):
                yield offset + first, offset + first + length


# --- all together --------------------------------------------------------------------------


def mnemonic_spans(text: str) -> list[Span]:
    """Every mnemonic in `text` as one span (overlapping findings merged)."""
    tokens = _tokenize(text)
    labels = _Labels(text)
    judge = _Judge(text, tokens, labels)
    found: list[tuple[int, int]] = []
    for lang in tokens.positions:
        if len(tokens.positions[lang]) >= _MIN_CANDIDATE - _MAX_TYPOS:
            found.extend(judge.spans(lang))
    if tokens.han_runs:
        found.extend(_glued_han_spans(text, tokens, labels))
    spans: list[Span] = []
    for start, end in sorted(found):
        if spans and start <= spans[-1][1]:
            if end > spans[-1][1]:
                spans[-1] = (spans[-1][0], end, KIND)
            continue
        spans.append((start, end, KIND))
    return spans
