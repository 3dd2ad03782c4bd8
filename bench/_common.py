"""Helpers the benchmarks share: infrastructure, raw baselines, SMTP sink, measurements.

Not a benchmark itself (the runner only picks up `bench_*.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient, InsertOne, UpdateOne

from shared.infra import local_secrets
from shared.infra.modes import Infra, external, start_embedded
from shared.outbox import OUTBOX, OUTBOX_CLAIM, OUTBOX_LEASE, OUTBOX_SINCE
from shared.settings import InfraMode, ServiceSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

    from fastapi import FastAPI

    from shared.mongo import Document
    from shared.runtime import ServiceRuntime

S = TypeVar("S", bound=ServiceSettings)
RUN_SECRETS = local_secrets.generate()  # one set per run: the services share the link secret
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def infrastructure(mongo_cache: str | None = None) -> Iterator[Infra]:
    """An embedded broker and database in a temp dir (or HELPSTREAM_INFRA=external)."""
    if os.environ.get("HELPSTREAM_INFRA") == InfraMode.external.value:
        yield external()
        return
    with tempfile.TemporaryDirectory(prefix="helpstream-bench-") as tmp:
        infra = start_embedded(Path(tmp), mongo_cache=mongo_cache)
        try:
            yield infra
        finally:
            infra.stop()


def prefix() -> str:
    return f"b{uuid.uuid4().hex[:10]}"


def service_settings(cls: type[S], infra: Infra, tag: str, **overrides: Any) -> S:
    """Settings as the integration tests build them: isolated topics and database."""
    values: dict[str, Any] = {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongo_url": infra.mongo_url,
        "topic_prefix": f"{tag}.",
        "mongo_db_prefix": tag,
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "log_json": False,
        "log_level": "WARNING",
        "retry_backoff_max_s": 0.5,
        **local_secrets.required_for(cls, RUN_SECRETS),
    }
    values.update(overrides)
    return cls(**values)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run a service app's lifespan in this event loop (as tests/support.running does)."""
    async with app.router.lifespan_context(app):
        yield


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


def raw_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


async def produce_all(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, bytes]],
    headers: Callable[[bytes], list[tuple[str, bytes]]] | None = None,
) -> None:
    """Send every message (pipelined, acks=all) and wait for all acknowledgements;
    `headers(value)` adds headers to each (a command's signature)."""
    producer = raw_producer(bootstrap)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, value, key=key, headers=headers(value) if headers is not None else None
            )
            for key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_until(check: Callable[[], bool], limit_s: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


def consumed(runtime: ServiceRuntime, consumer: str, topic: str) -> float:
    """Messages the service's consumer applied (its own counter, after the durable write)."""
    name = f"helpstream_{runtime.service}_consumer_messages_processed_total"
    value = runtime.registry.get_sample_value(name, {"consumer": consumer, "topic": topic})
    return value or 0.0


async def consumers_assigned(runtime: ServiceRuntime, limit_s: float = 30.0) -> None:
    if not await wait_until(lambda: all(c.assigned for c in runtime.consumers), limit_s, 0.05):
        raise RuntimeError(f"{runtime.service}: consumers not assigned within {limit_s}s")


# --- baselines ------------------------------------------------------------------------


async def raw_kafka_rate(bootstrap: str, messages: Sequence[tuple[bytes, bytes]]) -> float:
    """Ceiling (a): a bare aiokafka consume→produce loop over the same messages, msg/s.

    Same shape as a service: a group member (session 2 s), getmany(max_records=500),
    one send per record to another topic, wait for the acks, commit; timed from the
    first produce (the group is joined before) to the last commit.
    """
    tag = prefix()
    source, sink = f"{tag}.raw.in", f"{tag}.raw.out"
    await create_topics(bootstrap, [source, sink])
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{tag}-raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        max_poll_records=500,
        fetch_max_wait_ms=100,
    )
    producer = raw_producer(bootstrap)
    await consumer.start()
    await producer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        started = time.perf_counter()
        feeding = asyncio.create_task(produce_all(bootstrap, source, messages))
        done = 0
        deadline = time.monotonic() + 120
        while done < len(messages) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            futures = [
                await producer.send(sink, r.value, key=r.key)
                for part in batches.values()
                for r in part
            ]
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit({tp: p[-1].offset + 1 for tp, p in batches.items()})
            done += len(futures)
        elapsed = time.perf_counter() - started
        await feeding
    finally:
        await producer.stop()
        await consumer.stop()
    return done / elapsed


async def raw_write_rate(
    mongo_url: str,
    docs: Sequence[Document],
    *,
    upsert: bool,
    indexes: Sequence[Document] = (),
    events: int | None = None,
) -> float:
    """Ceiling (b): bulk_write of the same documents (batches of 500) to a fresh
    collection with the same indexes and write concern as the services; events/s
    (`events` documents count as `len(docs)`).
    """
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, w="majority", journal=True
    )
    try:
        coll = client[f"{prefix()}_raw"]["docs"]
        for spec in indexes:
            keys = list(spec["key"].items())
            if keys != [("_id", 1)]:
                options = {k: spec[k] for k in ("unique", "sparse") if k in spec}
                await coll.create_index(keys, **options)
        ops: list[InsertOne[Document] | UpdateOne] = [
            UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True)
            if upsert
            else InsertOne(d)
            for d in docs
        ]
        started = time.perf_counter()
        for i in range(0, len(ops), 500):
            await coll.bulk_write(ops[i : i + 500], ordered=False)
        elapsed = time.perf_counter() - started
        await client.drop_database(coll.database.name)
    finally:
        await client.close()
    return (events if events is not None else len(docs)) / elapsed


async def read_back(
    mongo_url: str, db: str, coll: str, limit: int
) -> tuple[list[Document], list[Document]]:
    """Documents a service wrote and its collection's indexes, to replay them raw.

    Without their outbox fields: when the service stops, its relay has cleared some
    outboxes and not others, which made the replay cost vary by 3x between runs. The
    ceiling is therefore the state documents alone (the stricter one)."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        collection = client[db][coll]
        hidden = dict.fromkeys((OUTBOX, OUTBOX_SINCE, OUTBOX_CLAIM, OUTBOX_LEASE), 0)
        docs = await collection.find({}, hidden).limit(limit).to_list()
        indexes = [dict(spec) async for spec in await collection.list_indexes()]
    finally:
        await client.close()
    return docs, indexes


# --- SMTP sink in its own process ---------------------------------------------------------

_SINK = """
import sys, time
from email.parser import BytesHeaderParser
from shared.infra.mailcatcher import MailCatcher
from shared.infra.processes import free_port

class Stamping(MailCatcher):
    def keep(self, mail_from, rcpt_tos, raw):
        head = BytesHeaderParser().parsebytes(raw)
        ticket = head.get("X-Helpstream-Ticket", "")
        sys.stdout.write(f"{time.time():.6f}\\t{ticket}\\t{len(rcpt_tos)}\\n")
        sys.stdout.flush()

port = free_port()
catcher = Stamping(port=port)
catcher.start()
sys.stdout.write(f"READY {port}\\n")
sys.stdout.flush()
sys.stdin.read()
catcher.stop()
"""


@dataclass
class MailSink:
    """A MailCatcher (aiosmtpd) in a child process that reports (time, ticket id) per mail,
    so the SMTP server does not share the GIL with what is measured."""

    port: int = 0
    pid: int = 0
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SINK],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"mail sink did not start: {line!r}")
        self.port, self.pid = int(line.split()[1]), self._proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            stamp, ticket, _ = line.rstrip("\n").split("\t")
            self.arrivals.append((float(stamp), ticket))

    @property
    def count(self) -> int:
        return len(self.arrivals)

    def stop(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None


@contextlib.contextmanager
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --- measurements ---------------------------------------------------------------------------


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (VmRSS from /proc), MiB; this process by default."""
    path = Path(f"/proc/{pid}/status") if pid else Path("/proc/self/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def timed(label: str, work: Awaitable[float]) -> float:
    started = time.perf_counter()
    result = await work
    print(f"  {label}: {result:,.0f}/s ({time.perf_counter() - started:.1f}s)", flush=True)
    return result


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A Markdown table (also readable on a terminal)."""
    cells = [[str(c) for c in header], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, " | ".join("-" * w for w in widths))
    return "\n".join(f"| {line} |" for line in lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
