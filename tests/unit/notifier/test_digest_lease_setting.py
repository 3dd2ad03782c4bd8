"""A digest lease that could end while its holder is still sending refuses to start."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.notifier.settings import NotifierSettings
from tests.support import secret_settings


def settings(**values: Any) -> NotifierSettings:
    return NotifierSettings(**values, **secret_settings(NotifierSettings))


def test_the_default_lease_outlasts_the_slowest_default_send() -> None:
    cfg = settings()
    assert cfg.digest_lease_s > cfg.slowest_send_s


@pytest.mark.parametrize(
    "values",
    [
        {"digest_lease_s": 15.0, "smtp_timeout_s": 10.0, "smtp_fallback_host": "relay2"},
        {"digest_lease_s": 60.0, "webhook_max_attempts": 10, "webhook_timeout_s": 5.0},
    ],
)
def test_a_lease_shorter_than_the_slowest_send_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="HELPSTREAM_DIGEST_LEASE_S"):
        settings(**values)
