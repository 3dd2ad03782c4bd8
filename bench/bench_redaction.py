"""Redaction time on 1 MB of adversarial text per pattern class.

Each input is built to hit what used to be (or could become) super-linear in its class:
the hex rule's context search, the mnemonic run tracker (every BIP-39 language, fuzzy
matching of misspelled words, checksum windows over unspaced Chinese), Base58 decoding and
checksums, the Ed25519 check that tells a Solana secret key from a signature, JSON byte
arrays and keystore objects left open, the key-word regexes. Every figure is the best of
three runs of `shared.redaction.redact` over the whole input, next to a baseline measured
in the same run on the same input (one trivial regex scan, `[0-9A-Za-z]+`), so the ratio
compares across machines. No infrastructure: this benchmark needs none.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import random
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mnemonic import Mnemonic

from bench import redaction_corpus as corpus
from bench._common import table
from shared.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Callable

SIZE = int(os.environ.get("HELPSTREAM_BENCH_REDACTION_CHARS", 1 << 20))
REPEAT = 3
_BASELINE = re.compile(r"[0-9A-Za-z]+")


def _fill(size: int, piece: Callable[[int], str]) -> str:
    """Concatenate `piece(i)` until `size` characters, then cut to exactly `size`."""
    parts, total, i = [], 0, 0
    while total < size:
        part = piece(i)
        parts.append(part)
        total += len(part)
        i += 1
    return "".join(parts)[:size]


def _hex(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


def _b58(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(corpus.B58, k=n))


def inputs(size: int = SIZE, seed: int = 14) -> dict[str, str]:
    """One adversarial text per pattern class, `size` characters each."""
    rng = random.Random(seed)
    words = Mnemonic("english").wordlist
    hexes = [_hex(rng) for _ in range(64)]
    wifs = [corpus.b58check(b"\x80" + rng.randbytes(32) + b"\x01") for _ in range(16)]
    solana_pairs = [corpus.solana_keypair(rng.randbytes(32)) for _ in range(16)]
    solana_keys = [corpus.b58encode(pair) for pair in solana_pairs]
    keystores = [
        json.dumps(corpus.keystore(rng, corpus.evm_address(rng.randbytes(20)))) for _ in range(8)
    ]
    lists = [corpus.wordlist(language) for language in corpus.LANGUAGES]
    chinese = corpus.wordlist("chinese_simplified")
    misspelled = [
        corpus.misspell(
            lists[n % len(lists)][n * 37 % 2048], corpus.LANGUAGES[n % len(lists)], rng, 1 + n % 2
        )
        for n in range(2048)
        if corpus.LANGUAGES[n % len(lists)] in corpus.ALPHABETIC
    ]
    return {
        # The reported attack: one sentence, a key word, then hex tokens without end. Every
        # token is a key (all redacted), and each one's context is the whole sentence.
        "hex_private_key": "seed " + _fill(size - 5, lambda i: hexes[i % 64] + " "),
        # Hex tokens on lines of their own under label lines, tx and key words mixed
        # (the look-back path), and blank lines in between.
        "hex_private_key_lines": _fill(
            size,
            lambda i: ("tx hash:\n", "私钥：\n\n", "secret\n", "")[i % 4] + f"0x{hexes[i % 64]}\n",
        ),
        # Runs of 11 wordlist words (numbered, comma-separated), each broken by a non-word:
        # the longest runs that never reach twelve, plus 4-letter prefixes.
        "bip39_mnemonic": _fill(
            size,
            lambda i: (
                " ".join(
                    f"{j}. {words[(i * 11 + j) % 2048]}," if j % 3 else words[(i + j) % 2048][:4]
                    for j in range(11)
                )
                + " the "
            ),
        ),
        # One unbroken run of wordlist words: a single 1 MB span to redact.
        "bip39_mnemonic_run": _fill(size, lambda i: words[i % 2048] + " "),
        # WIF-shaped strings: most with a bad checksum (decoded and hashed, then kept),
        # every eighth a real key.
        "wif_private_key": _fill(
            size,
            lambda i: (wifs[i % 16] if i % 8 == 0 else "K" + _b58(rng, 51)) + " ",
        ),
        # xprv-shaped strings of every accepted length, and one character too long.
        "extended_private_key": _fill(
            size, lambda i: f"{'xyztuvYZUV'[i % 10]}prv{_b58(rng, 100 + i % 14)} "
        ),
        # Near misses for every class: 63/65 hex digits after key words, 'priv' followed by
        # long whitespace runs, Base58 runs a character short, eleven-word runs ("the" is
        # not a list word; "private" and "key" are).
        "near_misses": _fill(
            size,
            lambda i: (
                f"private key {hexes[i % 64][:63]} seed {hexes[i % 64]}f txid "
                f"priv{' ' * 200}priv{'-' * 200} K{_b58(rng, 49)} xprv{_b58(rng, 99)} "
                + " ".join(words[(i + j) % 2048] for j in range(11))
                + " the; "
            ),
        ),
        # Base58 strings of Solana's secret-key length: signatures (64 random bytes, each
        # decoded and its second half compared with the Ed25519 key of its first), every
        # eighth a real keypair, some after key words.
        "solana_secret_key": _fill(
            size,
            lambda i: (
                ("private key: " if i % 3 == 0 else "")
                + (solana_keys[i % 16] if i % 8 == 0 else corpus.b58encode(rng.randbytes(64)))
                + " "
            ),
        ),
        # JSON arrays of 64 numbers 0-255 that are not keypairs (each one checked), arrays
        # of 63 and 65 numbers, every eighth a real keypair, and an array left open.
        "byte_array_key": _fill(
            size,
            lambda i: (
                (
                    corpus.byte_array(solana_pairs[i % 16])
                    if i % 8 == 0
                    else corpus.byte_array(rng.randbytes(63 + i % 3), " " * (i % 2))
                )
                + ("\n" if i % 50 else "\n[" + ",".join(["7"] * 500) + ",\n")
            ),
        ),
        # Keystore-shaped objects: most left open (a "crypto" key and a ciphertext, never
        # closed), every fourth a whole keystore followed by its password.
        "keystore_json": _fill(
            size,
            lambda i: (
                keystores[i % 8] + f"\npassword: hunter2-{i}\n"
                if i % 4 == 0
                else '{"version":3,"crypto":{"cipher":"aes-128-ctr","ciphertext":"'
                + hexes[i % 64]
                + '","kdf":"scrypt","kdfparams":{"n":8192, '
            ),
        ),
        # Runs of 11 words, each run in another BIP-39 language, glued numbering, every
        # fifth word misspelled: fuzzy lookups everywhere, no run ever reaching twelve.
        "bip39_mnemonic_languages": _fill(
            size,
            lambda i: (
                "".join(
                    f"{j + 1}."
                    + (
                        misspelled[(i + j) % len(misspelled)]
                        if j % 5 == 4
                        else lists[i % len(lists)][(i * 11 + j) % 2048]
                    )
                    for j in range(11)
                )
                + " the "
            ),
        ),
        # Nothing but misspelled list words (edit distance 1-2, none in a list): every
        # token goes through the fuzzy match.
        "bip39_mnemonic_misspelled": _fill(
            size, lambda i: misspelled[i % len(misspelled)] + (" " if i % 13 else ". ")
        ),
        # Chinese list characters with no separator at all (one run; checksum windows),
        # then Chinese prose clauses run together.
        "bip39_mnemonic_unspaced_chinese": _fill(size // 2, lambda i: chinese[(i * 7) % 2048])
        + _fill(size - size // 2, lambda i: corpus.ZH_CLAUSES[i % len(corpus.ZH_CLAUSES)]),
        # All of the above interleaved, with Chinese text and sentence breaks between.
        "mixed": _fill(
            size,
            lambda i: (
                f"你好，我的私钥是 {hexes[i % 64]}。tx {hexes[(i + 1) % 64]} "
                f"{wifs[i % 16]} xprv{_b58(rng, 107)} "
                + " ".join(words[(i * 7 + j) % 2048] for j in range(12 + i % 13))
                + "! "
            ),
        ),
    }


def _best(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def run() -> dict[str, float]:
    started = datetime.now(UTC)
    texts = inputs()
    values: dict[str, float] = {"redaction_input_chars": float(SIZE)}
    rows = []
    for name, text in texts.items():
        baseline = _best(functools.partial(_BASELINE.findall, text))
        seconds = _best(functools.partial(redact, text))
        result = redact(text)
        values[f"redaction_{name}_s"] = round(seconds, 4)
        values[f"redaction_{name}_vs_baseline"] = round(seconds / baseline, 1)
        rows.append(
            (
                name,
                len(text),
                seconds * 1000,
                baseline * 1000,
                seconds / baseline,
                ", ".join(result.kinds) or "-",
                len(result.text),
            )
        )
    ended = datetime.now(UTC)
    print(
        f"  {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{started:%Y-%m-%d %H:%M:%S}–{ended:%H:%M:%S} UTC"
    )
    header = ("input", "chars", "redact ms", "baseline ms", "ratio", "kinds found", "chars out")
    print(table(rows, header), flush=True)
    values["redaction_slowest_s"] = max(v for k, v in values.items() if k.endswith("_s"))
    return values
