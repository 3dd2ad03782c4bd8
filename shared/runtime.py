"""What every service process holds: clients, consumers, relay, metrics, lifespan.

Services describe their consumers and routes; this module opens and closes the
resources in the right order (no I/O at import time) and answers /readyz.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, disable_created_metrics

from shared.clock import Clock, SystemClock
from shared.consumer import BatchConsumer, make_broker
from shared.http import (
    PROBLEM_RESPONSES,
    BodyLimit,
    install_operational_routes,
    install_problem_handlers,
    install_red_metrics,
)
from shared.kafka import DeadLetters, make_producer
from shared.keyring import EventOpener, EventSealer, Keyring
from shared.logging import configure_logging
from shared.metrics import consumer_metrics, http_metrics, outbox_metrics, sealing_metrics
from shared.mongo import make_client, mongo_ready, service_database
from shared.outbox import OutboxRelay, ensure_outbox_index
from shared.topic_provisioning import require_topics
from shared.topics import Topics
from shared.tracing import configure as configure_tracing
from shared.tracing import flush as flush_traces
from shared.tracing import instrument_app
from shared.wiring import CONSUMERS, group_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from aiokafka import AIOKafkaProducer, TopicPartition
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.kafka import BatchHandler
    from shared.mongo import Document
    from shared.settings import ServiceSettings


log = structlog.get_logger(__name__)


class Worker(Protocol):
    """A background loop a service runs beside its consumers (timers, flushers)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ServiceRuntime:
    """Resources of one running service instance. Created in the lifespan, never at import."""

    service: str
    settings: ServiceSettings
    clock: Clock = field(default_factory=SystemClock)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    client: AsyncMongoClient[Document] | None = None
    producer: AIOKafkaProducer | None = None
    consumers: list[BatchConsumer] = field(default_factory=list)
    relay: OutboxRelay | None = None
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = Topics(self.settings.topic_prefix)
        # The service's FastStream broker: every consumer is one of its subscribers.
        self.broker = make_broker(self.settings, self.service)
        self._consumer_metrics = consumer_metrics(self.registry, self.service)
        self._sealing_metrics = sealing_metrics(self.registry, self.service)
        self._keyring: Keyring | None = None

    @property
    def keyring(self) -> Keyring:
        """Requester keys for the personal fields of events on Kafka (shared.keyring)."""
        if self._keyring is None:
            if self.client is None:
                raise RuntimeError("runtime not started")
            db = service_database(self.client, self.settings, "keyring")
            self._keyring = Keyring(db, self._sealing_metrics)
        return self._keyring

    @property
    def opener(self) -> EventOpener:
        """Opens sealed fields: every consumer's batch, and signed commands once checked."""
        return EventOpener(self.keyring, self._sealing_metrics)

    @property
    def db(self) -> AsyncDatabase[Document]:
        if self.client is None:
            raise RuntimeError("runtime not started")
        return service_database(self.client, self.settings, self.service)

    @property
    def kafka(self) -> AIOKafkaProducer:
        if self.producer is None:
            raise RuntimeError("runtime not started")
        return self.producer

    async def open(self) -> None:
        if self.settings.require_topics:  # before any subscription could auto-create one
            await require_topics(self.settings, self.service)
        self.client = make_client(self.settings)
        self.producer = make_producer(self.settings, client_id=self.service)
        await self.producer.start()

    def add_consumer(
        self,
        name: str,
        handle: BatchHandler,
        *,
        on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
        on_revoked: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
        personal_fields: bool = True,
    ) -> BatchConsumer:
        """A subscriber of the service's broker, reading the topics `shared.wiring.CONSUMERS`
        gives this service's consumer `name`: the table the AsyncAPI document's receive
        operations and the Kafka ACLs come from, so neither can describe another wiring.

        `personal_fields=False`: the handler never reads sealed fields, so they are
        withheld (erased values) without fetching keys."""
        topics = [self.settings.topic_prefix + t for t in CONSUMERS[self.service][name]]
        consumer = BatchConsumer(
            name=name,
            service=self.service,
            topics=topics,
            group_id=group_id(self.service, name, self.settings.topic_prefix),
            settings=self.settings,
            handle=handle,
            dead_letters=DeadLetters(self.kafka, f"{self.service}.{name}"),
            metrics=self._consumer_metrics,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
            clock=self.clock,
            opener=self.opener if personal_fields else EventOpener(None, self._sealing_metrics),
            broker=self.broker,
        )
        self.consumers.append(consumer)
        return consumer

    async def add_outbox(self, collections: Sequence[AsyncCollection[Document]]) -> OutboxRelay:
        for collection in collections:
            await ensure_outbox_index(collection)
        await self.keyring.ensure_indexes()
        self.relay = OutboxRelay(
            collections,
            self.kafka,
            outbox_metrics(self.registry, self.service),
            self.clock,
            sealer=EventSealer(self.keyring, self._sealing_metrics),
            lease=timedelta(seconds=self.settings.outbox_relay_lease_s),
        )
        return self.relay

    async def start(self) -> None:
        for consumer in self.consumers:
            await consumer.start()
        if self.relay is not None:
            self.relay.start()
        for worker in self.workers:
            worker.start()

    async def close(self) -> None:
        """Stops in dependency order; every step is bounded, so a stuck step (a broker that
        does not answer a group leave, say) cannot keep the process from exiting."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            *((f"worker:{type(w).__name__}", w.stop) for w in self.workers),
            *([("outbox-relay", self.relay.stop)] if self.relay is not None else []),
            *((f"consumer:{c.name}", c.stop) for c in self.consumers),
            ("faststream-broker", self.broker.stop),
            *([("kafka-producer", self.producer.stop)] if self.producer is not None else []),
            *([("mongodb-client", self.client.close)] if self.client is not None else []),
        ]
        for name, stop in steps:
            await _within(name, stop(), self.settings.shutdown_step_timeout_s)

    async def ready(self) -> dict[str, bool]:
        """Each dependency answers a real round trip within a second; consumers are assigned."""
        checks = {"mongodb": self.client is not None and await mongo_ready(self.client)}
        checks["kafka"] = await self._kafka_answers()
        for consumer in self.consumers:
            checks[f"consumer:{consumer.name}"] = bool(consumer.assigned) and (
                consumer.last_error is None
            )
        return checks

    async def _kafka_answers(self, timeout_s: float = 1.0) -> bool:
        client = getattr(self.producer, "client", None)
        if client is None:
            return False
        try:
            return bool(await asyncio.wait_for(client.force_metadata_update(), timeout_s))
        except (TimeoutError, KafkaError, OSError):
            return False


async def _within(step: str, work: Awaitable[None], timeout_s: float) -> None:
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        log.warning("shutdown_step_timed_out", step=step, timeout_s=timeout_s)
    elif task.exception() is not None:
        log.warning("shutdown_step_failed", step=step, error=repr(task.exception())[:300])


def service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    setup: Callable[[ServiceRuntime, FastAPI], Awaitable[None]],
    description: str = "",
) -> FastAPI:
    """A FastAPI app whose lifespan opens the runtime, lets the service wire itself, starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(runtime.service, runtime.settings.log_level, runtime.settings.log_json)
        await runtime.open()
        try:
            await setup(runtime, app)
            await runtime.start()
            yield
        finally:
            await runtime.close()
            flush_traces()

    configure_tracing(runtime.service)  # before any MongoDB client exists
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twins
    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        version="0.1.0",
        responses=PROBLEM_RESPONSES,
    )
    app.state.runtime = runtime
    app.add_middleware(
        BodyLimit,
        max_bytes=runtime.settings.http_max_body_bytes,
        timeout_s=runtime.settings.http_body_timeout_s,
    )
    install_problem_handlers(app)
    install_red_metrics(app, http_metrics(runtime.registry, runtime.service))
    install_operational_routes(app, runtime.registry, runtime.ready)
    instrument_app(app)
    return app
