"""One switch, `HELPSTREAM_INFRA`, decides where the broker and database come from."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.infra.embedded import kafka_process, mongo_process, mongo_url
from shared.infra.processes import free_port
from shared.settings import InfraMode, ServiceSettings

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@dataclass
class Infra:
    """Addresses of a running broker and database, and how to stop what we started."""

    mode: InfraMode
    kafka_bootstrap: str
    mongo_url: str
    kafka_pid: int | None = None
    mongo_pid: int | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()


def start_embedded(
    data_dir: Path,
    *,
    kafka_port: int | None = None,
    mongo_port: int | None = None,
    persistent: bool = False,
    detached: bool = False,
    mongo_cache: str | None = None,
) -> Infra:
    """Tansu + SecantusDB as child processes; `persistent` keeps MongoDB data on disk."""
    kafka = kafka_process(kafka_port or free_port(), data_dir / "logs", detached=detached)
    mongo_port = mongo_port or free_port()
    mongo = mongo_process(
        mongo_port,
        data_dir / "logs",
        data_dir / "mongodb" if persistent else None,
        detached=detached,
        cache_size=mongo_cache,
    )
    kafka.start()
    try:
        mongo.start()
    except Exception:
        kafka.stop()
        raise
    bootstrap = str(kafka.argv[kafka.argv.index("--listener-url") + 1]).removeprefix("tcp://")
    return Infra(
        InfraMode.embedded,
        bootstrap,
        mongo_url(mongo_port),
        kafka_pid=kafka.pid,
        mongo_pid=mongo.pid,
        _stops=[kafka.stop, mongo.stop],
    )


def start_containers() -> Infra:  # pragma: no cover - needs a Docker engine
    """Official images through testcontainers, for machines with Docker."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    kafka = KafkaContainer("apache/kafka:3.9.1").with_kraft()
    mongo = MongoDbContainer("mongo:8.0")
    kafka.start()
    mongo.start()
    return Infra(
        InfraMode.containers,
        kafka.get_bootstrap_server(),
        mongo.get_connection_url(),
        _stops=[kafka.stop, mongo.stop],
    )


def external() -> Infra:
    """Existing infrastructure named by HELPSTREAM_KAFKA_BOOTSTRAP and HELPSTREAM_MONGO_URL."""
    settings = ServiceSettings()
    return Infra(InfraMode.external, settings.kafka_bootstrap, settings.mongo_url)


def start_infra(mode: InfraMode, data_dir: Path) -> Infra:
    if mode is InfraMode.embedded:
        return start_embedded(data_dir)
    if mode is InfraMode.containers:
        return start_containers()
    return external()
