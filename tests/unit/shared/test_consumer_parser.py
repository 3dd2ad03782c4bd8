"""Why `shared.consumer` parses batches itself: FastStream's parser fails on a header."""

from __future__ import annotations

import logging

import pytest
from aiokafka.structs import ConsumerRecord
from faststream.kafka.message import KafkaAckableMessage
from faststream.kafka.parser import AioKafkaBatchParser

from shared.consumer import BatchConsumer
from shared.settings import ServiceSettings


def record(offset: int, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", 0, offset, 0, 0, b"k", b"v", None, 1, 1, headers)


BATCH = (record(0, [("ok", b"fine")]), record(1, [("trace", b"\xff\xfe")]))


async def test_fast_streams_batch_parser_raises_on_an_undecodable_header() -> None:
    parser = AioKafkaBatchParser(msg_class=KafkaAckableMessage, regex=None)
    with pytest.raises(UnicodeDecodeError):
        await parser.parse_batch(BATCH)


async def test_the_consumers_parser_keeps_every_record_and_never_raises() -> None:
    settings = ServiceSettings.model_construct(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="PLAINTEXT",
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        kafka_max_records=10,
        shutdown_step_timeout_s=1.0,
    )
    consumer = BatchConsumer(
        name="probe",
        service="test",
        topics=["t"],
        group_id="g",
        settings=settings,
        handle=None,  # type: ignore[arg-type]  # never called here
        dead_letters=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
    )
    message = await consumer._parse(BATCH)
    assert message.raw_message == BATCH
    assert message.batch_headers[1]["trace"] == "\ufffd\ufffd"


def test_the_provisioned_topics_warning_is_not_logged_but_other_warnings_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared.consumer import faststream_logger

    logger = faststream_logger("parser-test")
    faststream_logger("parser-test")  # a second broker adds no second filter
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Auto create topics is disabled. Make sure the topics exist.")
        logger.warning("Consumer stopped: broker unreachable")
    assert [r.getMessage() for r in caplog.records] == ["Consumer stopped: broker unreachable"]
    assert len(logger.filters) == 1
