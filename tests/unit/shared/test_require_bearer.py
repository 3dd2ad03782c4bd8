"""The optional shared key of operator and reporting routes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.http import ProblemError, require_bearer

KEY = SecretStr("reports-3c9e")


def test_without_a_configured_key_the_route_stays_open() -> None:
    require_bearer(None, None, "reports API key")


def test_the_configured_key_as_a_bearer_token_is_let_through() -> None:
    require_bearer(KEY, "Bearer reports-3c9e", "reports API key")


@pytest.mark.parametrize("sent", [None, "", "Bearer", "Bearer reports-3c9", "reports-3c9e-x"])
def test_a_missing_or_wrong_key_is_a_401_naming_what_to_send(sent: str | None) -> None:
    with pytest.raises(ProblemError) as refused:
        require_bearer(KEY, sent, "reports API key")
    assert refused.value.status == 401
    assert "reports API key" in refused.value.detail
