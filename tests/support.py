"""Test helpers that talk to the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import pathlib
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from shared.events import CloudEvent, Contract, parse_event
from shared.infra.local_secrets import generate, required_for
from shared.keyring import EventOpener, Keyring
from shared.metrics import sealing_metrics
from shared.mongo import service_database
from shared.topics import Topics

T = TypeVar("T")

# One set per test process: intake verifies the links notifier signs with the same secret.
TEST_SECRETS = generate()


def secret_settings(cls: type[Any]) -> dict[str, Any]:
    """The secrets a settings class requires (fail-closed), filled with test values."""
    return required_for(cls, TEST_SECRETS)


if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from fastapi import FastAPI

    from shared.runtime import ServiceRuntime
    from shared.settings import ServiceSettings

ROOT = pathlib.Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service in this event loop (its lifespan included) and talk HTTP to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


class Tap:
    """Reads a topic from its beginning in a group of its own.

    With `settings`, personal fields sealed under requester keys are opened as every
    helpstream consumer opens them (`shared.keyring`); `raw` keeps what the topic holds."""

    def __init__(self, bootstrap: str, topic: str, settings: ServiceSettings | None = None) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self.raw: list[Any] = []
        self._settings = settings
        self._mongo: AsyncMongoClient[dict[str, Any]] | None = None
        self._opener: EventOpener | None = None
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"tap-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            heartbeat_interval_ms=300,
            fetch_max_wait_ms=100,
        )

    async def __aenter__(self) -> Tap:
        if self._settings is not None:
            self._mongo = AsyncMongoClient(self._settings.mongo_url)
            metrics = sealing_metrics(CollectorRegistry(), "tap")
            db = service_database(self._mongo, self._settings, "keyring")
            self._opener = EventOpener(Keyring(db, metrics), metrics)
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        if self._mongo is not None:
            await self._mongo.close()

    async def _take(self, batches: dict[Any, list[Any]]) -> None:
        for part in batches.values():
            self.raw.extend(part)
            if self._opener is None:
                self.records.extend(part)
                continue
            opened = await self._opener.open_values([r.value for r in part])  # commands too
            self.records.extend(
                dataclasses.replace(r, value=value)
                for r, (value, _) in zip(part, opened, strict=True)
            )

    async def collect(self, count: int, timeout: float = 20.0) -> list[Any]:
        """Wait until at least `count` records arrived (or time runs out)."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            await self._take(await self._consumer.getmany(timeout_ms=200))
        return self.records

    async def settle(self, quiet: float = 1.5) -> list[Any]:
        """Keep reading until nothing new arrives for `quiet` seconds (to prove absence)."""
        last = -1
        while last != len(self.records):
            last = len(self.records)
            await self._take(await self._consumer.getmany(timeout_ms=int(quiet * 1000)))
        return self.records

    def events(self) -> list[CloudEvent[Contract]]:
        return [parse_event(r.value) for r in self.records]


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.1
) -> T:
    """Poll until `check` holds (returns something true, which is returned); fails with a
    clear message after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def consumers_of(topics: Topics) -> dict[str, list[tuple[str, str]]]:
    """Input topic → the (service, consumer) pairs that read it."""
    return {
        topics.commands: [("intake", "commands")],
        topics.tickets: [
            ("sla_monitor", "tickets"),
            ("feedback", "tickets"),
            ("notifier", "events"),
        ],
        topics.sla: [("intake", "escalations"), ("notifier", "events")],
        topics.feedback: [("intake", "escalations"), ("notifier", "events")],
        topics.notifications: [("intake", "erasures")],
    }


def subscribers_as_faststream_documents_them(runtime: ServiceRuntime) -> set[tuple[str, str]]:
    """(consumer, unprefixed topic) of every receive operation in the AsyncAPI document
    FastStream generates from the service's running broker."""
    from faststream.specification import AsyncAPI

    spec = json.loads(AsyncAPI(runtime.broker, schema_version="3.0.0").to_specification().to_json())
    found = set()
    for operation in spec["operations"].values():
        if operation["action"] != "receive":
            continue
        key = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        consumer = key.split(":", 1)[0].removeprefix(f"{runtime.service}.")
        topic = spec["channels"][key]["address"].removeprefix(runtime.settings.topic_prefix)
        found.add((consumer, topic))
    return found


def receive_operations_in_docs(service: str) -> set[tuple[str, str]]:
    """(consumer, topic) of the service's receive operations in docs/asyncapi.yaml."""
    doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    found = set()
    for key, operation in doc["operations"].items():
        if operation["action"] == "receive" and key.startswith(f"{service}."):
            channel = operation["channel"]["$ref"].rsplit("/", 1)[-1]
            found.add((key.split(".")[1], doc["channels"][channel]["address"]))
    return found
