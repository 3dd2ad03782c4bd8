"""Private keys in every format users paste, and the look-alikes agents need kept."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench.redaction_corpus import b58check, b58encode
from shared.redaction import Redaction, redact
from shared.redaction.solana_keys import MAX_KEY_CHECKS

if TYPE_CHECKING:
    from collections.abc import Callable

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def keypair(seed: bytes) -> bytes:
    return seed + Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def keystore_json(indent: int | None = None) -> str:
    store = {
        "address": "ab" * 20,
        "crypto": {
            "cipher": "aes-128-ctr",
            "ciphertext": "11" * 32,
            "cipherparams": {"iv": "22" * 16},
            "kdf": "scrypt",
            "kdfparams": {"dklen": 32, "n": 262144, "p": 1, "r": 8, "salt": "33" * 32},
            "mac": "44" * 32,
        },
        "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
        "version": 3,
    }
    return json.dumps(store, indent=indent)


hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
hex_form = st.sampled_from([str.lower, str.upper, lambda h: "0x" + h, lambda h: "0X" + h.upper()])
seeds = st.binary(min_size=32, max_size=32)

# --- hex keys: any wording is a key; only transaction evidence keeps the string -------------

EVERYDAY_KEY_WORDING = [
    "here is what MetaMask showed me when I clicked export: {}",
    "{}",
    "  {}\n",
    "sorry, is this what you need? {}",
    "I copied it from the app: {}. Please move my coins.",
    "can you get my coins back with this {}",
    "这是我钱包里显示的那串：{}",
    "你们要的是不是这个{}？",
    "Account details → show:\n\n{}\n\nthanks",
    'const wallet = new ethers.Wallet("{}")',
    '{{"privateKey": "{}"}}',
    "PRIVATE_KEY={}",
    "I bridged to Secret Network last week. Here it is: {}",
    "my SecretSwap wallet: {}",
    "tx hash 0x{other} and here is my key {}",
    "I can't withdraw, the platform wants a fee. My wallet: {}",
    "please transfer my funds out of this wallet {}",
    "deposit address? no idea, the app shows {}",
    "private key for address 0x{other40}: {}",
    "Payment page said to paste this {} to unlock",
    '{{"secretKey": "{}"}}',
]
TRANSACTION_WORDING = [
    "tx hash: {}",
    "txid {} still unconfirmed",
    "My deposit {} has not arrived after 2 hours",
    "https://etherscan.io/tx/{}",
    "https://mempool.space/tx/{}",
    "https://tronscan.org/#/transaction/{}",
    "I bridged from Secret Network and the hash is {}",
    "Secret Network bridge tx {} stuck",
    "withdrawal sent, transaction {}, but the balance is still zero",
    "the seed round claim tx {} failed",
    "I used my private key wallet to send it, tx: {}",
    "deposit not received\n{}\nplease check",
    "Transaction ID {} (12 USDT via TRC20)",
    "blockchain.com says {} is confirmed but you say no",
    "交易哈希：{}",
    "提现的txid是{}，对方说没收到",
    "我转账的哈希是{}，请帮忙查一下",
    "交易ID\n{}",
    "充值没到账 {}",
    "private key: 0x{other}, tx hash: {}",
    "my withdrawal {} has not arrived",
    "deposit of 50 USDT hasn't been credited: {}",
    '{{"transactionHash": "{}", "blockHash": "0x{other}"}}',
    '{{"blockHash": "{}"}}',
    "public_key: {}",
    "https://example-explorer.io/tx/{}?chain=1",
    "sha256 checksum of the installer: {}",
    "订单号 {}",
    "Order ID: {}",
    "转账记录 {}",
    "这笔转账{}显示失败",
    "链上记录：{}",
]


@FAST
@given(key=hex32, form=hex_form, wording=st.sampled_from(EVERYDAY_KEY_WORDING), other=hex32)
def test_hex_key_is_redacted_whatever_words_introduce_it(
    key: str, form: Callable[[str], str], wording: str, other: str
) -> None:
    assume(key != other)
    text = wording.format(form(key), other=other, other40=other[:40])

    result = redact(text)

    assert result.kinds == ("hex_private_key",)
    assert key not in result.text.lower()
    assert result.text == wording.format(
        "[REDACTED:hex_private_key]", other=other, other40=other[:40]
    )


@FAST
@given(digest=hex32, form=hex_form, wording=st.sampled_from(TRANSACTION_WORDING), other=hex32)
def test_hex_string_named_as_a_transaction_is_kept(
    digest: str, form: Callable[[str], str], wording: str, other: str
) -> None:
    result = redact(wording.format(form(digest), other=other))

    assert form(digest) in result.text


@FAST
@given(key=hex32, form=hex_form, cut=st.integers(min_value=16, max_value=48))
def test_hex_key_wrapped_over_two_lines_is_redacted(
    key: str, form: Callable[[str], str], cut: int
) -> None:
    shown = form(key)
    assume(not (shown[:2] in ("0x", "0X") and cut == 40))  # reads as an address and an id
    cut += len(shown) - 64
    wrapped = shown[:cut] + "\n" + shown[cut:]

    assert redact(f"私钥：{wrapped}\n谢谢").text == "私钥：[REDACTED:hex_private_key]\n谢谢"


@FAST
@given(digest=hex32)
def test_transaction_hash_wrapped_over_two_lines_is_kept(digest: str) -> None:
    text = f"tx hash: 0x{digest[:32]}\n{digest[32:]}"

    assert redact(text) == Redaction(text=text, kinds=())


def test_an_address_above_a_short_id_is_no_wrapped_key() -> None:
    text = f"0x{'ab' * 20}\n{'cd' * 12}"

    assert redact(text) == Redaction(text=text, kinds=())


def test_a_lone_hex_string_with_no_words_is_taken_for_a_key() -> None:
    assert redact("ab" * 32).text == "[REDACTED:hex_private_key]"
    assert redact("0x" + "ab" * 32 + "\n").text == "[REDACTED:hex_private_key]\n"


@FAST
@given(
    raw=st.sampled_from([20, 64, 65]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    wording=st.sampled_from(["private key {}", "{}", "my export: {}", "私钥 {}"]),
)
def test_addresses_public_keys_and_signatures_in_hex_are_never_hex_keys(
    raw: bytes, wording: str
) -> None:
    text = wording.format(("0x" if len(raw) == 20 else "") + raw.hex())

    assert "hex_private_key" not in redact(text).kinds


# --- WIF and extended keys -----------------------------------------------------------------


@FAST
@given(key=seeds, compressed=st.booleans(), version=st.sampled_from([b"\x80", b"\xef"]))
def test_wif_keys_of_mainnet_and_testnet_are_redacted(
    key: bytes, compressed: bool, version: bytes
) -> None:
    encoded = b58check(version + key + (b"\x01" if compressed else b""))
    assert encoded[0] in ("5KL" if version == b"\x80" else "9c")

    assert redact(f"Electrum exported: {encoded}").text == (
        "Electrum exported: [REDACTED:wif_private_key]"
    )


@FAST
@given(key=seeds, version=st.sampled_from([b"\x00", b"\x05", b"\x41", b"\x6f"]))
def test_base58check_strings_of_other_versions_are_kept(key: bytes, version: bytes) -> None:
    text = "is this right? " + b58check(version + key + b"\x01")

    assert redact(text) == Redaction(text=text, kinds=())


@FAST
@given(
    body=st.binary(min_size=74, max_size=74),
    version=st.sampled_from(["0488ade4", "04358394", "049d7878", "04b2430c", "044a4e28"]),
)
def test_testnet_and_segwit_extended_private_keys_are_redacted(body: bytes, version: str) -> None:
    encoded = b58check(bytes.fromhex(version) + body)

    assert redact(f"backup:\n{encoded}\n").text == "backup:\n[REDACTED:extended_private_key]\n"


def test_extended_public_keys_are_kept() -> None:
    xpub = b58check(bytes.fromhex("0488b21e") + bytes(range(74)))
    assert xpub.startswith("xpub")

    assert redact(f"my xpub {xpub}").kinds == ()


# --- Solana --------------------------------------------------------------------------------


@FAST
@given(seed=seeds, wording=st.sampled_from(["Phantom export: {}", "{}", "私钥 {}", "key={}"]))
def test_solana_secret_key_in_base58_is_redacted(seed: bytes, wording: str) -> None:
    key = b58encode(keypair(seed))

    assert redact(wording.format(key)).text == wording.format("[REDACTED:solana_secret_key]")


@FAST
@given(signature=st.binary(min_size=64, max_size=64))
def test_solana_transaction_signature_is_kept_even_next_to_key_words(signature: bytes) -> None:
    encoded = b58encode(signature)
    assume(len(encoded) >= 86)  # not 64 zero bytes, which would read as hex
    text = f"I signed with my private key and got {encoded} but no tokens"

    assert redact(text) == Redaction(text=text, kinds=())


@FAST
@given(seed=seeds)
def test_solana_secret_key_in_hex_is_redacted(seed: bytes) -> None:
    assert redact(keypair(seed).hex()).text == "[REDACTED:solana_secret_key]"


def test_past_the_check_budget_every_64_byte_candidate_counts_as_a_key() -> None:
    signatures = [b58encode(hashlib.sha512(str(i).encode()).digest()) for i in range(3_000)]
    signatures = [s for s in signatures if len(s) >= 86]

    result = redact(" ".join(signatures))

    kept = [s for s in signatures if s in result.text]
    assert kept == signatures[:MAX_KEY_CHECKS]


@FAST
@given(seed=seeds, spacing=st.sampled_from(["", " ", "\n  "]))
def test_solana_key_file_byte_array_is_redacted(seed: bytes, spacing: str) -> None:
    array = "[" + ("," + spacing).join(str(b) for b in keypair(seed)) + "]"

    result = redact(f"cat ~/.config/solana/id.json\n{array}")

    assert result.text == "cat ~/.config/solana/id.json\n[REDACTED:byte_array_key]"


@FAST
@given(raw=st.binary(min_size=64, max_size=64))
def test_any_array_of_64_byte_values_is_redacted(raw: bytes) -> None:
    assert redact(json.dumps(list(raw))).kinds == ("byte_array_key",)


@FAST
@given(seed=seeds)
def test_array_of_32_byte_values_is_redacted_only_when_called_a_key(seed: bytes) -> None:
    array = json.dumps(list(seed))

    assert redact(f"private key: {array}").text == "private key: [REDACTED:byte_array_key]"
    assert redact(f"私钥\n{array}").kinds == ("byte_array_key",)
    assert redact(f"block hash {array}").kinds == ()
    assert redact(f"scores: {array}").kinds == ()


def test_arrays_of_other_lengths_or_larger_numbers_are_kept() -> None:
    for text in (
        json.dumps(list(range(63))),
        json.dumps(list(range(65))),
        json.dumps([*range(63), 256]),
        "[1000, 2000, 3000]",
    ):
        assert redact(text).kinds == (), text


# --- keystores -----------------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 2, 4])
@pytest.mark.parametrize(
    ("wording", "password"),
    [
        ("Here is my keystore file:\n{b}\npassword: {p}", "hunter2-x9!"),
        ("the password is {p}\n{b}", "Moon-abc@1"),
        ("MyEtherWallet won't open this: {b} (pass: {p})", "satoshi-77#"),
        ("pw {p}\n\n{b}", "qwerty-zz"),
        ("这是我的keystore文件\n{b}\n密码：{p}", "xinmima-123"),
        ("keystore：{b} 钱包密码 {p}，导入不了", "lambo-9q"),
        ('{b}\nPassword = "{p}"', "two words"),
    ],
)
def test_keystore_and_the_password_next_to_it_are_redacted(
    indent: int | None, wording: str, password: str
) -> None:
    body = keystore_json(indent)

    result = redact(wording.replace("{b}", body).replace("{p}", password))

    assert result.kinds == ("keystore_json", "keystore_password")
    assert password not in result.text
    assert "[REDACTED:keystore_json]" in result.text
    assert "ciphertext" not in result.text
    assert "scrypt" not in result.text


def test_a_password_label_without_a_password_removes_only_the_keystore() -> None:
    text = f"I forgot the password, sorry. Here is the file: {keystore_json()}"

    result = redact(text)

    assert result == Redaction(
        text="I forgot the password, sorry. Here is the file: [REDACTED:keystore_json]",
        kinds=("keystore_json",),
    )


def test_keystore_escaped_inside_a_json_string_is_redacted_whole() -> None:
    inner = json.dumps(json.loads(keystore_json()))
    text = json.dumps({"message": f"my wallet file {inner} help"})

    result = redact(text)

    assert result.kinds == ("keystore_json",)
    assert "ciphertext" not in result.text
    assert result.text.endswith('help"}')


def test_a_keystore_cut_off_at_the_end_is_redacted_to_the_end() -> None:
    body = keystore_json(2)

    assert redact("help!\n" + body[:300]).text == "help!\n[REDACTED:keystore_json]"


def test_text_around_a_keystore_survives() -> None:
    text = f"hi, my address 0x{'ab' * 20} file: {keystore_json()} thanks a lot"

    assert (
        redact(text).text
        == f"hi, my address 0x{'ab' * 20} file: [REDACTED:keystore_json] thanks a lot"
    )


def test_a_password_far_from_any_keystore_is_kept() -> None:
    text = "I forgot my password: what now?\n" + "\n".join(["line"] * 5) + "\n" + keystore_json()

    result = redact(text)

    assert result.text.startswith("I forgot my password: what now?\n")
    assert result.kinds == ("keystore_json",)


@pytest.mark.parametrize(
    "text",
    [
        '{"crypto": "BTC", "amount": 12.5, "order": "ORD-1"}',
        "password: hunter2 (but I have no keystore)",
        "What is a ciphertext? And what is crypto: is it safe?",
    ],
)
def test_json_and_prose_that_merely_mention_crypto_or_passwords_are_kept(text: str) -> None:
    assert redact(text) == Redaction(text=text, kinds=())


# --- adversarial shapes: right answers (timing is bench/bench_redaction.py's) ---------------


def test_thousands_of_keystores_on_one_line_each_lose_their_password() -> None:
    piece = '{"crypto":{"ciphertext":"ab"}} password: x '

    result = redact(piece * 20_000)

    assert (
        result.text == "[REDACTED:keystore_json] password: [REDACTED:keystore_password] " * 20_000
    )


def test_a_million_open_braces_before_a_keystore_redact_from_the_keystore_on() -> None:
    text = "{" * 1_000_000 + '"crypto":{"ciphertext":"ab"}'

    result = redact(text)

    assert result.text == "{" * 999_999 + "[REDACTED:keystore_json]"


def test_thousands_of_unclosed_byte_arrays_are_kept() -> None:
    text = ("[" + "255, " * 70) * 3_000

    assert redact(text) == Redaction(text=text, kinds=())
