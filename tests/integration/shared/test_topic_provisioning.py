"""`helpstream topics apply` and HELPSTREAM_REQUIRE_TOPICS on the real broker.

The embedded broker (Tansu) answers CreateTopics, Metadata and DescribeConfigs but neither
CreatePartitions nor AlterConfigs, so there drift in partitions or retention is reported
and left; on Kafka proper both are fixed. The assertions hold on either.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

from helpstream.cli import app as cli
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from shared.infra.local_secrets import service_env
from shared.infra.processes import free_port
from shared.topic_provisioning import (
    TOPICS,
    MissingTopics,
    TopicSettings,
    apply_topics,
    existing_topics,
    topics_of,
)
from tests.support import TEST_SECRETS, create_topic, running

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.infra.modes import Infra


async def partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()


async def test_apply_creates_every_topic_and_dlq_with_its_partitions(
    make_settings: Callable[..., Any],
) -> None:
    settings: TopicSettings = make_settings(TopicSettings)

    findings = await apply_topics(settings)

    prefix = settings.topic_prefix
    assert {f.topic: f.state for f in findings} == {prefix + s.name: "created" for s in TOPICS}
    assert prefix + "helpstream.tickets.dlq" in {f.topic for f in findings}
    counts = await partition_counts(settings.kafka_bootstrap, [prefix + s.name for s in TOPICS])
    assert counts == {prefix + s.name: s.partitions for s in TOPICS}


async def test_a_second_apply_finds_everything_as_configured(
    make_settings: Callable[..., Any],
) -> None:
    settings: TopicSettings = make_settings(TopicSettings, topic_partitions=2)
    await apply_topics(settings)

    again = await apply_topics(settings)
    checked = await apply_topics(settings, check_only=True)

    assert [f.line() for f in again if f.state != "ok"] == []
    assert [f.line() for f in checked if f.state != "ok"] == []


async def test_fewer_partitions_than_configured_is_reported_and_fixed_where_the_broker_can(
    make_settings: Callable[..., Any],
) -> None:
    settings: TopicSettings = make_settings(TopicSettings)
    tickets = settings.topic_prefix + "helpstream.tickets"
    await create_topic(settings.kafka_bootstrap, tickets, 2)

    findings = {f.topic: f for f in await apply_topics(settings)}

    finding = findings[tickets]
    assert "2 partitions, configured 12" in finding.detail
    assert finding.state in ("fixed", "drift")  # Kafka adds partitions; Tansu cannot
    assert finding.unresolved == (finding.state == "drift")
    assert all(f.state == "created" for name, f in findings.items() if name != tickets)


async def test_other_retention_is_reported_as_drift_or_fixed(
    make_settings: Callable[..., Any],
) -> None:
    settings: TopicSettings = make_settings(TopicSettings, topic_partitions=2)
    await apply_topics(settings)
    shorter = settings.model_copy(update={"topic_retention_ms": 3_600_000})

    findings = {f.topic: f for f in await apply_topics(shorter)}

    sla = findings[settings.topic_prefix + "helpstream.sla"]
    assert "retention.ms 604800000 -> 3600000" in sla.detail
    assert sla.state in ("fixed", "drift")
    dlq = findings[settings.topic_prefix + "helpstream.sla.dlq"]
    assert dlq.state == "ok"  # DLQs keep their own retention


def test_the_command_exits_1_on_drift_it_cannot_fix(infra: Infra, uid: str) -> None:
    """More partitions than configured cannot be undone on any broker."""
    prefix = f"t{uid}."
    env = {"HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "HELPSTREAM_TOPIC_PREFIX": prefix}
    runner = CliRunner()
    first = runner.invoke(cli, ["topics", "apply"], env={**env, "HELPSTREAM_TOPIC_PARTITIONS": "3"})
    assert first.exit_code == 0, first.output

    again = runner.invoke(cli, ["topics", "apply"], env={**env, "HELPSTREAM_TOPIC_PARTITIONS": "2"})

    assert again.exit_code == 1
    assert f"drift    {prefix}helpstream.mail: 3 partitions, configured 2" in again.output
    count = len(TOPICS)  # every topic and DLQ: each has more partitions than configured now
    assert f"{count} topics, {count} not as configured" in again.output


async def test_a_service_requiring_topics_does_not_start_without_them(
    make_settings: Callable[..., Any],
) -> None:
    settings: FeedbackSettings = make_settings(FeedbackSettings, require_topics=True)
    prefix = settings.topic_prefix
    for name in topics_of("feedback"):
        if name != "helpstream.tickets.dlq":
            await create_topic(settings.kafka_bootstrap, prefix + name, 1)

    with pytest.raises(MissingTopics) as refused:
        async with running(feedback_app(settings)):
            pass

    assert refused.value.missing == [prefix + "helpstream.tickets.dlq"]


def test_a_service_process_exits_with_one_line_naming_the_missing_topics(
    infra: Infra, uid: str
) -> None:
    prefix = f"t{uid}."
    env = {
        **os.environ,
        **service_env("feedback", TEST_SECRETS),
        "HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HELPSTREAM_MONGO_URL": infra.mongo_url,
        "HELPSTREAM_TOPIC_PREFIX": prefix,
        "HELPSTREAM_MONGO_DB_PREFIX": f"t{uid}",
        "HELPSTREAM_HTTP_PORT": str(free_port()),
        "HELPSTREAM_REQUIRE_TOPICS": "true",
    }

    done = subprocess.run(
        [sys.executable, "-m", "services.feedback"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    missing = [prefix + name for name in topics_of("feedback")]
    assert f"missing Kafka topics {', '.join(missing)}" in lines[0]
    assert "helpstream topics apply" in lines[0]


async def test_the_check_creates_nothing(make_settings: Callable[..., Any]) -> None:
    """Asking for named topics would auto-create them; the check lists all instead."""
    settings: FeedbackSettings = make_settings(FeedbackSettings, require_topics=True)

    with pytest.raises(MissingTopics):
        async with running(feedback_app(settings)):
            pass

    present = await existing_topics(settings)
    assert not {n for n in present if n.startswith(settings.topic_prefix)}
