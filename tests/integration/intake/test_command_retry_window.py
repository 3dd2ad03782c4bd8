"""A command batch retried after a database timeout is judged as when it first arrived:
a long incident fan-out is never refused as stale halfway through; a copy of the command
published again later still is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord

from shared.command_signing import sign_headers
from tests.integration.intake.conftest import ADMIN_KEY, Intake, ticket_body
from tests.integration.intake.test_commands import command, tickets_of
from tests.support import eventually


def record(
    topic: str, offset: int, value: bytes, signed_at: datetime
) -> ConsumerRecord[bytes, bytes]:
    headers = sign_headers(ADMIN_KEY, value, signed_at)
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=int(signed_at.timestamp() * 1000),
        timestamp_type=0,  # CreateTime: the producer's clock, not the broker's arrival
        key=b"W-1",
        value=value,
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=len(value),
        headers=headers,
    )


async def test_a_retried_batch_is_not_refused_as_stale_but_a_later_copy_is(
    intake: Intake, uid: str
) -> None:
    handle = next(c for c in intake.runtime.consumers if c.name == "commands")._handle
    topic = intake.runtime.topics.commands
    requester = f"u-retry-{uid}"
    value = command("open", "W-1", ticket_body(requester={"id": requester, "locale": "en"}))
    window = intake.settings.command_replay_window_s
    signed_at = datetime.now(UTC) - timedelta(seconds=window - 2)  # fresh, barely

    first = record(topic, 7, value, signed_at)
    assert list(await handle([first])) == []

    async def window_passed() -> bool:
        return datetime.now(UTC) - signed_at > timedelta(seconds=window + 1)

    await eventually(window_passed, timeout=10)
    # The same record again, as after a timeout that rewound the batch: applied once.
    assert list(await handle([record(topic, 7, value, signed_at)])) == []
    # The same bytes published again (another offset) are a replay: refused as stale.
    refused = await handle([record(topic, 8, value, signed_at)])
    assert [r.error.reason for r in refused] == ["stale_command"]
    assert len(await tickets_of(intake, requester)) == 1
