"""A dead-letter topic must not keep what the ticket store may not.

Before: an over-size `ticket.open` command holding a seed phrase was copied byte for byte to
`helpstream.commands.dlq`. Now every string of a JSON payload is redacted before it is
dead-lettered, a payload that is not JSON is redacted and cut, and the reason headers (and
the producer's own headers) are kept.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from mnemonic import Mnemonic

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.command_signing import sign_headers
from shared.commands import MAX_TEXT
from shared.dlq_payload import REDACTED_HEADER, TEXT_LIMIT, TRUNCATED_HEADER
from shared.ids import new_id
from shared.runtime import ServiceRuntime
from shared.topics import Topics
from tests.integration.intake.conftest import ADMIN_KEY, ticket_body
from tests.support import Tap, running

if TYPE_CHECKING:
    from shared.infra.modes import Infra

SEED_PHRASE = Mnemonic("english").generate(128)  # 12 words, valid checksum


def open_command(description: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": new_id(),
            "source": "/exchange/app",
            "type": "helpstream.ticket.open",
            "subject": "W-dlq",
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "correlationid": "corr-dlq",
            "data": ticket_body(requester={"id": "u-dlq"}, description=description),
        },
        ensure_ascii=False,
    ).encode()


async def dead_lettered(make_settings: Any, infra: Infra, value: bytes) -> Any:
    """Runs intake, sends `value` signed with the bootstrap key, returns its DLQ record."""
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    runtime = ServiceRuntime("intake", settings)
    topic = Topics(settings.topic_prefix).commands
    producer = AIOKafkaProducer(
        bootstrap_servers=infra.kafka_bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    async with (
        running(create_app(settings, runtime)),
        Tap(infra.kafka_bootstrap, Topics.dlq(topic)) as dlq,
    ):
        await producer.start()
        try:
            headers = [("x-trace", b"trace-1"), *sign_headers(ADMIN_KEY, value, datetime.now(UTC))]
            await producer.send_and_wait(topic, value, key=b"W-dlq", headers=headers)
        finally:
            await producer.stop()
        records = await dlq.collect(1, timeout=30)
    assert len(records) == 1, records
    return records[0]


async def test_an_over_size_command_with_a_seed_phrase_reaches_the_dlq_without_it(
    make_settings: Any, infra: Infra
) -> None:
    description = f"My wallet is empty. My words are {SEED_PHRASE}. " + "Help! " * MAX_TEXT
    record = await dead_lettered(make_settings, infra, open_command(description))

    text = record.value.decode()
    assert SEED_PHRASE not in text
    assert all(word not in text for word in SEED_PHRASE.split() if len(word) > 4)
    kept = json.loads(text)
    assert kept["data"]["description"].startswith("My wallet is empty. My words are [REDACTED:")
    assert kept["data"]["requester"]["id"] == "u-dlq"  # the rest is kept for a replay
    headers = dict(record.headers)
    assert headers["error-type"] == b"invalid_data"
    assert SEED_PHRASE.encode() not in headers["error-message"]
    assert headers["consumer"] == b"intake.commands"
    assert headers["x-trace"] == b"trace-1"
    assert headers[REDACTED_HEADER] == b"bip39_mnemonic"


async def test_a_huge_payload_that_is_not_json_is_redacted_and_cut(
    make_settings: Any, infra: Infra
) -> None:
    value = b"\xff\xfe not json: " + SEED_PHRASE.encode() + b" " + b"\x00" * 1_000_000
    record = await dead_lettered(make_settings, infra, value)

    assert len(record.value) == TEXT_LIMIT
    assert SEED_PHRASE.encode() not in record.value
    assert record.value.startswith(b"\xff\xfe not json: [REDACTED:bip39_mnemonic]")
    headers = dict(record.headers)
    assert headers[TRUNCATED_HEADER] == str(len(value)).encode()
    assert headers["error-type"]
