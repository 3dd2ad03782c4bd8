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
- ``hex_private_key``: 64 hex digits, with or without ``0x``, *unless something says it is
  a transaction*. Transaction hashes (``0x`` + 64 hex) and Bitcoin txids have the same
  shape as raw keys, but users introduce keys in any words ("what MetaMask showed me when I
  clicked export: ..."), while a hash nearly always comes named as one; and an agent can
  ask again for a hash that was removed, whereas a stored key is leaked for good. The rule:

  1. Kept outright: a hex string right after ``/`` (a URL path, ``etherscan.io/tx/0x...``).
     A string wrapped over two lines (two pieces adding up to 64 digits) counts as one.
  2. The context is the sentence or line holding the hex string (split at line breaks and
     at ``. ! ? ; 。！？；``); if the string stands alone there, the nearest non-blank one
     above (up to three back: ``Private key:\\n0x...``, ``deposit not received\\n0x...``).
  3. Transaction words name a transaction, its explorer or its fate: tx/txid/hash/
     transaction/block hash, explorer names (etherscan, bscscan, tronscan, solscan,
     mempool…), public key, arrived/credited/pending/stuck/confirmed/"has not arrived",
     checksum, order id, 交易/哈希/到账/没收到/链上/这笔/转账记录/区块/公钥/订单. Not
     "deposit", "withdraw", "transfer" alone (victims write "I can't withdraw, here is my
     wallet: ..."). Key words: private/secret key, privkey, secret (not in a name:
     "Secret Network"), seed, key, export/import/backup/restore/recover, 私钥/密钥/秘钥/
     导出/导入/备份/恢复/助记词.
  4. The nearest word decides, any word before the hex string beating any after it (labels
     precede values: ``tx hash: 0x..., private key: 0x...``); a tie, or no word at all,
     redacts. ``0x`` + 40 hex (an address) and 128/130 hex (public keys, signatures)
     never match.

- ``wif_private_key``: a Base58Check string of 51 or 52 characters starting with 5/K/L
  (mainnet) or 9/c (testnet) whose payload is a WIF key (version 0x80/0xEF, 32 key bytes,
  optional 0x01 compression flag) and whose checksum is valid. The checksum is what tells
  a key from an address or other Base58 text, so no context is needed.
- ``extended_private_key``: ``xprv``/``yprv``/``zprv``/``tprv``/``uprv``/``vprv`` (and the
  multisig ``Yprv``/``Zprv``/``Uprv``/``Vprv``) followed by 100-112 Base58 characters. The
  prefix is unambiguous, so even a mangled key (bad checksum) is removed.
- ``solana_secret_key``: 64 bytes in Base58 (87-88 characters, fewer after zero bytes) or
  in 128 hex digits whose last 32 bytes are the Ed25519 public key of the first 32. A
  Solana transaction signature has the same shape and is kept: its halves are unrelated.
  At most ``MAX_KEY_CHECKS`` checks per text; past them every 64-byte candidate counts as
  a key (bounded work).
- ``byte_array_key``: a JSON array of 64 numbers 0-255 (``solana-keygen``'s key file), or
  of 32 when the words around call it a key (rule 4 above, with key words required).
- ``keystore_json``: the whole JSON object holding a ``"crypto"`` object or a
  ``"ciphertext"`` (an Ethereum v3 keystore, also escaped inside a string or cut off at
  the end of the text): KDF parameters and MAC are what a cracker needs, not only the
  ciphertext. ``keystore_password``: the value after the nearest password label
  (password/passphrase/pwd/pw/pass:, 密码/口令) within three lines before or after a
  keystore; a keystore is only as strong as its password.

Cost: every detector runs in time linear in the text (a ticket body is attacker-controlled,
and an earlier version took minutes on 400 KB of ``seed`` + hex tokens because each hex
string rescanned its whole sentence). The hex rule finds sentence breaks, key words and
transaction words once per text and answers each hex string's context by bisecting those
positions; the keystore rule matches braces with one stack pass and finds password labels
once; no detector slices or rescans the text per match. A detector added here must keep
that property (``bench/bench_redaction.py`` times each class on 1 MB of adversarial input).
Texts longer than ``MAX_CHARS`` are refused (``TextTooLong``) rather than scanned, and
``redact_async`` moves texts longer than ``OFF_LOOP_CHARS`` to a worker thread so a server's
event loop keeps answering while they are scanned.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import Invalid
from shared.redaction.base58_keys import wif_spans, xprv_spans
from shared.redaction.hex_keys import hex_key_spans
from shared.redaction.keystore import keystore_spans
from shared.redaction.mnemonic import MIN_MNEMONIC_WORDS, mnemonic_spans
from shared.redaction.solana_keys import byte_array_key_spans, solana_key_spans

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from shared.redaction.spans import Span

__all__ = [
    "MAX_CHARS",
    "MIN_MNEMONIC_WORDS",
    "OFF_LOOP_CHARS",
    "REDACTION_WARNING",
    "Redaction",
    "TextTooLong",
    "placeholder",
    "redact",
    "redact_async",
]
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


KINDS = (
    "bip39_mnemonic",
    "hex_private_key",
    "wif_private_key",
    "extended_private_key",
    "solana_secret_key",
    "byte_array_key",
    "keystore_json",
    "keystore_password",
)
_PLACEHOLDER = re.compile(r"\[REDACTED:(" + "|".join(KINDS) + r")\]")


def placeholder_spans(text: str) -> Iterable[Span]:
    """Placeholders already in the text count as what they replaced, so that redacting
    twice (the mail gateway, then intake; a dead letter replayed) still says a secret was
    removed, and the requester is still warned."""
    for match in _PLACEHOLDER.finditer(text):
        yield match.start(), match.end(), match.group(1)


# Every detector: text -> (start, end, kind) spans, in time linear in the text. `redact`
# replaces the union; where spans overlap, the earliest (then the longest) wins.
DETECTORS: tuple[Callable[[str], Iterable[Span]], ...] = (
    placeholder_spans,
    mnemonic_spans,
    hex_key_spans,
    wif_spans,
    xprv_spans,
    solana_key_spans,
    byte_array_key_spans,
    keystore_spans,
)
