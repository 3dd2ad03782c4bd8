"""The BIP-39 mnemonic detector: every wordlist, every way users lay a phrase out, typos,
and the sentences and Chinese prose it must leave alone."""

from __future__ import annotations

import unicodedata

import pytest
from mnemonic import Mnemonic

from shared.redaction import redact
from shared.redaction.mnemonic import mnemonic_spans

PLACEHOLDER = "[REDACTED:bip39_mnemonic]"
LANGUAGES = sorted(Mnemonic.list_languages())
CIRCLED = [chr(0x2460 + i) for i in range(20)] + [chr(0x3251 + i) for i in range(15)]


def phrase(language: str = "english", entropy: bytes = bytes(range(16))) -> list[str]:
    """A phrase with a valid checksum, its words in NFC as users type them."""
    words = Mnemonic(language).to_mnemonic(entropy)
    return [unicodedata.normalize("NFC", w) for w in words.split(Mnemonic(language).delimiter)]


def only_placeholder_left(text: str, words: list[str]) -> bool:
    out = redact(text).text
    return PLACEHOLDER in out and not any(w in out for w in words if len(w) > 1)


# --- every list ----------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("separator", [" ", "\n", ", ", "、", "\u3000", "・", " | ", "\t"])
def test_a_phrase_in_any_list_with_any_separator_is_redacted(language: str, separator: str) -> None:
    words = phrase(language, bytes(range(3, 19)))

    result = redact(separator.join(words))

    assert result.text == PLACEHOLDER


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_24_word_phrase_in_any_list_is_one_placeholder(language: str) -> None:
    words = phrase(language, bytes(range(100, 132)))

    assert redact(f"help: {' '.join(words)} thanks").text == f"help: {PLACEHOLDER} thanks"


def test_japanese_phrase_with_ideographic_spaces_as_the_standard_writes_it() -> None:
    words = phrase("japanese")

    assert redact("\u3000".join(words)).text == PLACEHOLDER


def test_accents_dropped_or_decomposed_still_match_the_list() -> None:
    words = phrase("spanish", bytes(range(40, 56)))
    plain = ["".join(c for c in unicodedata.normalize("NFKD", w) if c.isascii()) for w in words]
    decomposed = [unicodedata.normalize("NFD", w) for w in words]

    assert redact(" ".join(plain)).text == PLACEHOLDER
    assert redact(" ".join(decomposed)).text == PLACEHOLDER


def test_upper_case_and_capitalised_words_are_the_same_words() -> None:
    words = phrase()

    assert redact(" ".join(w.upper() for w in words)).text == PLACEHOLDER
    assert redact(" ".join(w.title() for w in words)).text == PLACEHOLDER


# --- numbering -----------------------------------------------------------------------------

NUMBERINGS = {
    "dot": "{}. ",
    "dot glued": "{}.",
    "paren": "{}) ",
    "both parens": "({}) ",
    "hash": "#{} ",
    "dash glued": "{}-",
    "zero padded colon": "{:02d}: ",
    "bare glued": "{}",
    "chinese": "第{}个：",
    "ideographic comma": "{}、",
}


@pytest.mark.parametrize("numbering", NUMBERINGS.values(), ids=NUMBERINGS.keys())
@pytest.mark.parametrize("separator", ["", " ", "\n"])
def test_numbered_phrase_glued_or_spaced_is_redacted(numbering: str, separator: str) -> None:
    words = phrase()
    text = separator.join(numbering.format(i) + w for i, w in enumerate(words, 1))

    assert only_placeholder_left(text, words)


def test_circled_numbers_glued_to_the_words() -> None:
    words = phrase()
    text = "".join(CIRCLED[i] + w for i, w in enumerate(words))

    assert redact(text).text == CIRCLED[0] + PLACEHOLDER


def test_glued_numbering_keeps_only_the_first_number() -> None:
    words = phrase()
    text = "".join(f"{i}.{w}" for i, w in enumerate(words, 1))

    assert redact(text).text == "1." + PLACEHOLDER


# --- lines and tables ----------------------------------------------------------------------


def test_one_word_per_line_is_redacted() -> None:
    words = phrase()

    assert redact("my words:\n" + "\n".join(words) + "\nthanks").text == (
        f"my words:\n{PLACEHOLDER}\nthanks"
    )


@pytest.mark.parametrize("columns", [3, 4])
@pytest.mark.parametrize("cell", ["\t", " | ", "    "])
def test_tables_of_numbered_words_are_redacted(columns: int, cell: str) -> None:
    words = phrase("english", bytes(range(50, 82)))
    items = [f"{i}. {w}" for i, w in enumerate(words, 1)]
    rows = [cell.join(items[r : r + columns]) for r in range(0, len(items), columns)]

    assert only_placeholder_left("\n".join(rows), words)


# --- typos ---------------------------------------------------------------------------------


def test_one_misspelled_word_does_not_split_the_phrase() -> None:
    words = phrase()
    words[0], words[5] = "abandn", words[5][:-1] + "q"

    assert redact(" ".join(words)).text == PLACEHOLDER


def test_two_misspelled_words_anywhere_do_not_split_the_phrase() -> None:
    words = phrase("english", bytes(range(7, 23)))
    for first, second in [(0, 1), (3, 8), (10, 11), (0, 11)]:
        typed = list(words)
        typed[first] = typed[first][1:] + "x"  # two edits: one dropped, one added
        typed[second] = typed[second][:2] + "z" + typed[second][2:]

        assert redact(" ".join(typed)).text == PLACEHOLDER, (first, second)


def test_misspelled_words_at_the_ends_of_a_numbered_phrase_are_taken_with_it() -> None:
    words = phrase()
    words[0], words[11] = "cdiffx", "qqqq"
    text = "what is this? " + ", ".join(f"({i}) {w}" for i, w in enumerate(words, 1))

    assert redact(text).text == f"what is this? (1) {PLACEHOLDER}"


def test_misspelled_word_in_another_list_is_found_by_edit_distance() -> None:
    words = phrase("italian", bytes(range(60, 76)))
    words[4] = words[4][:2] + words[4][3:]

    assert redact(" ".join(words)).text == PLACEHOLDER


def test_abbreviations_to_four_letters_are_list_words() -> None:
    words = phrase("english", bytes(range(90, 106)))
    abbreviated = [w[:4] for w in words]

    assert redact("seed phrase: " + " ".join(abbreviated)).text == f"seed phrase: {PLACEHOLDER}"


# --- checksum, partial phrases, labels -----------------------------------------------------


def test_a_partial_phrase_of_eleven_words_counts_when_numbered_or_labelled() -> None:
    words = phrase()[:11]

    assert only_placeholder_left("\n".join(f"{i}. {w}" for i, w in enumerate(words, 1)), words)
    assert only_placeholder_left("my recovery phrase is " + " ".join(words), words)


def test_thirteen_words_with_a_bad_checksum_count() -> None:
    words = [*phrase(), "zoo"]

    assert redact(" ".join(words)).text == PLACEHOLDER


def test_eleven_unlabelled_words_in_a_sentence_are_kept() -> None:
    text = "我想问一下 " + " ".join(phrase()[:11]) + " 是什么意思？"

    assert redact(text).text == text


# --- Chinese -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["chinese_simplified", "chinese_traditional"])
@pytest.mark.parametrize("separator", [" ", "，", "、", "\n", "  "])
def test_spaced_chinese_characters_are_a_phrase_by_themselves(
    language: str, separator: str
) -> None:
    chars = phrase(language, bytes(range(20, 36)))

    assert redact(separator.join(chars)).text == PLACEHOLDER


@pytest.mark.parametrize("language", ["chinese_simplified", "chinese_traditional"])
def test_unspaced_chinese_phrase_after_a_label_is_redacted(language: str) -> None:
    chars = "".join(phrase(language, bytes(range(20, 36))))

    assert redact(f"我的助记词是{chars}，请帮帮我").text == f"我的助记词是{PLACEHOLDER}，请帮帮我"
    assert redact(f"助记词：{chars}").text == f"助记词：{PLACEHOLDER}"


def test_unspaced_chinese_phrase_without_label_is_found_by_its_checksum() -> None:
    chars = "".join(phrase("chinese_simplified", bytes(range(200, 232))))

    result = redact(f"这是我抄下来的{chars}为什么导入失败")

    assert PLACEHOLDER in result.text
    assert chars[2:-2] not in result.text


def test_unspaced_chinese_phrase_with_a_mistyped_checksum_needs_its_label() -> None:
    chars = phrase("chinese_simplified", bytes(range(20, 36)))
    chars[-1] = chars[0]  # checksum broken
    glued = "".join(chars)

    assert redact(f"助记词：{glued}").text == f"助记词：{PLACEHOLDER}"


CHINESE_PROSE = [
    "你好，我的提现已经三个小时了还没到账，请帮忙查一下。",
    "我的提现已经三个小时了还没有到账请帮我查一下为什么一直不成交",
    "今天早上我买的币突然不见了记录里也查不到麻烦尽快回复我",
    "对方已经付款了但是我没有收到通知订单被自动取消了请问什么时候能恢复正常",
    "有人在电报群里说是你们的工作人员，让我提供助记词，我没有给，请处理这个骗子",
    "我想知道私钥和助记词有什么区别，怎么安全地备份？",
    "助记词是什么意思？",
]


@pytest.mark.parametrize("text", CHINESE_PROSE)
def test_chinese_prose_of_list_characters_is_kept(text: str) -> None:
    assert redact(text).text == text


# --- English sentences of list words -------------------------------------------------------

WORDLIST_SENTENCES = [
    "I can not access my account because the wallet will not open today after the update",
    "please check my deposit again because the balance is wrong and I need the money for rent",
    "account balance problem again today, please check token price again, card phone error",
    "first coin slow, second device never arrive. Please cancel order and unlock card",
    "The simple swap feature gave me less coin than the quote shown on the screen",
]


@pytest.mark.parametrize("text", WORDLIST_SENTENCES)
def test_sentences_of_everyday_list_words_are_kept(text: str) -> None:
    assert mnemonic_spans(text) == []


def test_a_phrase_next_to_a_sentence_takes_only_the_phrase() -> None:
    words = phrase()
    text = f"My wallet will not open. {' '.join(words)} is what I wrote down."

    assert redact(text).text == f"My wallet will not open. {PLACEHOLDER} is what I wrote down."


# --- cost ----------------------------------------------------------------------------------


def test_a_long_block_of_random_list_characters_is_removed_whole() -> None:
    chinese = Mnemonic("chinese_simplified").wordlist
    block = "".join(chinese[(i * 7919) % 2048] for i in range(50_000))

    assert redact(f"你好{block}。谢谢").text.endswith(f"{PLACEHOLDER}。谢谢")


def test_many_near_phrases_broken_by_junk_are_all_kept() -> None:
    words = Mnemonic("english").wordlist
    text = " the ".join(
        " ".join(words[(j * 10 + k) % 2048] for k in range(10)) + " qqqqqq" for j in range(3_000)
    )

    assert mnemonic_spans(text) == []
