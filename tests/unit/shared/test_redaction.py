from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mnemonic import Mnemonic

from bench.redaction_corpus import B58, b58check
from shared.redaction import (
    MAX_CHARS,
    OFF_LOOP_CHARS,
    REDACTION_WARNING,
    Redaction,
    TextTooLong,
    redact,
    redact_async,
)

if TYPE_CHECKING:
    from collections.abc import Callable

MNEMONIC = Mnemonic("english")
WORDLIST = MNEMONIC.wordlist
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ORDINARY_EN = [
    "Hi, my withdrawal of 1500 USDT has been pending for 3 hours. Can you check it please?",
    "I forgot my password and lost my phone, how do I restore my wallet on a new device?",
    "Someone logged in to my account from an unknown location and changed my 2FA!",
    "My deposit never arrived. I think I picked the wrong network, is there any way back?",
    "You asked me to wait one more day, but nobody has replied for a week. This is unfair.",
    "The order was not filled even though the price reached my limit. Why?",
    "Please help, I sent ETH to the address you gave me and now I can't find it anywhere.",
    "I would like to make a complaint about the agent who handled my case last Monday.",
]
ORDINARY_ZH = [
    "你好，我的提现已经三个小时了还没到账，请帮忙查一下。",
    "我的账号被盗了，有异地登录记录，谷歌验证也被改了，请尽快冻结账户！",
    "充值USDT充错链了，从TRC20充到了ERC20地址，能找回吗？",
    "换了新手机以后忘记密码，怎么恢复钱包？",
    "有人冒充客服让我把资金转到一个地址，我被骗了5000 USDT。",
    "实名认证一直失败，身份证照片已经上传三次了。",
    "客服态度很差，我要投诉。",
]
ORDINARY = ORDINARY_EN + ORDINARY_ZH


# --- builders ------------------------------------------------------------------------------


def wif(key: bytes, *, compressed: bool, testnet: bool) -> str:
    version = b"\xef" if testnet else b"\x80"
    return b58check(version + key + (b"\x01" if compressed else b""))


def word_tokens(text: str) -> list[str]:
    return [t.lower() for t in re.findall(r"[A-Za-z]+", text)]


def has_pair_of(words: list[str], text: str) -> bool:
    """True if two consecutive words of ``words`` still stand next to each other in text."""
    pairs = set(itertools.pairwise(words))
    tokens = word_tokens(text)
    return any(pair in pairs for pair in itertools.pairwise(tokens))


@st.composite
def formatted_mnemonics(draw: st.DrawFn) -> tuple[list[str], str]:
    strength = draw(st.sampled_from([128, 160, 192, 224, 256]))
    words = MNEMONIC.to_mnemonic(draw(st.binary(min_size=strength // 8, max_size=strength // 8)))
    word_list = words.split()
    numbering = draw(st.sampled_from(["", "{}. ", "{}) ", "{}、", "({}) ", "#{} "]))
    separator = draw(st.sampled_from([" ", ", ", "\n", "  ", ",\n", "\t", " , ", "\r\n"]))
    case = draw(st.sampled_from([str.lower, str.upper, str.title, str.capitalize]))
    parts = [numbering.format(i) + case(word) for i, word in enumerate(word_list, start=1)]
    return word_list, separator.join(parts)


# --- mnemonics -----------------------------------------------------------------------------


@FAST
@given(
    phrase=formatted_mnemonics(),
    before=st.sampled_from([*ORDINARY, ""]),
    after=st.sampled_from([*ORDINARY, ""]),
)
def test_generated_mnemonic_is_always_redacted(
    phrase: tuple[list[str], str], before: str, after: str
) -> None:
    words, formatted = phrase
    text = f"{before}\n{formatted}\n{after}"

    result = redact(text)

    assert result.kinds == ("bip39_mnemonic",)
    assert "[REDACTED:bip39_mnemonic]" in result.text
    assert not has_pair_of(words, result.text)
    again = redact(result.text)  # a second pass (gateway, then intake) keeps what was done
    assert again.text == result.text
    assert again.kinds == ("bip39_mnemonic",)


@FAST
@given(phrase=formatted_mnemonics(), before=st.sampled_from(ORDINARY_ZH))
def test_text_around_a_mnemonic_survives_redaction(
    phrase: tuple[list[str], str], before: str
) -> None:
    _, formatted = phrase
    result = redact(f"{before}{formatted}{before}")

    assert result.text.startswith(before)
    assert result.text.endswith(f"[REDACTED:bip39_mnemonic]{before}")


def test_mnemonic_from_generate_inside_chinese_text_is_redacted() -> None:
    for strength in (128, 160, 192, 224, 256):
        phrase = MNEMONIC.generate(strength)

        result = redact(f"客服你好，我的助记词是 {phrase} 请帮我恢复钱包")

        assert result.text == "客服你好，我的助记词是 [REDACTED:bip39_mnemonic] 请帮我恢复钱包"


def test_numbered_mnemonic_keeps_only_the_first_number() -> None:
    words = MNEMONIC.to_mnemonic(bytes(16)).split()
    text = "Here they are:\n" + "\n".join(f"{i}) {w.upper()}" for i, w in enumerate(words, 1))

    assert redact(text).text == "Here they are:\n1) [REDACTED:bip39_mnemonic]"


@FAST
@given(words=st.lists(st.sampled_from(WORDLIST), min_size=12, max_size=30))
def test_any_run_of_twelve_or_more_wordlist_words_is_redacted(words: list[str]) -> None:
    result = redact("助记词: " + " ".join(words) + " ?")

    assert result.text == "助记词: [REDACTED:bip39_mnemonic] ?"


@FAST
@given(words=st.lists(st.sampled_from(WORDLIST), min_size=1, max_size=11))
def test_runs_shorter_than_twelve_words_are_kept(words: list[str]) -> None:
    text = "我想问一下 " + " ".join(words) + " 是什么意思？"

    assert redact(text) == Redaction(text=text, kinds=())


def test_abbreviated_or_misspelled_word_does_not_split_the_phrase() -> None:
    words = MNEMONIC.to_mnemonic(bytes(range(16))).split()
    words[6] = words[6][:4]  # wallets accept the first four letters
    words[9] = words[9] + "x"  # a typo after the fourth letter
    text = " ".join(words)

    assert redact(text).text == "[REDACTED:bip39_mnemonic]"


# --- raw hex keys and transaction hashes ---------------------------------------------------

hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
hex_case = st.sampled_from([str.lower, str.upper])

TX_CONTEXTS = [
    "tx hash: 0x{}",
    "TxID {}",
    "txid: {}",
    "Transaction hash 0x{} still pending",
    "交易哈希：0x{}",
    "提现的交易哈希是 {}，请帮忙查一下",
    "Tx hash:\n0x{}",
    "my withdrawal 0x{} has not arrived",
    "tx hash 0x{} and I never shared my private key",
]
KEY_CONTEXTS = [
    "private key: 0x{}",
    "Private Key {}",
    "my privkey is {}",
    "private_key=0x{}",
    "here is the secret 0x{} please restore",
    "{} is my private key",
    "私钥：{}",
    "这是我的私钥 0x{} 请帮我找回资产",
    "密钥 {}",
    "Private key:\n\n0x{}\n",
    "私钥\n{}",
    "tx hash 0x1234 private key {}",
]


@FAST
@given(digest=hex32, context=st.sampled_from(TX_CONTEXTS), case=hex_case)
def test_transaction_hashes_are_never_redacted(
    digest: str, context: str, case: Callable[[str], str]
) -> None:
    text = context.format(case(digest))

    assert redact(text) == Redaction(text=text, kinds=())


@FAST
@given(key=hex32, context=st.sampled_from(KEY_CONTEXTS), case=hex_case)
def test_hex_private_key_with_key_words_is_always_redacted(
    key: str, context: str, case: Callable[[str], str]
) -> None:
    result = redact(context.format(case(key)))

    assert result.kinds == ("hex_private_key",)
    assert key not in result.text.lower()
    assert "[REDACTED:hex_private_key]" in result.text


def test_nearest_label_decides_between_a_tx_hash_and_a_key_on_one_line() -> None:
    tx, key = "ab" * 32, "cd" * 32

    result = redact(f"tx hash: 0x{tx}, private key: 0x{key}")

    assert result.text == f"tx hash: 0x{tx}, private key: [REDACTED:hex_private_key]"


def test_key_words_in_another_sentence_do_not_redact_a_tx_hash() -> None:
    text = f"I never shared my private key. Here is the hash 0x{'ef' * 32}."

    assert redact(text).text == text


# --- Base58 keys ---------------------------------------------------------------------------


@FAST
@given(
    key=st.binary(min_size=32, max_size=32),
    compressed=st.booleans(),
    testnet=st.booleans(),
    context=st.sampled_from(["{}", "my key {} thanks", "私钥是{}。", "import this: {}\n"]),
)
def test_valid_wif_key_is_always_redacted(
    key: bytes, compressed: bool, testnet: bool, context: str
) -> None:
    encoded = wif(key, compressed=compressed, testnet=testnet)

    result = redact(context.format(encoded))

    assert result == Redaction(
        text=context.format("[REDACTED:wif_private_key]"), kinds=("wif_private_key",)
    )


@FAST
@given(key=st.binary(min_size=32, max_size=32), position=st.integers(min_value=1, max_value=50))
def test_wif_shaped_string_with_bad_checksum_is_kept(key: bytes, position: int) -> None:
    encoded = wif(key, compressed=True, testnet=False)
    swapped = "2" if encoded[position] != "2" else "3"
    broken = encoded[:position] + swapped + encoded[position + 1 :]

    assert redact(broken).kinds == ()


@FAST
@given(
    body=st.binary(min_size=74, max_size=74),
    version=st.sampled_from(
        [bytes.fromhex(v) for v in ("0488ade4", "04358394", "049d7878", "04b2430c")]
    ),
)
def test_extended_private_key_is_always_redacted(body: bytes, version: bytes) -> None:
    encoded = b58check(version + body)
    assert encoded[1:4] == "prv"

    result = redact(f"my wallet export: {encoded} ok")

    assert result.text == "my wallet export: [REDACTED:extended_private_key] ok"
    assert result.kinds == ("extended_private_key",)


# --- things that must stay -----------------------------------------------------------------


@st.composite
def addresses(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["eth", "tron", "p2pkh", "p2sh", "bech32", "taproot"]))
    h20 = draw(st.binary(min_size=20, max_size=20))
    if kind == "eth":
        return "0x" + draw(st.sampled_from([str.lower, str.upper]))(h20.hex())
    if kind == "tron":
        return b58check(b"\x41" + h20)
    if kind == "p2pkh":
        return b58check(b"\x00" + h20)
    if kind == "p2sh":
        return b58check(b"\x05" + h20)
    length = 38 if kind == "bech32" else 58
    prefix = "bc1q" if kind == "bech32" else "bc1p"
    return prefix + "".join(
        draw(st.lists(st.sampled_from(BECH32), min_size=length, max_size=length))
    )


@FAST
@given(
    address=addresses(), context=st.sampled_from(["{}", "to {} please", "私钥没给别人，地址是{}"])
)
def test_addresses_are_never_redacted(address: str, context: str) -> None:
    text = context.format(address)

    assert redact(text) == Redaction(text=text, kinds=())


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_support_text_is_unchanged(text: str) -> None:
    assert redact(text) == Redaction(text=text, kinds=())


def test_several_secrets_are_all_redacted_and_kinds_listed_once() -> None:
    phrase = MNEMONIC.to_mnemonic(bytes(32))
    key_wif = wif(bytes(range(32)), compressed=True, testnet=False)
    text = f"words {phrase}\nprivate key {'11' * 32}\nwif {key_wif}\nagain {phrase}"

    result = redact(text)

    assert result.kinds == ("bip39_mnemonic", "hex_private_key", "wif_private_key")
    assert result.text.count("[REDACTED:bip39_mnemonic]") == 2


def test_warning_exists_in_english_and_chinese() -> None:
    assert set(REDACTION_WARNING) == {"en", "zh-CN"}
    assert "seed phrase" in REDACTION_WARNING["en"]
    assert "new wallet" in REDACTION_WARNING["en"]
    assert "助记词" in REDACTION_WARNING["zh-CN"]
    assert "新的钱包" in REDACTION_WARNING["zh-CN"]


# --- adversarial inputs: right answers on the shapes that used to take minutes --------------
# (The time itself is a benchmark figure, bench/bench_redaction.py, never a test assertion.)


def test_seed_followed_by_twenty_thousand_hex_tokens_redacts_every_one() -> None:
    tokens = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]

    result = redact("seed " + " ".join(tokens))

    assert result.kinds == ("hex_private_key",)
    assert result.text == "seed " + " ".join(["[REDACTED:hex_private_key]"] * len(tokens))


def test_txid_followed_by_twenty_thousand_hex_tokens_keeps_every_one() -> None:
    text = "txid " + " ".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000))

    assert redact(text) == Redaction(text=text, kinds=())


def test_each_hex_line_is_judged_by_its_own_label_line_above() -> None:
    key, tx = "ab" * 32, "cd" * 32
    block = f"private key:\n{key}\ntx hash:\n\n0x{tx}\n"

    result = redact(block * 5_000)

    assert result.text == f"private key:\n[REDACTED:hex_private_key]\ntx hash:\n\n0x{tx}\n" * 5_000


def test_hex_tokens_after_a_long_blank_prefix_in_one_sentence_are_judged_normally() -> None:
    text = "," * 200_000 + " secret " + " ".join(["ef" * 32] * 2_000)

    result = redact(text)

    assert result.text == "," * 200_000 + " secret " + " ".join(
        ["[REDACTED:hex_private_key]"] * 2_000
    )


def test_a_hex_key_after_a_label_split_across_lines_is_still_redacted() -> None:
    text = f"my private\nkey {'ab' * 32}"

    assert redact(text).text == "my private\nkey [REDACTED:hex_private_key]"


def test_fifty_thousand_wordlist_words_become_one_placeholder() -> None:
    text = "你好 " + " ".join(WORDLIST[i % 2048] for i in range(50_000)) + " 谢谢"

    assert redact(text).text == "你好 [REDACTED:bip39_mnemonic] 谢谢"


def test_eleven_word_runs_broken_by_prose_stay_however_many_there_are() -> None:
    runs = [" ".join(WORDLIST[j : j + 11]) for j in range(0, 2048 - 11, 11)] * 5
    text = " the ".join(runs)

    assert redact(text) == Redaction(text=text, kinds=())


def test_thousands_of_wif_shaped_strings_keep_all_but_the_real_keys() -> None:
    real = wif(bytes(range(32)), compressed=True, testnet=False)
    fakes = ["K" + B58[i % 58] * 51 for i in range(10_000)]

    result = redact(" ".join([*fakes, real, *fakes]))

    assert result.text == " ".join([*fakes, "[REDACTED:wif_private_key]", *fakes])


def test_text_longer_than_the_maximum_is_refused_with_its_length() -> None:
    with pytest.raises(TextTooLong) as refused:
        redact("a" * (MAX_CHARS + 1))

    assert refused.value.length == MAX_CHARS + 1
    assert refused.value.reason == "text_too_long"


@pytest.mark.parametrize("size", [100, OFF_LOOP_CHARS + 1])
async def test_redact_async_gives_the_same_result_as_redact(size: int) -> None:
    phrase = MNEMONIC.to_mnemonic(bytes(16))
    text = (f"private key {'11' * 32} {phrase} " * size)[:size]

    assert await redact_async(text) == redact(text)


async def test_the_event_loop_keeps_running_while_redact_async_scans_a_long_text() -> None:
    text = "seed " + " ".join(["ab" * 32] * 2_000)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    before = ticks
    result = await redact_async(text)
    during = ticks - before
    ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticker

    assert during > 0
    assert result.text.count("[REDACTED:hex_private_key]") == 2_000


def test_a_placeholder_redacted_upstream_still_counts_as_redacted() -> None:
    """The mail gateway redacts before publishing; intake must still warn the requester."""
    text = "my seed is [REDACTED:bip39_mnemonic], and the key [REDACTED:hex_private_key]"
    result = redact(text)
    assert result.text == text
    assert result.kinds == ("bip39_mnemonic", "hex_private_key")


def test_a_bracketed_word_that_is_no_placeholder_is_plain_text() -> None:
    assert redact("status [REDACTED:nothing] and [REDACTED]").kinds == ()
