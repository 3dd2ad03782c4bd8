"""Settings common to every service; each service subclasses `ServiceSettings`.

All configuration comes from `HELPSTREAM_*` environment variables (or explicit
arguments in tests); nothing reads `os.environ` elsewhere.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import limits
from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _rate(value: str) -> str:
    limits.parse(value)  # "60/minute", "10 per second": a typo stops the start
    return value


RateLimit = Annotated[str, AfterValidator(_rate)]


class InfraMode(StrEnum):
    embedded = "embedded"
    containers = "containers"
    external = "external"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HELPSTREAM_", extra="forbid")

    infra: InfraMode = Field(
        InfraMode.embedded, description="Where the broker and database come from."
    )
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_idempotent_producer: bool = Field(
        False,
        description="Idempotent producer (real Kafka: on; the embedded broker lacks it).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How clients reach the brokers (real clusters: SASL_SSL; README, Security).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(
        None, description="This service's Kafka user (its ACLs decide what it may write)."
    )
    kafka_sasl_password: SecretStr | None = Field(None, description="That user's password.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client certificate's key.")
    kafka_session_timeout_ms: int = Field(10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_max_records: int = Field(500, ge=1, description="Largest batch a consumer takes.")
    topic_prefix: str = Field("", description="Prepended to every topic name (tests, tenants).")
    require_topics: bool = Field(
        False,
        description="Refuse to start, naming them, when this service's topics do not exist "
        "(true where auto-create is off: compose, Kubernetes; `helpstream topics apply`).",
    )
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27117/?directConnection=true", description="MongoDB URL."
    )
    mongo_db_prefix: str = Field(
        "helpstream", description="Each service uses database `<prefix>_<service>`."
    )
    mongo_timeout_ms: int = Field(
        5000, ge=100, description="Longest any one database operation may take."
    )
    outbox_relay_lease_s: float = Field(
        10.0,
        ge=1.0,
        description="One instance per service publishes its outbox, the holder of a lease "
        "it renews every half lease; when the holder dies without stopping, another takes "
        "over within this plus a quarter of it.",
    )
    http_host: str = Field("127.0.0.1", description="HTTP bind address.")
    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port (API, /metrics).")
    http_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Larger request bodies get 413 before being read."
    )
    http_body_timeout_s: float = Field(
        10.0, gt=0, description="A request body not complete within this gets 408."
    )
    http_limit_concurrency: int = Field(
        1000,
        ge=1,
        description="Requests in flight at once (idle connections do not count); more get "
        "503 with Retry-After.",
    )
    http_header_timeout_s: float = Field(
        5.0,
        gt=0,
        description="A connection whose request headers are not complete within this (from "
        "connecting, or from the first byte of a keep-alive request) is closed.",
    )
    http_max_pending_connections: int = Field(
        2000,
        ge=1,
        description="Connections still sending request headers kept at once; past it the "
        "oldest is closed.",
    )
    rate_limit_pages_per_ip: RateLimit = Field(
        "120/minute",
        description="Requests to a service's public requester pages from one client address "
        "(carrier NAT puts many requesters behind one).",
    )
    rate_limit_pages_per_token: RateLimit = Field(
        "60/minute",
        description="Requests to a service's public requester pages with one link (marking "
        "an inbox item read is two: the form and the page it returns to).",
    )
    rate_limit_writes_per_key: RateLimit = Field(
        "6000/minute",
        description="Write requests with one API key (or, without one, from one client "
        "address): stops a runaway loop or a leaked key, not a gateway's incident spike.",
    )
    shutdown_step_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for each resource to close at shutdown."
    )
    log_level: str = Field("INFO")
    log_json: bool = Field(True, description="JSON logs (false: human-readable console).")
    retry_backoff_max_s: float = Field(
        5.0, gt=0, description="Longest pause between retries of a failing batch."
    )
    poison_max_attempts: int = Field(
        3,
        ge=1,
        description=(
            "Times in a row a batch may fail with a non-outage error before the consumer "
            "splits it and dead-letters the messages the handler fails on."
        ),
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> ServiceSettings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "HELPSTREAM_KAFKA_SASL_USERNAME and HELPSTREAM_KAFKA_SASL_PASSWORD are required"
                f" with HELPSTREAM_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            )
        return self
