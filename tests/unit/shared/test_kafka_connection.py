"""Real clusters: each service logs in as its own Kafka user over TLS (SASL_SSL)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from shared.kafka import connection_options, make_producer
from shared.settings import ServiceSettings


def test_plain_connections_need_no_credentials() -> None:
    options = connection_options(ServiceSettings(kafka_bootstrap="k:9092"))
    assert options == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}


async def test_sasl_ssl_gives_every_client_the_service_user_and_a_tls_context() -> None:
    settings = ServiceSettings(
        kafka_bootstrap="k:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="helpstream-notifier",
        kafka_sasl_password="s3cret-scram-password",
    )
    options = connection_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "helpstream-notifier"
    assert options["sasl_plain_password"] == "s3cret-scram-password"
    assert options["ssl_context"] is not None
    producer = make_producer(settings, "notifier")
    assert isinstance(producer, AIOKafkaProducer)
    assert producer.client._security_protocol == "SASL_SSL"


def test_sasl_without_credentials_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="HELPSTREAM_KAFKA_SASL_USERNAME"):
        ServiceSettings(kafka_security_protocol="SASL_SSL")


def test_only_a_broker_stamped_time_counts_as_arrival() -> None:
    from aiokafka.structs import ConsumerRecord

    from shared.kafka import LOG_APPEND_TIME, appended_at

    def record(timestamp_type: int) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord(
            "t", 0, 0, 1_700_000_000_000, timestamp_type, None, b"", None, 0, 0, ()
        )

    assert appended_at(record(0)) is None  # CreateTime: whatever the producer claimed
    stamped = appended_at(record(LOG_APPEND_TIME))
    assert stamped is not None
    assert stamped.timestamp() == 1_700_000_000


def test_subscribers_log_in_as_the_same_user_as_the_producer() -> None:
    from faststream.security import SASLScram512

    from shared.consumer import security

    assert security(ServiceSettings(kafka_bootstrap="k:9092")) is None
    login = security(
        ServiceSettings(
            kafka_bootstrap="k:9093",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="helpstream-notifier",
            kafka_sasl_password="s3cret-scram-password",
        )
    )
    assert isinstance(login, SASLScram512)
    assert (login.username, login.password) == ("helpstream-notifier", "s3cret-scram-password")
    assert login.use_ssl
    assert login.ssl_context is not None
