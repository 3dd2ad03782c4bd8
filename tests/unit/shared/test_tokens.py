from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.tokens import TokenError, sign, verify

SECRET = b"s" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@given(st.dictionaries(st.sampled_from(["survey", "ticket", "locale"]), st.text(max_size=40)))
def test_a_signed_token_verifies_with_its_claims(claims: dict[str, str]) -> None:
    token = sign(SECRET, "survey", claims, NOW, timedelta(days=7))
    assert verify(SECRET, "survey", token, NOW + timedelta(days=6))
    assert {k: v for k, v in verify(SECRET, "survey", token, NOW).items() if k in claims} == claims


def test_an_expired_token_is_refused() -> None:
    token = sign(SECRET, "survey", {"s": "1"}, NOW, timedelta(days=7))
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, "survey", token, NOW + timedelta(days=7, seconds=1))


def test_a_token_with_a_changed_payload_or_another_secret_is_forged() -> None:
    token = sign(SECRET, "survey", {"s": "1"}, NOW, timedelta(days=7))
    signature = token.partition(".")[2]
    other = sign(SECRET, "survey", {"s": "2"}, NOW, timedelta(days=7)).partition(".")[0]
    with pytest.raises(TokenError, match="forged"):
        verify(SECRET, "survey", f"{other}.{signature}", NOW)
    with pytest.raises(TokenError, match="forged"):
        verify(b"x" * 32, "survey", token, NOW)


def test_a_token_for_another_purpose_is_refused() -> None:
    token = sign(SECRET, "inbox", {"r": "u-1"}, NOW, timedelta(days=7))
    with pytest.raises(TokenError, match="wrong_purpose"):
        verify(SECRET, "survey", token, NOW)


@pytest.mark.parametrize("garbage", ["", ".", "abc", "abc.", ".abc", "a.b.c"])
def test_garbage_is_refused_without_crashing(garbage: str) -> None:
    with pytest.raises(TokenError):
        verify(SECRET, "survey", garbage, NOW)
