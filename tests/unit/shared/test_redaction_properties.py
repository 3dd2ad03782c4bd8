"""Properties of redaction, per class: a generated secret never survives, however it is
wrapped, and a generated hard negative is never touched.

Secrets are built for real from drawn bytes (BIP-39 entropy, private keys, Ed25519 seeds),
with the wordings and layouts of the labelled corpus (`bench/redaction_corpus.py`). A
secret survives when any 8 consecutive letters or digits of it are still in the output
(`bench.redaction_corpus.leaked`).
"""

from __future__ import annotations

import json
import random
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench import redaction_corpus as corpus
from shared.redaction import redact

# Derandomized: the same examples every run, so a rare miss the benchmark counts (a bare,
# unlabelled, unspaced Chinese phrase that reads like prose: 1 in 1,000) cannot turn a CI
# run red at random; new seeds are explored with `--hypothesis-seed`.
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

SECRET_LEADS = corpus.KEY_LEAD_EN + corpus.KEY_LEAD_ZH
seeds = st.integers(min_value=0, max_value=2**32 - 1)
rngs = seeds.map(random.Random)
languages = st.sampled_from(corpus.LANGUAGES)


def random_bytes(size: int) -> st.SearchStrategy[bytes]:
    """Uniform bytes, as keys, hashes, signatures and wallet entropy are. Drawn from a
    seeded generator so that shrinking cannot turn them into runs of zero bytes, which have
    another shape (leading zero bytes shorten Base58; 64 zero bytes in Base58 are 64 ones,
    valid hex; zero entropy is "的的的…在"): low-entropy phrases have their own test."""
    return seeds.map(lambda seed: random.Random(seed).randbytes(size))


entropies = st.sampled_from([16, 20, 24, 28, 32]).flatmap(random_bytes)


keys = random_bytes(32)


def assert_redacted(text: str, *secrets: str) -> str:
    output = redact(text).text
    for secret in secrets:
        assert secret in text
        left = corpus.leaked(secret, text, output, secrets)
        assert not left, f"{left[:3]} survived in {output!r}"
    return output


def assert_untouched(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.kinds == ()


def _in(template: str, secret: str) -> str:
    return template.replace("{k}", secret).replace("{m}", secret)


# --- mnemonics ---------------------------------------------------------------------------------


@PROPERTY
@given(
    language=languages,
    entropy=entropies,
    layout=rngs,
    lead=st.sampled_from(corpus.MNEMONIC_LEAD_EN + corpus.MNEMONIC_LEAD_ZH),
)
def test_a_real_phrase_in_any_language_and_layout_is_redacted(
    language: str, entropy: bytes, layout: random.Random, lead: str
) -> None:
    phrase, _ = corpus.wrap_words(corpus.mnemonic_words(language, entropy), layout, language)
    assert_redacted(_in(lead, phrase), phrase)


@PROPERTY
@given(
    language=languages,
    entropy=entropies,
    numbering=st.sampled_from(sorted(corpus.NUMBERINGS)),
    separator=st.sampled_from(["", " ", "\n", ", ", "\t", "\u3000", "、"]),
)
def test_numbering_glued_or_spaced_does_not_hide_a_phrase(
    language: str, entropy: bytes, numbering: str, separator: str
) -> None:
    words = corpus.mnemonic_words(language, entropy)
    phrase = separator.join(corpus.NUMBERINGS[numbering](i + 1) + w for i, w in enumerate(words))
    assert_redacted(f"my words: {phrase} please help", phrase)


@PROPERTY
@given(
    language=st.sampled_from(corpus.ALPHABETIC),
    entropy=entropies,
    rng=rngs,
    typos=st.integers(min_value=1, max_value=2),
    separator=st.sampled_from([" ", "\n", ", "]),
)
def test_a_phrase_with_one_or_two_misspelled_words_is_redacted(
    language: str, entropy: bytes, rng: random.Random, typos: int, separator: str
) -> None:
    words = corpus.mnemonic_words(language, entropy)
    for i in rng.sample(range(len(words)), typos):
        words[i] = corpus.misspell(words[i], language, rng, rng.choice([1, 2]))
    phrase = separator.join(words)
    assert_redacted(f"Here is my recovery phrase: {phrase}", phrase)


@PROPERTY
@given(language=languages, count=st.integers(min_value=12, max_value=24), rng=rngs)
def test_twelve_or_more_list_words_with_a_bad_checksum_are_redacted(
    language: str, count: int, rng: random.Random
) -> None:
    words = corpus.bad_checksum_words(language, rng, count)
    phrase, layout = corpus.wrap_words(words, rng, language)
    lead = "助记词：{m}" if layout == "unspaced" else rng.choice(corpus.MNEMONIC_LEAD_EN)
    assert_redacted(_in(lead, phrase), phrase)


@PROPERTY
@given(
    language=st.sampled_from(corpus.CJK),
    entropy=entropies,
    spaced=st.booleans(),
    lead=st.sampled_from(corpus.MNEMONIC_LEAD_ZH),
)
def test_a_chinese_phrase_with_or_without_spaces_is_redacted_inside_chinese_text(
    language: str, entropy: bytes, spaced: bool, lead: str
) -> None:
    words = corpus.mnemonic_words(language, entropy)
    phrase = (" " if spaced else "").join(words)
    assert_redacted(_in(lead, phrase), phrase)


@PROPERTY
@given(
    language=st.sampled_from(corpus.CJK),
    size=st.sampled_from([16, 20, 24, 28, 32]),
    set_bytes=st.lists(st.tuples(st.integers(0, 31), st.integers(0, 255)), max_size=2),
    spaced=st.booleans(),
    lead=st.sampled_from(corpus.MNEMONIC_LEAD_ZH),
)
def test_a_chinese_phrase_from_low_entropy_is_redacted_though_it_reads_like_prose(
    language: str, size: int, set_bytes: list[tuple[int, int]], spaced: bool, lead: str
) -> None:
    """Zero entropy (a test vector) gives "的的的的的的的的的的的在"; a few set bytes keep
    most of it. A character this common scores like prose, but prose never repeats it so."""
    entropy = bytearray(size)
    for position, value in set_bytes:
        entropy[position % size] = value
    words = corpus.mnemonic_words(language, bytes(entropy))
    phrase = (" " if spaced else "").join(words)
    assert_redacted(_in(lead, phrase), phrase)


@PROPERTY
@given(language=languages, entropy=entropies, columns=st.sampled_from([3, 4]))
def test_a_phrase_in_a_table_is_redacted(language: str, entropy: bytes, columns: int) -> None:
    words = corpus.mnemonic_words(language, entropy)
    cells = [f"{i + 1}. {w}" for i, w in enumerate(words)]
    table = "\n".join("\t".join(cells[r : r + columns]) for r in range(0, len(cells), columns))
    assert_redacted(f"backup card:\n{table}\n", table)


# --- keys --------------------------------------------------------------------------------------


@PROPERTY
@given(
    key=keys,
    prefixed=st.booleans(),
    upper=st.booleans(),
    lead=st.sampled_from(corpus.HEX_LEAD_EN + corpus.HEX_LEAD_ZH),
)
def test_a_32_byte_hex_key_is_redacted_under_any_wording(
    key: bytes, prefixed: bool, upper: bool, lead: str
) -> None:
    digits = key.hex().upper() if upper else key.hex()
    secret = ("0x" if prefixed else "") + digits
    assert_redacted(_in(lead, secret), secret)


@PROPERTY
@given(key=keys, digest=random_bytes(32), zh=st.booleans())
def test_a_hex_key_next_to_a_transaction_hash_goes_and_the_hash_stays(
    key: bytes, digest: bytes, zh: bool
) -> None:
    assume(digest != key)
    tx, secret = "0x" + digest.hex(), "0x" + key.hex()
    text = f"交易哈希：{tx}，私钥：{secret}" if zh else f"tx hash: {tx}, private key: {secret}"
    assert tx in assert_redacted(text, secret)


@PROPERTY
@given(
    key=keys,
    network=st.sampled_from(sorted(corpus.WIF_VERSIONS)),
    compressed=st.booleans(),
    lead=st.sampled_from(SECRET_LEADS),
)
def test_a_wif_key_is_redacted(key: bytes, network: str, compressed: bool, lead: str) -> None:
    secret = corpus.wif(key, network, compressed)
    assert_redacted(_in(lead, secret), secret)


@PROPERTY
@given(
    prefix=st.sampled_from(sorted(corpus.EXTENDED_VERSIONS)),
    chain_code=random_bytes(32),
    key=keys,
    depth=st.integers(min_value=0, max_value=255),
    fingerprint=random_bytes(4),
    child=st.integers(min_value=0, max_value=2**32 - 1),
    lead=st.sampled_from(SECRET_LEADS),
)
def test_an_extended_private_key_is_redacted(
    prefix: str,
    chain_code: bytes,
    key: bytes,
    depth: int,
    fingerprint: bytes,
    child: int,
    lead: str,
) -> None:
    secret = corpus.extended_key(prefix, chain_code, key, depth, fingerprint, child)
    assert_redacted(_in(lead, secret), secret)


@PROPERTY
@given(seed=random_bytes(32), lead=st.sampled_from(SECRET_LEADS))
def test_a_solana_secret_key_in_base58_is_redacted(seed: bytes, lead: str) -> None:
    secret = corpus.b58encode(corpus.solana_keypair(seed))
    assert_redacted(_in(lead, secret), secret)


@PROPERTY
@given(
    seed=random_bytes(32),
    spacing=st.sampled_from(["", " ", "\n  "]),
    lead=st.sampled_from([*SECRET_LEADS, "cat ~/.config/solana/id.json\n{k}"]),
)
def test_a_solana_keypair_as_a_json_byte_array_is_redacted(
    seed: bytes, spacing: str, lead: str
) -> None:
    secret = corpus.byte_array(corpus.solana_keypair(seed), spacing)
    assert_redacted(_in(lead, secret), secret)


@PROPERTY
@given(
    rng=rngs,
    indent=st.sampled_from([None, 2]),
    layout=st.sampled_from(
        ["{b}\npassword: {p}", "密码：{p}\n{b}", "keystore {b} the password is {p} thanks"]
    ),
)
def test_a_keystore_and_the_password_next_to_it_are_redacted(
    rng: random.Random, indent: int | None, layout: str
) -> None:
    body = json.dumps(corpus.keystore(rng, corpus.evm_address(rng.randbytes(20))), indent=indent)
    secret = corpus.password(rng)
    assert_redacted(layout.replace("{b}", body).replace("{p}", secret), body, secret)


@pytest.mark.parametrize("kind", [k for k in corpus.SECRET_KINDS if k in corpus.GENERATORS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds)
def test_every_secret_sample_the_corpus_can_build_is_redacted(kind: str, seed: int) -> None:
    sample = corpus.GENERATORS[kind][1](random.Random(seed))
    output = assert_redacted(sample.text, *(s for _, s in sample.secrets))
    for keep in sample.keep:
        assert keep in output


# --- what must stay ------------------------------------------------------------------------------


@PROPERTY
@given(
    digest=random_bytes(32),
    prefixed=st.booleans(),
    lead=st.sampled_from(corpus.TX_LEAD_EN + corpus.TX_LEAD_ZH),
)
def test_a_transaction_hash_is_kept_even_next_to_key_words(
    digest: bytes, prefixed: bool, lead: str
) -> None:
    text = (
        lead.replace("{h}", ("0x" if prefixed else "") + digest.hex())
        .replace("{h0x}", "0x" + digest.hex())
        .replace("{hbare}", digest.hex())
    )
    assert_untouched(corpus.fill_slots(text, random.Random(digest)))


addresses = st.one_of(
    random_bytes(20).map(corpus.evm_address),
    st.tuples(rngs, st.sampled_from(["legacy", "p2sh", "segwit", "taproot"])).map(
        lambda args: corpus.btc_address(*args)
    ),
    rngs.map(corpus.tron_address),
    random_bytes(32).map(lambda b: corpus.b58encode(corpus.ed25519_public(b))),
    random_bytes(32).map(corpus.b58encode),
)


@PROPERTY
@given(address=addresses, lead=st.sampled_from(corpus.ADDRESS_LEAD_EN + corpus.ADDRESS_LEAD_ZH))
def test_an_address_of_any_chain_is_kept(address: str, lead: str) -> None:
    assert_untouched(lead.replace("{a}", address))


@PROPERTY
@given(signature=random_bytes(64), lead=st.sampled_from(corpus.SIGNATURE_LEAD))
def test_a_solana_transaction_signature_is_kept(signature: bytes, lead: str) -> None:
    assert signature[32:] != corpus.ed25519_public(signature[:32])  # not a keypair
    assert_untouched(lead.replace("{s}", corpus.b58encode(signature)))


@PROPERTY
@given(
    clauses=st.lists(st.sampled_from(corpus.ZH_CLAUSES), min_size=2, max_size=8),
    separator=st.sampled_from(["", "，", " ", "。", "\n"]),
)
def test_chinese_prose_made_of_common_characters_is_kept(
    clauses: list[str], separator: str
) -> None:
    assert_untouched(separator.join(clauses))


@PROPERTY
@given(
    sentences=st.lists(st.sampled_from(corpus.WORDLIST_PROSE), min_size=1, max_size=4),
    separator=st.sampled_from([". ", ", ", " ", "\n", " and "]),
    lower=st.booleans(),
)
def test_english_sentences_made_of_list_words_are_kept(
    sentences: list[str], separator: str, lower: bool
) -> None:
    text = separator.join(sentences)
    assert_untouched(text.lower() if lower else text)


@pytest.mark.parametrize("negative_class", corpus.NEGATIVE_CLASSES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds)
def test_every_hard_negative_the_corpus_can_build_is_kept(negative_class: str, seed: int) -> None:
    assert_untouched(corpus.GENERATORS[negative_class][1](random.Random(seed)).text)


def test_the_corpus_labels_are_exact() -> None:
    """Every labelled secret occurs verbatim in its text, and the corpus is reproducible."""
    samples = corpus.corpus(seed=7, size=600)
    assert samples == corpus.corpus(seed=7, size=600)
    for sample in samples:
        assert (sample.negative_class is None) == bool(sample.secrets)
        for kind, secret in sample.secrets:
            assert kind in corpus.SECRET_KINDS
            assert secret in sample.text
            assert corpus.leaked(secret, sample.text, sample.text, [secret])
        for word in sample.text.split():
            assert unicodedata.is_normalized("NFC", word)
