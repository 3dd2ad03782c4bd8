"""A labelled corpus of what users paste into support tickets, to measure redaction.

`corpus(seed, size)` returns `size` samples, the same for the same seed. Each sample is
either a text holding secrets, labelled with the exact substrings that must disappear and
their kind, or a hard negative, labelled with its class, in which nothing may be replaced.
Texts are English or Chinese (zh-CN) support messages.

Every secret is built for real, not shaped like one: mnemonics from the BIP-39 lists with
their checksum (and, on purpose, runs with misspelled words or a bad checksum), WIF and
BIP-32 extended keys with valid Base58Check checksums, Solana secret keys whose second half
is the Ed25519 public key of the first, Ethereum v3 keystores. Negatives are what agents
need to keep and what looks like a secret: prose made of list words, Chinese prose (the
Chinese lists are the 2048 most common characters), transaction hashes next to key-ish
words, addresses of every chain, Solana transaction signatures, order ids, amounts.

Every secret carries at least one piece of evidence a person reading the ticket would use:
its format and checksum, its separators or numbering, or the words around it. A Chinese
run written without spaces and without any word saying what it is must have a valid
checksum (otherwise it cannot be told from a sentence); a bare 64-hex string with no words
is labelled a key, so transaction hashes in the negatives always come with some sign of a
transaction (a word, an explorer link, a deposit that did not arrive).

`leaked` says what counts as caught. The building blocks (`b58check`, `wif`,
`extended_key`, `solana_keypair`, `mnemonic_words`, `misspell`, `keystore`, the address
builders, the wordings) are public so property tests can draw from them.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mnemonic import Mnemonic

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
LANGUAGES: tuple[str, ...] = tuple(sorted(Mnemonic.list_languages()))
MNEMONIC_LENGTHS = (12, 15, 18, 21, 24)
# Languages whose words are spelled with letters, so a typo is a changed letter.
ALPHABETIC = ("english", "spanish", "french", "italian", "czech", "portuguese", "turkish")
CJK = ("chinese_simplified", "chinese_traditional")

SECRET_KINDS = (
    "bip39_mnemonic",
    "hex_private_key",
    "wif_private_key",
    "extended_private_key",
    "solana_secret_key",
    "byte_array_key",
    "keystore_json",
    "keystore_password",
)
NEGATIVE_CLASSES = (
    "prose_en",
    "prose_zh",
    "wordlist_prose",
    "tx_hash",
    "address",
    "solana_signature",
    "order_id",
    "amount",
)


@dataclass(frozen=True)
class Sample:
    """One text and its label: the secrets in it, or the negative class it belongs to.

    `secrets` holds (kind, substring) pairs, each substring occurring verbatim in `text`.
    `keep` holds substrings an agent needs (addresses, hashes) next to secrets; nothing
    requires them in a negative sample, where the whole text must survive.
    """

    text: str
    secrets: tuple[tuple[str, str], ...]
    negative_class: str | None
    language: str = "en"
    wrapping: str = ""
    keep: tuple[str, ...] = ()


# --- what counts as caught --------------------------------------------------------------------

# Shortest run of a secret's letters and digits that counts as a leak when it survives.
PIECE = 8
_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+\]")


def _alnum(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def pieces(secret: str) -> set[str]:
    """Every run of `PIECE` consecutive letters or digits of `secret` (the whole of them when
    fewer): separators, numbering punctuation, padding and JSON punctuation do not count."""
    letters = _alnum(secret)
    if len(letters) <= PIECE:
        return {letters}
    return {letters[i : i + PIECE] for i in range(len(letters) - PIECE + 1)}


def leaked(secret: str, text: str, output: str, secrets: Sequence[str]) -> list[str]:
    """The pieces of `secret` that survive redaction: those `output` (placeholders removed)
    holds more often than `text` did around its `secrets`. Empty means caught, whatever
    placeholder replaced it."""
    around = text
    for other in sorted(secrets, key=len, reverse=True):
        around = around.replace(other, "\0")
    before, after = _alnum(around), _alnum(_PLACEHOLDER.sub("\0", output))
    return sorted(p for p in pieces(secret) if after.count(p) > before.count(p))


# --- encodings -------------------------------------------------------------------------------


def b58encode(data: bytes) -> str:
    number, out = int.from_bytes(data, "big"), []
    while number:
        number, rem = divmod(number, 58)
        out.append(B58[rem])
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + "".join(reversed(out))


def checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58check(payload: bytes) -> str:
    return b58encode(payload + checksum(payload))


def _bech32_polymod(values: Sequence[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def segwit_address(program: bytes, version: int, hrp: str = "bc") -> str:
    """Bech32 (version 0) or Bech32m (version 1, taproot) address for a witness program."""
    acc, bits, data = 0, 0, [version]
    for byte in program:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    const = 1 if version == 0 else 0x2BC830A3
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod([*expanded, *data, 0, 0, 0, 0, 0, 0]) ^ const
    data += [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32[d] for d in data)


_KECCAK_RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]  # fmt: skip
# Rotation offsets, indexed x + 5y.
_KECCAK_ROT = [
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
]  # fmt: skip
_M64 = (1 << 64) - 1


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the pre-standard SHA-3 padding), for EIP-55 checksums."""
    rate = 136
    padded = bytearray(data) + b"\x01" + b"\x00" * ((-len(data) - 1) % rate)
    padded[-1] |= 0x80
    state = [0] * 25
    for block in range(0, len(padded), rate):
        for i in range(rate // 8):
            state[i] ^= int.from_bytes(padded[block + 8 * i : block + 8 * i + 8], "little")
        for rc in _KECCAK_RC:
            c = [
                state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20]
                for x in range(5)
            ]
            for x in range(5):
                d = c[(x - 1) % 5] ^ (((c[(x + 1) % 5] << 1) | (c[(x + 1) % 5] >> 63)) & _M64)
                for y in range(0, 25, 5):
                    state[x + y] ^= d
            b = [0] * 25
            for x in range(5):
                for y in range(5):
                    r, v = _KECCAK_ROT[x + 5 * y], state[x + 5 * y]
                    b[y + 5 * ((2 * x + 3 * y) % 5)] = (
                        ((v << r) | (v >> (64 - r))) & _M64 if r else v
                    )
            for x in range(5):
                for y in range(0, 25, 5):
                    state[x + y] = b[x + y] ^ (~b[(x + 1) % 5 + y] & b[(x + 2) % 5 + y])
            state[0] ^= rc
    return b"".join(lane.to_bytes(8, "little") for lane in state[:4])


# --- secrets ---------------------------------------------------------------------------------

WIF_VERSIONS = {"mainnet": 0x80, "testnet": 0xEF}
EXTENDED_VERSIONS = {
    "xprv": bytes.fromhex("0488ADE4"),
    "yprv": bytes.fromhex("049D7878"),
    "zprv": bytes.fromhex("04B2430C"),
    "tprv": bytes.fromhex("04358394"),
}


def private_key(rng: random.Random) -> bytes:
    """32 bytes in the secp256k1 range (every random 32 bytes but a 2^-128 fraction)."""
    return rng.randbytes(31) + bytes([rng.randrange(1, 256)])


def wif(key: bytes, network: str = "mainnet", compressed: bool = True) -> str:
    return b58check(bytes([WIF_VERSIONS[network]]) + key + (b"\x01" if compressed else b""))


def extended_key(
    prefix: str, chain_code: bytes, key: bytes, depth: int = 0, fingerprint: bytes = b"\0" * 4,
    child: int = 0,
) -> str:  # fmt: skip
    """BIP-32 serialization of a private node, with its Base58Check checksum (111 chars)."""
    payload = (
        EXTENDED_VERSIONS[prefix] + bytes([depth]) + fingerprint + child.to_bytes(4, "big")
        + chain_code + b"\x00" + key
    )  # fmt: skip
    return b58check(payload)


def ed25519_public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def solana_keypair(seed: bytes) -> bytes:
    """A Solana secret key as wallets export it: the 32-byte seed, then its public key."""
    return seed + ed25519_public(seed)


def byte_array(data: bytes, spacing: str = "") -> str:
    """`data` as `solana-keygen` writes a keypair file: a JSON array of numbers."""
    return "[" + ("," + spacing).join(str(b) for b in data) + "]"


@cache
def _mnemonic(language: str) -> Mnemonic:
    return Mnemonic(language)


def wordlist(language: str) -> list[str]:
    return _mnemonic(language).wordlist


def mnemonic_words(language: str, entropy: bytes) -> list[str]:
    """A real BIP-39 phrase (valid checksum) for `entropy` (16/20/24/28/32 bytes), the
    words in NFC, as users type them (some lists are stored decomposed)."""
    phrase = _mnemonic(language).to_mnemonic(entropy)
    return [unicodedata.normalize("NFC", w) for w in phrase.split(_mnemonic(language).delimiter)]


def valid_checksum(language: str, words: Sequence[str]) -> bool:
    listed = wordlist(language)
    nfkd = [unicodedata.normalize("NFKD", w) for w in words]
    if len(words) not in MNEMONIC_LENGTHS or any(w not in listed for w in nfkd):
        return False
    return _mnemonic(language).check(" ".join(nfkd))


def bad_checksum_words(language: str, rng: random.Random, count: int) -> list[str]:
    """`count` list words whose checksum does not hold (a phrase mistyped by a word, or a
    partial one)."""
    listed = wordlist(language)
    while True:
        words = [unicodedata.normalize("NFC", rng.choice(listed)) for _ in range(count)]
        if not valid_checksum(language, words):
            return words


@cache
def _alphabet(language: str) -> str:
    return "".join(sorted({c for w in wordlist(language) for c in unicodedata.normalize("NFC", w)}))


@cache
def _nfc_set(language: str) -> frozenset[str]:
    return frozenset(unicodedata.normalize("NFC", w) for w in wordlist(language))


def misspell(word: str, language: str, rng: random.Random, edits: int = 1) -> str:
    """`word` with `edits` letters substituted, dropped or added, no longer a list word."""
    alphabet, listed = _alphabet(language), _nfc_set(language)
    for _ in range(100):
        out = word
        for _ in range(edits):
            i, op = rng.randrange(len(out)), rng.randrange(3)
            if op == 0:
                out = out[:i] + rng.choice(alphabet) + out[i + 1 :]
            elif op == 1 and len(out) > 3:
                out = out[:i] + out[i + 1 :]
            else:
                out = out[:i] + rng.choice(alphabet) + out[i:]
        if out != word and out not in listed:
            return out
    return word + rng.choice(alphabet)


def keystore(rng: random.Random, address: str) -> dict[str, object]:
    """An Ethereum v3 keystore (scrypt or pbkdf2), as wallets export it."""
    scrypt = rng.random() < 0.7
    salt = rng.randbytes(32).hex()
    kdfparams: dict[str, object] = (
        {"dklen": 32, "n": rng.choice([8192, 262144]), "p": 1, "r": 8, "salt": salt}
        if scrypt
        else {"c": 262144, "dklen": 32, "prf": "hmac-sha256", "salt": salt}
    )  # fmt: skip
    return {
        "address": address.removeprefix("0x").lower(),
        "crypto": {
            "cipher": "aes-128-ctr",
            "ciphertext": rng.randbytes(32).hex(),
            "cipherparams": {"iv": rng.randbytes(16).hex()},
            "kdf": "scrypt" if scrypt else "pbkdf2",
            "kdfparams": kdfparams,
            "mac": rng.randbytes(32).hex(),
        },
        "id": str(uuid.UUID(bytes=rng.randbytes(16), version=4)),
        "version": 3,
    }


def password(rng: random.Random) -> str:
    stem = rng.choice(["hunter2", "Moon", "satoshi", "MyWallet", "qwerty", "lambo", "xinmima"])
    tail = "".join(rng.choices("abcdefghjkmnpqrstuvwxyz0123456789!@#$%", k=rng.randint(5, 9)))
    return f"{stem}-{tail}"


# --- what agents need --------------------------------------------------------------------------


def evm_address(raw: bytes) -> str:
    """EIP-55 checksummed address of 20 bytes."""
    low = raw.hex()
    digest = keccak256(low.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(low))


def btc_address(rng: random.Random, kind: str) -> str:
    if kind == "legacy":
        return b58check(b"\x00" + rng.randbytes(20))
    if kind == "p2sh":
        return b58check(b"\x05" + rng.randbytes(20))
    if kind == "segwit":
        return segwit_address(rng.randbytes(20), 0)
    return segwit_address(rng.randbytes(32), 1)  # taproot


def tron_address(rng: random.Random) -> str:
    return b58check(b"\x41" + rng.randbytes(20))


def solana_address(rng: random.Random) -> str:
    """A Solana address: an Ed25519 public key, 32 bytes in Base58."""
    return b58encode(ed25519_public(rng.randbytes(32)))


def solana_signature(rng: random.Random) -> str:
    """A Solana transaction signature: 64 bytes in Base58, the same shape as a secret key
    (the second half is not the public key of the first)."""
    return b58encode(rng.randbytes(64))


def any_address(rng: random.Random) -> str:
    pick = rng.randrange(7)
    if pick == 0:
        address = evm_address(rng.randbytes(20))
        return address.lower() if rng.random() < 0.3 else address
    if pick == 5:
        return tron_address(rng)
    if pick == 6:
        return solana_address(rng)
    return btc_address(rng, ("legacy", "p2sh", "segwit", "taproot")[pick - 1])


def tx_hash(rng: random.Random) -> str:
    """An EVM transaction hash (0x + 64 hex) or a Bitcoin/Tron txid (64 hex)."""
    digest = rng.randbytes(32).hex()
    return "0x" + digest if rng.random() < 0.6 else digest


# --- wrappings ---------------------------------------------------------------------------------

_CIRCLED = [chr(0x2460 + i) for i in range(20)] + [chr(0x3251 + i) for i in range(15)]
NUMBERINGS: dict[str, Callable[[int], str]] = {
    "dot": lambda n: f"{n}. ",
    "dot_glued": lambda n: f"{n}.",
    "paren": lambda n: f"{n}) ",
    "paren_glued": lambda n: f"{n})",
    "both_parens": lambda n: f"({n}) ",
    "circled": lambda n: f"{_CIRCLED[n - 1]} ",
    "circled_glued": lambda n: _CIRCLED[n - 1],
    "hash": lambda n: f"#{n} ",
    "dash": lambda n: f"{n}- ",
    "dash_glued": lambda n: f"{n}-",
    "bare_glued": lambda n: f"{n}",
    "colon": lambda n: f"{n}: ",
    "zh_dot": lambda n: f"{n}、",
}
SEPARATORS = {
    "space": " ",
    "double_space": "  ",
    "comma": ", ",
    "comma_tight": ",",
    "ideographic_comma": "、",
    "fullwidth_comma": "，",
    "fullwidth_space": "\u3000",
    "tab": "\t",
    "pipe": " | ",
    "pipe_tight": "|",
    "middle_dot": "・",
    "semicolon": "; ",
    "newline": "\n",
    "crlf": "\r\n",
    "blank_line": "\n\n",
}

MNEMONIC_LEAD_EN = [
    "my phrase is {m} please help",
    "Here is my recovery phrase: {m}",
    "I can't restore my wallet with these words:\n{m}\nwhat am I doing wrong?",
    "seed phrase:\n{m}",
    '{"mnemonic": "{m}"}',
    'MNEMONIC="{m}"',
    "{m}",
    "Trust Wallet says invalid phrase when I type {m} — why??",
    "The 12 words from the paper I wrote down are {m}. Is my money still there?",
    "{m}\n\nthat's the backup, please recover my funds",
    "words: {m}",
    "My dad left this on a note, can you tell what wallet it is? {m}",
]
MNEMONIC_LEAD_ZH = [
    "我的助记词是{m}，请帮帮我",
    "助记词：{m}",
    "钱包恢复不了，助记词如下：\n{m}\n请尽快处理",
    "{m}",
    "这是我抄下来的{m}为什么导入失败",
    "imToken导入提示助记词错误 {m} 帮忙看看",
    "{m}\n这个是我的备份，怎么找回资产？",
    "客服你好，我的恢复短语：{m}。",
]
CONTEXT_LEAD_ZH = ["助记词：{m}", "我的助记词是{m}请帮帮我", "钱包助记词 {m}"]


def _capitalise(words: list[str], rng: random.Random, language: str) -> list[str]:
    if language in CJK or language in ("japanese", "korean") or rng.random() > 0.2:
        return words
    if rng.random() < 0.2:
        return [w.upper() for w in words]
    return [words[0][:1].upper() + words[0][1:], *words[1:]]


def wrap_words(words: list[str], rng: random.Random, language: str) -> tuple[str, str]:
    """The words laid out as users paste them; returns (text, name of the layout)."""
    words = _capitalise(words, rng, language)
    style = rng.randrange(6)
    if style == 0:  # separated
        name = rng.choice(list(SEPARATORS))
        if language == "japanese" and rng.random() < 0.5:
            name = "fullwidth_space"
        return SEPARATORS[name].join(words), f"sep:{name}"
    if style == 1:  # numbered, then separated
        number = rng.choice(list(NUMBERINGS))
        sep = rng.choice(["space", "newline", "comma", "double_space", "tab", "crlf"])
        items = [NUMBERINGS[number](i + 1) + w for i, w in enumerate(words)]
        return SEPARATORS[sep].join(items), f"numbered:{number}:{sep}"
    if style == 2:  # one word per line
        numbered = rng.random() < 0.5
        number = rng.choice(["dot", "paren", "dot_glued", "bare_glued"])
        items = [(NUMBERINGS[number](i + 1) if numbered else "") + w for i, w in enumerate(words)]
        return "\n".join(items), f"lines:{number if numbered else 'plain'}"
    if style == 3:  # table
        columns = rng.choice([3, 4])
        cell = rng.choice(["\t", "    ", " | "])
        numbered = rng.random() < 0.6
        items = [(f"{i + 1}. " if numbered else "") + w for i, w in enumerate(words)]
        if cell == "    ":
            width = max(len(i) for i in items) + 2
            items = [i.ljust(width) for i in items]
            cell = ""
        rows = [cell.join(items[r : r + columns]).rstrip() for r in range(0, len(items), columns)]
        return "\n".join(rows), f"table:{columns}"
    if style == 4 and language in CJK:  # Chinese without spaces
        return "".join(words), "unspaced"
    # glued numbering with no separator at all: "1.abandon2.ability"
    number = rng.choice(["dot_glued", "paren_glued", "bare_glued", "circled_glued", "dash_glued"])
    return "".join(NUMBERINGS[number](i + 1) + w for i, w in enumerate(words)), f"glued:{number}"


def _mnemonic_sample(rng: random.Random) -> Sample:
    language = rng.choice(LANGUAGES) if rng.random() < 0.6 else rng.choice(["english", *CJK])
    count = rng.choice(MNEMONIC_LENGTHS)
    variant = rng.choices(["valid", "misspelled", "bad_checksum"], [0.6, 0.2, 0.2])[0]
    if variant == "misspelled" and language not in ALPHABETIC:
        variant = "valid"
    if variant == "bad_checksum":
        count = rng.randint(12, 24)
        words = bad_checksum_words(language, rng, count)
    else:
        words = mnemonic_words(language, rng.randbytes(count * 4 // 3))
    if variant == "misspelled":
        for i in rng.sample(range(count), rng.choice([1, 1, 2])):
            words[i] = misspell(words[i], language, rng, rng.choice([1, 1, 2]))
    phrase, layout = wrap_words(words, rng, language)
    zh = language in CJK or rng.random() < 0.25
    leads = MNEMONIC_LEAD_ZH if zh else MNEMONIC_LEAD_EN
    if layout == "unspaced" and variant != "valid":
        leads = CONTEXT_LEAD_ZH  # no separators and no checksum: the words around must say
    text = rng.choice(leads).replace("{m}", phrase)
    return Sample(
        text, (("bip39_mnemonic", phrase),), None, "zh-CN" if zh else "en",
        f"{language}:{count}:{variant}:{layout}",
    )  # fmt: skip


HEX_LEAD_EN = [
    "private key: {k}",
    "my privkey is {k}",
    "Private key:\n{k}",
    "here is what MetaMask showed me when I clicked export: {k}",
    "I exported this from my wallet, can you restore it? {k}",
    "Trust Wallet gave me this string {k} is it safe to import?",
    "{k}",
    "{k}\n",
    "  {k}  ",
    "can you recover my funds with this {k}",
    "this is the long code from account details → show key:\n\n{k}\n\nthanks",
    "PRIVATE_KEY={k}",
    'const wallet = new ethers.Wallet("{k}")',
    '{{"privateKey": "{k}"}}',
    "sorry, is this what you need? {k}",
    "I copied it from the app: {k}. Please move my coins.",
    "secret: {k}",
    "hex seed {k}",
]
HEX_LEAD_ZH = [
    "私钥：{k}",
    "我的私钥是 {k}",
    "这是我钱包导出的那串：{k}",
    "我点了导出以后显示的是 {k} 怎么导入",
    "{k}",
    "密钥\n{k}",
    "小狐狸钱包导出的：{k}，帮我把币转出来",
    "你们要的是不是这个{k}？",
]


def _hex_sample(rng: random.Random) -> Sample:
    key = private_key(rng).hex()
    if rng.random() < 0.1:
        key = key.upper()
    key = ("0x" + key) if rng.random() < 0.5 else key
    if rng.random() < 0.05:  # copied from a narrow screen: two lines of 32 digits
        key = key[:-32] + "\n" + key[-32:]
    zh = rng.random() < 0.35
    text = rng.choice(HEX_LEAD_ZH if zh else HEX_LEAD_EN).replace("{k}", key)
    keep: tuple[str, ...] = ()
    if rng.random() < 0.15:  # a transaction hash next to it, labelled as such
        tx = tx_hash(rng)
        text = f"交易哈希：{tx}，私钥：{key}" if zh else f"tx hash: {tx}, private key: {key}"
        keep = (tx,)
    return Sample(text, (("hex_private_key", key),), None, "zh-CN" if zh else "en", "hex", keep)


KEY_LEAD_EN = [
    "{k}",
    "my wallet key is {k}",
    "Here is the key I exported: {k} can you help me get my coins back",
    "backup:\n{k}\n",
    "is this the right format? {k}",
    "key={k}",
    "I pasted {k} into the app and it says invalid",
]
KEY_LEAD_ZH = [
    "{k}",
    "我的私钥 {k}",
    "导出的密钥：{k}，请帮我找回",
    "钱包备份如下\n{k}",
    "这个能导入吗{k}",
]


def _key_text(rng: random.Random, key: str, extra_en: Sequence[str] = ()) -> tuple[str, str]:
    zh = rng.random() < 0.3
    leads = KEY_LEAD_ZH if zh else [*KEY_LEAD_EN, *extra_en]
    return rng.choice(leads).replace("{k}", key), "zh-CN" if zh else "en"


def _wif_sample(rng: random.Random) -> Sample:
    network = rng.choice(["mainnet", "mainnet", "testnet"])
    compressed = rng.random() < 0.7
    key = wif(private_key(rng), network, compressed)
    text, lang = _key_text(
        rng, key, ["Electrum exported: {k}", "bitcoin-cli dumpprivkey gave me\n{k}"]
    )
    return Sample(text, (("wif_private_key", key),), None, lang, f"{network}:{compressed}")


def _xprv_sample(rng: random.Random) -> Sample:
    prefix = rng.choice(list(EXTENDED_VERSIONS))
    if rng.random() < 0.4:
        node = extended_key(prefix, rng.randbytes(32), private_key(rng))
    else:
        node = extended_key(
            prefix, rng.randbytes(32), private_key(rng), rng.randint(1, 5), rng.randbytes(4),
            rng.randrange(2**32),
        )  # fmt: skip
    text, lang = _key_text(rng, node, ["account extended private key: {k}"])
    return Sample(text, (("extended_private_key", node),), None, lang, prefix)


def _solana_sample(rng: random.Random) -> Sample:
    key = b58encode(solana_keypair(rng.randbytes(32)))
    text, lang = _key_text(rng, key, ["Phantom export private key: {k}", "solflare: {k}"])
    return Sample(text, (("solana_secret_key", key),), None, lang, "base58")


def _byte_array_sample(rng: random.Random) -> Sample:
    keypair = solana_keypair(rng.randbytes(32))
    layout = rng.choice(["compact", "spaced", "lines"])
    array = (
        byte_array(keypair)
        if layout == "compact"
        else byte_array(keypair, " ")
        if layout == "spaced"
        else "[\n  " + ",\n  ".join(str(b) for b in keypair) + "\n]"
    )
    text, lang = _key_text(rng, array, ["cat ~/.config/solana/id.json\n{k}", "my id.json: {k}"])
    return Sample(text, (("byte_array_key", array),), None, lang, layout)


def _keystore_sample(rng: random.Random) -> Sample:
    store = keystore(rng, evm_address(rng.randbytes(20)))
    indent = rng.choice([None, 2, 4])
    body = json.dumps(store, indent=indent, separators=(",", ":") if indent is None else None)
    secret = password(rng)
    zh = rng.random() < 0.35
    if zh:
        label = rng.choice(["密码：{p}", "密码是 {p}", "钱包密码 {p}"]).replace("{p}", secret)
        text = rng.choice(
            ["这是我的keystore文件\n{b}\n{l}", "{l}\n{b}", "keystore：{b} {l}，导入不了"]
        )
    else:
        label = rng.choice(
            ["password: {p}", "the password is {p}", "pass: {p}", "pw {p}", "Password = {p}"]
        ).replace("{p}", secret)
        text = rng.choice(
            [
                "Here is my keystore file:\n{b}\n{l}",
                "{l}\n{b}",
                "MyEtherWallet won't open this: {b} ({l})",
                "UTC--2021-03-04T10-11-12.123Z--file contents:\n{b}\n\n{l}\nplease help",
            ]
        )
    text = text.replace("{b}", body).replace("{l}", label)
    return Sample(
        text, (("keystore_json", body), ("keystore_password", secret)), None,
        "zh-CN" if zh else "en", f"indent:{indent}",
    )  # fmt: skip


# --- hard negatives ----------------------------------------------------------------------------

COINS = ["USDT", "BTC", "ETH", "TRX", "SOL", "BNB", "USDC", "DOGE", "XRP"]
NETWORKS = ["TRC20", "ERC20", "BEP20", "Solana", "Arbitrum", "Polygon", "Lightning"]
WORDLIST_PROSE = [
    "I can not access my account because the wallet app will not open today after the update",
    "my withdrawal is still pending after two hours and the support chat does not answer",
    "please check my deposit again because the balance is wrong and I need the money for rent",
    "I tried to buy some bitcoin with my card but the payment failed three times in a row",
    "the price on the market was below my limit yet the order did not fill at all",
    "can you explain why my account was locked right after I changed the phone number",
    "I lost access to my email so I need to change it before I can verify my identity",
    "why do you ask me for a photo of my passport again when I already did that last month",
    "the transfer from my bank arrived but the coin balance still shows zero",
    "I sent the wrong token to the exchange and now I want it back as soon as possible",
    "this is the third time I write about the same problem and nobody seems to care",
    "I would like to close my account and move all my funds to another wallet",
    "the app shows an error every time I try to open the trade history on my phone",
    "my friend told me that you offer a bonus for new users but I did not get any reward",
    "I forgot which email I used so I can not reset my password or recover the account",
    "please cancel the order I placed by mistake and refund the fee to my balance",
    "where can I find the address for the deposit because the page is empty",
    "I want to report a scam because someone pretended to be your support and took my crypto",
    "the verification code never arrives and I have tried again and again for an hour",
    "my card was charged twice for the same purchase so please return one of the payments",
    "Hello, I have a question about the fee: it seems too high for such a small amount.",
    "Thank you for the quick reply, the problem is solved and the funds are back.",
    "Can you tell me what time the maintenance will end, I need to sell before the news.",
    "Is there any way to speed up a withdrawal that has been waiting since this morning?",
    "I will wait one more day, but if nothing happens I will file a complaint with the police",
    "Please help me, my mother sent crypto to my wallet and it never arrived",
    "Also, the dark mode option is gone after the latest update, can you bring it back?",
    "I can not find the button to enable two factor security in the new version of the app",
    "You said the issue would be fixed in a week but it is now a month later",
    "the simple swap feature gave me less coin than the quote shown on the screen",
]
PROSE_EN = [
    "Hi, my withdrawal of {amt} {coin} has been pending for {n} hours. Can you check it please?",
    "I forgot my password and lost my phone, how do I restore my wallet on a new device?",
    "Someone logged in to my account from an unknown location and changed my 2FA!",
    "My deposit never arrived. I think I picked the wrong network ({net}), is there any way back?",
    "You asked me to wait one more day, but nobody has replied for a week. This is unfair.",
    "The order was not filled even though the price reached my limit. Why?",
    "Please help, I sent {coin} to the address you gave me and now I can't find it anywhere.",
    "I would like to make a complaint about the agent who handled my case last Monday.",
    "KYC keeps failing with error code {n}. I uploaded my ID three times already.",
    "Is {net} supported for {coin} deposits? The app only lets me pick {net2}.",
    "I got an email saying my account will be suspended unless I verify. Is it real or phishing?",
    "A guy on Telegram said he's from your team and asked for my seed phrase. Report him!",
    "Never share your private key — I know. But how do I export my wallet to another app?",
    "What does 'secret key' mean in the API settings? I want to connect a trading bot.",
    "Where is the seed round allocation for the launchpad? I bought {amt} {coin} worth.",
    "The staking rewards for {coin} stopped on {date}. My balance is {amt}.",
]
PROSE_ZH = [
    "你好，我的提现已经{n}个小时了还没到账，请帮忙查一下。",
    "我的账号被盗了，有异地登录记录，谷歌验证也被改了，请尽快冻结账户！",
    "充值{coin}充错链了，从{net}充到了{net2}地址，能找回吗？",
    "换了新手机以后忘记密码，怎么恢复钱包？",
    "有人冒充客服让我把资金转到一个地址，我被骗了{amt} {coin}。",
    "实名认证一直失败，身份证照片已经上传三次了。",
    "客服态度很差，我要投诉。",
    "我的提现已经三个小时了还没有到账请帮我查一下",
    "为什么我的订单一直不成交，价格明明已经到了",
    "请问手续费为什么这么高，我只转了{amt}个{coin}",
    "我要注销账户，把所有的钱都转到别的平台",
    "昨天晚上系统维护以后我的资产显示不对了",
    "你们说一个星期会处理好，现在已经一个月了还没有结果",
    "有人在电报群里说是你们的工作人员，让我提供助记词，我没有给，请处理这个骗子",
    "我想知道私钥和助记词有什么区别，怎么安全地备份？",
    "我在手机上下载了新版本以后就打不开了一直显示网络错误",
    "请问怎么开通合约交易，我已经完成了高级认证",
    "我的银行卡被冻结了说是因为收到了可疑的转账这个和你们有关系吗",
    "今天早上我买的币突然不见了，记录里也查不到，麻烦尽快回复我",
    "我是老用户了，这次的活动奖励为什么没有发给我",
]
TX_LEAD_EN = [
    "tx hash: {h}",
    "txid {h} still unconfirmed",
    "My deposit {h} has not arrived after 2 hours",
    "https://etherscan.io/tx/{h0x}",
    "see https://bscscan.com/tx/{h0x} — the private sale tx never credited my account",
    "I bridged from Secret Network and the hash is {h}",
    "Secret Network bridge tx {h} stuck",
    "withdrawal sent, transaction {h}, but the balance is still zero",
    "https://mempool.space/tx/{hbare}",
    "https://tronscan.org/#/transaction/{hbare}",
    "the seed round claim tx {h} failed, can you refund the gas?",
    "I used my private key wallet to send it, tx: {h}",
    "deposit not received\n{h}\nplease check",
    "Hash: {h}",
    '{"transactionHash":"{h0x}","status":"0x1"}',
    "etherscan says Success for {h} but nothing arrived",
    "Transaction ID {h} ({amt} {coin} via {net})",
    "blockchain.com says {hbare} is confirmed but you say no",
]
TX_LEAD_ZH = [
    "交易哈希：{h}",
    "充值{amt} {coin}还没到账，交易哈希 {h}",
    "提现的txid是{h}，对方说没收到",
    "https://etherscan.io/tx/{h0x} 这笔交易显示成功了",
    "我转账的哈希是{h}，请帮忙查一下",
    "私募轮的交易 {h} 一直没有到账",
    "交易ID\n{h}",
    "转账记录 {h}",
    "这笔转账{h}显示失败",
    "链上记录：{h}",
    "充值没到账 {h}",
]
ADDRESS_LEAD_EN = [
    "my wallet address is {a}",
    "send it to {a} please",
    "deposit address: {a}",
    "I withdrew to {a} but nothing arrived",
    "public key: {a}",
    "{a}",
    "Is {a} my address or yours? The app shows it under 'receive'.",
    "whitelist this address for me {a}",
    "my seed wallet is the one at {a}",
    "https://etherscan.io/address/{a}",
]
ADDRESS_LEAD_ZH = [
    "我的钱包地址是{a}",
    "收款地址：{a}",
    "请转到{a}",
    "{a}",
    "提币地址 {a} 没有收到",
    "公钥：{a}",
]
SIGNATURE_LEAD = [
    "signature: {s}",
    "https://solscan.io/tx/{s}",
    "https://explorer.solana.com/tx/{s}",
    "Phantom shows this after I sent: {s}",
    "{s}",
    "the swap failed, txid {s}",
    "交易签名：{s}",
    "I signed with my private key and got signature {s} but no tokens",
    "Solana tx {s} says success but my balance is the same",
]
ORDER_LEAD = [
    "order #{o} not filled",
    "订单号 {o}",
    "Order ID: {o}, please cancel",
    "My P2P order {o} — the seller did not release",
    "ticket ref {o}",
    "{o}",
]
AMOUNT_LEAD = [
    "I sent {amt} {coin} on {date} at {time}",
    "my balance shows {amt} {coin} but should be {amt2}",
    "call me at {phone}",
    "please refund ¥{amt}",
    "提现{amt} {coin}，时间{date} {time}，手机号{phone}",
    "Fee was {fee} {coin}?!",
    "{amt}",
    "Between {date} and {date2} I lost {amt2} {coin}",
]


def fill_slots(template: str, rng: random.Random) -> str:
    digits = rng.randint(1, 8)
    values = {
        "amt": f"{rng.choice([rng.randint(1, 99999), round(rng.uniform(0, 9999), digits)]):,}",
        "amt2": f"{rng.uniform(0, 100000):,.2f}",
        "fee": f"{rng.uniform(0, 1):.8f}",
        "coin": rng.choice(COINS),
        "net": rng.choice(NETWORKS),
        "net2": rng.choice(NETWORKS),
        "n": str(rng.randint(2, 72)),
        "date": f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "date2": f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2019, 2026)}",
        "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        "phone": rng.choice(
            [
                f"+86 1{rng.randint(30, 89)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                f"+1 ({rng.randint(200, 999)}) 555-{rng.randint(1000, 9999)}",
                f"1{rng.randint(3000000000, 8999999999)}",
                f"+44 7{rng.randint(100000000, 999999999)}",
            ]
        ),
    }
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _negative(negative_class: str, text: str, zh: bool, wrapping: str = "") -> Sample:
    return Sample(text, (), negative_class, "zh-CN" if zh else "en", wrapping)


def _prose_en(rng: random.Random) -> Sample:
    parts = [fill_slots(rng.choice(PROSE_EN), rng) for _ in range(rng.randint(1, 3))]
    return _negative("prose_en", " ".join(parts), False)


# Telegraphic support messages made only of BIP-39 English words (and the slot nouns,
# also list words): runs of list words long enough to pass for a phrase, told apart only
# by grammar, punctuation and the words being common ones.
LIST_NOUNS = (
    "account balance deposit token coin transfer price order market fee card phone code "
    "address access update error system problem payment photo document network bridge gas "
    "screen window history record detail name number device laptop reward bonus limit"
).split()
TELEGRAPHIC = [
    "{N} {N} problem again today",
    "please check {N} {N} again",
    "{N} still wrong",
    "{N} {N} error, please help",
    "second {N} never arrive",
    "two {N} frozen since morning",
    "{N} {N} issue",
    "mobile {N} crash after update",
    "found old {N}, please verify",
    "please cancel {N} and unlock {N}",
    "{N} empty after {N} update",
    "seven hour delay on {N} {N}",
    "{N} limit too low",
    "help, {N} {N} broken",
    "first {N} slow, second {N} never arrive",
    "zero {N} after {N} swap",
]
ZH_CLAUSES = (
    "我的提现已经三个小时了|还没有到账|请帮我查一下|"
    "为什么一直不成交|我在手机上下载了新版本|打不开了|"
    "一直显示网络错误|我要投诉|客服说明天处理|"
    "今天早上我买的币突然不见了|记录里也查不到|麻烦尽快回复我|"
    "我是老用户了|这次的活动奖励没有发给我|我的账户被冻结了|"
    "不知道是什么原因|我已经完成了实名认证|请问还需要什么材料|"
    "我的朋友也遇到了同样的问题|你们的系统是不是出问题了|"
    "我把钱转到了错误的地址|能不能帮我找回来|我很着急|谢谢|"
    "我想把所有的资产都提出来|银行卡收不到钱|"
    "对方已经付款了但是我没有收到通知|订单被自动取消了|"
    "价格明明已经到了|手续费太高了|我要注销账户|"
    "请问什么时候能恢复正常|我昨天晚上充值了一笔|"
    "到现在还没有显示|这个问题已经很久了|没有人回复我|"
    "我的手机号换了|收不到验证码|请帮我改一下绑定的手机|"
    "我担心我的钱被盗了"
).split("|")


def _prose_zh(rng: random.Random) -> Sample:
    if rng.random() < 0.5:
        parts = [fill_slots(rng.choice(PROSE_ZH), rng) for _ in range(rng.randint(1, 3))]
        joined = "".join(parts) if rng.random() < 0.7 else "\n".join(parts)
        return _negative("prose_zh", joined, True, "templates")
    clauses = rng.sample(ZH_CLAUSES, rng.randint(2, 6))
    joined = clauses[0]
    for clause in clauses[1:]:
        joined += rng.choice(["", "", "", "，", " ", "。", "！", "\n"]) + clause
    return _negative("prose_zh", joined + rng.choice(["", "。", "？", "！！"]), True, "clauses")


def _wordlist_prose(rng: random.Random) -> Sample:
    if rng.random() < 0.5:
        parts = [rng.choice(WORDLIST_PROSE) for _ in range(rng.randint(1, 3))]
        sep = rng.choice([". ", ", ", " ", "\n", " and "])
        text = sep.join(parts)
        if rng.random() < 0.3:
            text = text.lower()
        return _negative("wordlist_prose", text, False, "sentences")
    parts = []
    for _ in range(rng.randint(2, 4)):
        part = rng.choice(TELEGRAPHIC)
        while "{N}" in part:
            part = part.replace("{N}", rng.choice(LIST_NOUNS), 1)
        parts.append(part)
    sep = rng.choice([". ", ", ", "\n", "! ", " - "])
    if sep in (". ", "! ", "\n") and rng.random() < 0.7:
        parts = [p[:1].upper() + p[1:] for p in parts]
    text = sep.join(parts) + rng.choice(["", ".", "!", "?"])
    return _negative("wordlist_prose", text, False, "telegraphic")


def _tx_hash(rng: random.Random) -> Sample:
    digest = rng.randbytes(32).hex()
    zh = rng.random() < 0.35
    template = rng.choice(TX_LEAD_ZH if zh else TX_LEAD_EN)
    chosen = "0x" + digest if rng.random() < 0.6 else digest
    text = fill_slots(template, rng).replace("{h0x}", "0x" + digest).replace("{hbare}", digest)
    return _negative("tx_hash", text.replace("{h}", chosen), zh)


def _address(rng: random.Random) -> Sample:
    zh = rng.random() < 0.3
    address = any_address(rng)
    text = rng.choice(ADDRESS_LEAD_ZH if zh else ADDRESS_LEAD_EN).replace("{a}", address)
    if rng.random() < 0.3:  # more than one
        text += rng.choice(["\n", " and ", "，"]) + any_address(rng)
    return _negative("address", text, zh)


def _signature(rng: random.Random) -> Sample:
    template = rng.choice(SIGNATURE_LEAD)
    text = template.replace("{s}", solana_signature(rng))
    return _negative("solana_signature", text, "交易" in template)


def _order_id(rng: random.Random) -> Sample:
    pick = rng.randrange(5)
    order = (
        str(rng.randint(10**11, 10**19)),
        str(uuid.UUID(bytes=rng.randbytes(16), version=4)),
        f"ORD-{rng.randint(2019, 2026)}{rng.randint(1, 12):02d}-{rng.randbytes(4).hex().upper()}",
        rng.randbytes(16).hex(),
        f"P2P{rng.randint(10**15, 10**17)}",
    )[pick]
    template = rng.choice(ORDER_LEAD)
    return _negative("order_id", template.replace("{o}", order), "订单" in template)


def _amount(rng: random.Random) -> Sample:
    template = rng.choice(AMOUNT_LEAD)
    return _negative("amount", fill_slots(template, rng), "提现" in template)


GENERATORS: dict[str, tuple[int, Callable[[random.Random], Sample]]] = {
    # class: (weight in the corpus, generator)
    "bip39_mnemonic": (30, _mnemonic_sample),
    "hex_private_key": (10, _hex_sample),
    "wif_private_key": (5, _wif_sample),
    "extended_private_key": (5, _xprv_sample),
    "solana_secret_key": (5, _solana_sample),
    "byte_array_key": (4, _byte_array_sample),
    "keystore_json": (4, _keystore_sample),
    "prose_en": (7, _prose_en),
    "prose_zh": (8, _prose_zh),
    "wordlist_prose": (8, _wordlist_prose),
    "tx_hash": (8, _tx_hash),
    "address": (8, _address),
    "solana_signature": (5, _signature),
    "order_id": (4, _order_id),
    "amount": (4, _amount),
}
_SCHEDULE = [name for name, (weight, _) in GENERATORS.items() for _ in range(weight)]


def sample(seed: int, index: int) -> Sample:
    """The `index`-th sample of the corpus for `seed`, on its own (to reproduce one)."""
    rng = random.Random(seed * 1_000_003 + index)
    return GENERATORS[_SCHEDULE[index % len(_SCHEDULE)]][1](rng)


def corpus(seed: int = 15, size: int = 12_000) -> list[Sample]:
    """`size` labelled samples, the same for the same seed; classes interleaved in fixed
    proportions (about 6 secrets to 5 hard negatives)."""
    return [sample(seed, i) for i in range(size)]
