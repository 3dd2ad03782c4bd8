"""What a dead-lettered payload keeps: secrets redacted, clean messages unchanged."""

from __future__ import annotations

import json

from mnemonic import Mnemonic

from shared.dlq_payload import REDACTED_HEADER, TEXT_LIMIT, TRUNCATED_HEADER, scrub

PHRASE = Mnemonic("english").to_mnemonic(bytes(range(16)))  # a valid 12-word phrase


def test_a_clean_json_message_is_kept_byte_for_byte() -> None:
    value = b'{ "type": "helpstream.ticket.open",  "data": {"n": 1e400, "s": "\\u00fc"} }'
    assert scrub(value).value == value
    assert scrub(value).headers == []


def test_a_seed_phrase_anywhere_in_a_json_message_is_redacted_and_said_so() -> None:
    value = json.dumps(
        {"data": {"requester": {"id": "u-1"}, "notes": ["ok", {"deep": f"my words:\n{PHRASE}"}]}}
    ).encode()
    out = scrub(value)
    assert out.value is not None
    assert PHRASE not in out.value.decode()
    assert json.loads(out.value)["data"]["notes"][1]["deep"].endswith("[REDACTED:bip39_mnemonic]")
    assert dict(out.headers) == {REDACTED_HEADER: b"bip39_mnemonic"}


def test_undecodable_bytes_are_kept_and_text_around_them_redacted() -> None:
    value = b"\x00\xff" + PHRASE.encode() + b"\xfe"
    out = scrub(value)
    assert out.value == b"\x00\xff[REDACTED:bip39_mnemonic]\xfe"


def test_a_huge_payload_that_is_not_json_is_cut_after_redaction() -> None:
    value = b"{" + PHRASE.encode() + b" " + b"x" * (2 * TEXT_LIMIT)
    out = scrub(value)
    assert out.value is not None
    assert len(out.value) == TEXT_LIMIT
    assert PHRASE.encode() not in out.value
    assert dict(out.headers)[TRUNCATED_HEADER] == str(len(value)).encode()


def test_json_too_deep_to_walk_is_treated_as_text() -> None:
    value = b"[" * 200_000 + b"]" * 200_000
    out = scrub(value)
    assert out.value is not None
    assert len(out.value) == TEXT_LIMIT


def test_empty_and_missing_payloads_pass_through() -> None:
    assert scrub(None).value is None
    assert scrub(b"").value == b""


def test_json_with_a_string_too_long_to_redact_is_kept_as_cut_text() -> None:
    value = json.dumps({"data": {"description": PHRASE + " " + "x" * 2_100_000}}).encode()
    out = scrub(value)
    assert out.value is not None
    assert len(out.value) == TEXT_LIMIT
    assert PHRASE.encode() not in out.value
    assert dict(out.headers)[REDACTED_HEADER] == b"bip39_mnemonic"
