"""Settings common to every service; each service subclasses `ServiceSettings`.

All configuration comes from `HELPSTREAM_*` environment variables (or explicit
arguments in tests); nothing reads `os.environ` elsewhere.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    kafka_session_timeout_ms: int = Field(10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_max_records: int = Field(500, ge=1, description="Largest batch a consumer takes.")
    topic_prefix: str = Field("", description="Prepended to every topic name (tests, tenants).")
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27117/?directConnection=true", description="MongoDB URL."
    )
    mongo_db_prefix: str = Field(
        "helpstream", description="Each service uses database `<prefix>_<service>`."
    )
    mongo_timeout_ms: int = Field(
        5000, ge=100, description="Longest any one database operation may take."
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
        1000, ge=1, description="Connections served at once; more get 503."
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
