"""Topic and DLQ retention is configurable and always bounded: requester data on Kafka
goes some time after an erasure."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.topic_provisioning import DAY_MS, TopicSettings, desired_topics


@pytest.mark.parametrize("field", ["dlq_retention_ms", "topic_retention_ms"])
@pytest.mark.parametrize("value", [-1, 0, 91 * DAY_MS])
def test_retention_forever_or_beyond_ninety_days_is_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        TopicSettings(**{field: value})


def test_the_configured_dlq_retention_is_what_every_dlq_gets() -> None:
    topics = desired_topics(TopicSettings(dlq_retention_ms=2 * DAY_MS))
    dlqs = {t.name: t.configs["retention.ms"] for t in topics if t.name.endswith(".dlq")}
    assert "helpstream.notifications.dlq" in dlqs
    assert set(dlqs.values()) == {str(2 * DAY_MS)}
    events = {t.configs["retention.ms"] for t in topics if not t.name.endswith(".dlq")}
    assert events == {str(7 * DAY_MS)}
