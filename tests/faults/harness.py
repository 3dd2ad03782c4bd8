"""What the fault tests drive: their own broker and database, the four services as real
processes, a webhook receiver, load generators and the accounting done afterwards.

Everything here is owned by one test: the broker may be SIGSTOPped, the database killed
and restarted on its data directory, any service killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import MongoClient

from shared.command_signing import sign_headers
from shared.infra import local_secrets
from shared.infra.embedded import kafka_process, mongo_process, mongo_url
from shared.infra.processes import ManagedProcess, free_port, pid_alive
from shared.infra.services import SERVICES, service_process
from shared.topics import Topics
from tests.support import Tap

if TYPE_CHECKING:
    from pathlib import Path

    from shared.infra.mailcatcher import MailCatcher

API_KEY = "hs_faults_0123456789abcdefghijklmnopqrstuvwxyz"
WEBHOOK_SECRET = "faults-webhook-secret-0123456789abcdef"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
VIP_EVERY = 10  # every tenth ticket is VIP: a 5 s first-reply target that breaches

# first_reply of VIP tickets breaches 5 s after creation; every other ticket has a day.
SLA_POLICIES = """\
warnings: [0.5]
policies:
  - name: fast
    match: {tier: vip}
    targets:
      first_reply: {target: 5s}
  - name: slow
    targets:
      first_reply: {target: 1d}
"""


# --- infrastructure ----------------------------------------------------------------------


class FaultInfra:
    """A broker and a database of one test, with the faults the tests inject."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_dir = root / "logs"
        self.storage = root / "mongodb"
        self.kafka_port = free_port()
        self.mongo_port = free_port()
        self.kafka = kafka_process(self.kafka_port, self.log_dir)
        self.mongo = self._mongo()

    def _mongo(self) -> ManagedProcess:
        return mongo_process(self.mongo_port, self.log_dir, self.storage)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return mongo_url(self.mongo_port)

    def start(self) -> None:
        self.kafka.start()
        self.mongo.start(timeout=60)

    def stop(self) -> None:
        for process in (self.mongo, self.kafka):
            with contextlib.suppress(Exception):
                process.stop()

    def pause(self, process: ManagedProcess) -> None:
        os.kill(process.pid, signal.SIGSTOP)

    def resume(self, process: ManagedProcess) -> None:
        os.kill(process.pid, signal.SIGCONT)

    def kill_mongo(self) -> None:
        """SIGKILL: no shutdown, whatever was not on disk is gone."""
        assert self.mongo.process is not None
        self.mongo.process.kill()
        self.mongo.process.wait(timeout=30)
        self.mongo.process = None

    def restart_mongo(self) -> float:
        """Start MongoDB again on the same port and data dir; returns seconds to ready."""
        started = time.monotonic()
        self.mongo = self._mongo()
        deadline = time.monotonic() + 30
        while True:  # the port may linger for a moment after the kill
            try:
                self.mongo.start(timeout=60)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return time.monotonic() - started


# --- webhook receiver --------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    key: str
    ticket_id: str
    template: str


class WebhookReceiver:
    """The exchange's push service: answers 200 and keeps every POST it receives."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.hooks.append(
                        Hook(
                            str(self.headers.get("Idempotency-Key")),
                            str(body.get("ticket_id")),
                            str(body.get("template")),
                        )
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[Hook]:
        with self._lock:
            return list(self.hooks)


# --- the four services ---------------------------------------------------------------------


class System:
    """intake, sla_monitor, feedback and notifier as child processes on the test's infra."""

    def __init__(
        self,
        infra: FaultInfra,
        mail: MailCatcher,
        webhook: WebhookReceiver,
        log_dir: Path,
        names: tuple[str, ...] = tuple(SERVICES),
    ) -> None:
        uid = uuid.uuid4().hex[:10]
        self.infra = infra
        self.prefix = f"f{uid}"
        self.topics = Topics(f"f{uid}.")
        self.log_dir = log_dir
        self.names = names
        policies = log_dir / "sla_policies.yaml"
        log_dir.mkdir(parents=True, exist_ok=True)
        policies.write_text(SLA_POLICIES)
        self.env = {
            "HELPSTREAM_KAFKA_BOOTSTRAP": infra.bootstrap,
            "HELPSTREAM_MONGO_URL": infra.mongo_url,
            "HELPSTREAM_TOPIC_PREFIX": self.topics.prefix,
            "HELPSTREAM_MONGO_DB_PREFIX": self.prefix,
            "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
            "HELPSTREAM_RETRY_BACKOFF_MAX_S": "1.0",
            "HELPSTREAM_SMTP_PORT": str(mail.port),
            "HELPSTREAM_WEBHOOK_URL": webhook.url,
            "HELPSTREAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HELPSTREAM_SLA_POLICIES": str(policies),
            "HELPSTREAM_LOG_JSON": "false",
            "HELPSTREAM_LOG_LEVEL": "WARNING",
        }
        self.secrets = {**local_secrets.generate(), "bootstrap_api_key": API_KEY}
        self.ports = {name: free_port() for name in names}
        self.processes: dict[str, ManagedProcess] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str | None = None) -> None:
        for each in [name] if name else self.names:
            process = service_process(
                each, self.ports[each], self.env, self.log_dir, secrets=self.secrets
            )
            process.start(timeout=90)
            self.processes[each] = process

    def kill(self, name: str) -> None:
        """kill -9: no lifespan shutdown, no offset commit, no goodbye to the group."""
        process = self.processes.pop(name).process
        assert process is not None
        process.kill()
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(Exception):
                process.stop()
        self.processes.clear()

    def alive(self) -> dict[str, bool]:
        return {
            name: p.process is not None and p.process.poll() is None and pid_alive(p.pid)
            for name, p in self.processes.items()
        }

    def readyz(self, name: str, timeout: float = 3.0) -> int | str:
        """The /readyz status code, or why there was none (timeout, refused)."""
        try:
            with urllib.request.urlopen(f"{self.url(name)}/readyz", timeout=timeout) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return type(exc).__name__

    def metrics(self, name: str) -> str:
        with urllib.request.urlopen(f"{self.url(name)}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def diagnosis(self, lines: int = 12) -> str:
        """Why a count did not settle: each service's readiness, the consumer metrics that
        say whether it is moving, and the distinct recent lines of its log."""
        out = []
        for name in self.names:
            ready = self.readyz(name, 3.0)
            try:
                text = self.metrics(name)
                moving: dict[str, float | str] = {
                    metric: metric_sum(text, f"helpstream_{name}_{metric}")
                    for metric in (
                        "consumer_messages_processed_total",
                        "consumer_batch_retries_total",
                        "outbox_events_relayed_total",
                        "outbox_relay_failures_total",
                        "outbox_pending_documents",
                    )
                }
                moving["lag"] = metric_sum(text, "helpstream_kafka_consumer_lag_messages")
            except OSError as exc:
                moving = {"metrics": type(exc).__name__}
            recent: list[str] = []
            for line in reversed(self.log_tail(name, 400).splitlines()):
                plain = ANSI.sub("", line)
                event = plain.partition("] ")[2][:200]
                if event and all(event[:40] != seen.partition("] ")[2][:40] for seen in recent):
                    recent.append(plain[:300])
                if len(recent) >= lines:
                    break
            out.append(f"--- {name}: readyz={ready} alive={self.alive().get(name)} {moving}")
            out.extend(f"    {line}" for line in reversed(recent))
        return "\n".join(out)

    def db(self, client: MongoClient[dict[str, Any]], service: str) -> Any:
        return client[f"{self.prefix}_{service}"]


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample family over every series matching `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        if series != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


# --- load ------------------------------------------------------------------------------


def ticket_body(n: int, run: str) -> dict[str, Any]:
    vip = n % VIP_EVERY == 0
    return {
        "requester": {
            "id": f"u-{run}-{n}",
            "email": f"user{n}.{run}@example.com",
            "locale": "en",
            "tier": "vip" if vip else "standard",
        },
        "channel": "web",
        "subject": f"Question {n} about my account",
        "description": f"Load ticket number {n} of run {run}.",
    }


@dataclass
class LoadResult:
    planned: int = 0
    seconds: float = 0.0
    created: list[str] = field(default_factory=list)  # 201 ticket ids (HTTP) or command ids
    vip: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)  # status → first body seen
    retried: Counter[str] = field(default_factory=Counter)  # 503 body → repeats
    slowest_s: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.created) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"planned={self.planned} accepted={len(self.created)} in {self.seconds:.1f}s "
            f"({self.rate:.0f}/s) statuses={dict(self.statuses)} slowest={self.slowest_s:.1f}s"
            + (f" retried={dict(self.retried)}" if self.retried else "")
            + "".join(f"\n  first {k}: {v}" for k, v in self.samples.items() if k != "201")
        )


async def http_load(
    url: str,
    rate: float,
    seconds: float,
    *,
    run: str,
    workers: int = 24,
    timeout: float = 10.0,
    stop: asyncio.Event | None = None,
    retry_unavailable: int = 0,
) -> LoadResult:
    """Open tickets over HTTP at `rate`/s for `seconds`; keep every 201's ticket id.

    With `retry_unavailable`, a 503 with Retry-After is repeated that many times with the
    same Idempotency-Key, as the problem body asks: the answer is then the ticket (200 if
    the first attempt was applied after all), never a second one."""
    result = LoadResult(planned=int(rate * seconds))
    started = time.monotonic()
    counter = iter(range(result.planned))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    async def post(http: httpx.AsyncClient, n: int) -> httpx.Response:
        key = {"Idempotency-Key": f"{run}-{n}"}
        for _ in range(retry_unavailable):
            response = await http.post(f"{url}/v1/tickets", json=ticket_body(n, run), headers=key)
            if response.status_code != 503 or "Retry-After" not in response.headers:
                return response
            result.retried[response.text[:200]] += 1
            await asyncio.sleep(float(response.headers["Retry-After"]))
        return await http.post(f"{url}/v1/tickets", json=ticket_body(n, run), headers=key)

    async def worker(http: httpx.AsyncClient) -> None:
        for n in counter:
            if stop is not None and stop.is_set():
                return
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.monotonic()
            try:
                response = await post(http, n)
            except httpx.HTTPError as exc:
                result.statuses[type(exc).__name__] += 1
            else:
                status = str(response.status_code)
                result.statuses[status] += 1
                if status not in result.samples:
                    kind = response.headers.get("content-type", "")
                    result.samples[status] = f"{kind} {response.text[:300]!r}"
                if response.status_code in (200, 201):
                    ticket_id = response.json()["id"]
                    result.created.append(ticket_id)
                    if n % VIP_EVERY == 0:
                        result.vip.add(ticket_id)
            result.slowest_s = max(result.slowest_s, time.monotonic() - sent)

    async with httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(workers)))
    result.seconds = time.monotonic() - started
    return result


def open_command(n: int, run: str) -> tuple[str, bytes]:
    command_id = str(uuid.uuid4())
    envelope = {
        "specversion": "1.0",
        "id": command_id,
        "source": "/faults/load",
        "type": "helpstream.ticket.open",
        "subject": f"ref-{run}-{n}",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "dataschemaversion": 1,
        "correlationid": f"corr-{run}-{n}",
        "data": ticket_body(n, run),
    }
    return command_id, json.dumps(envelope).encode()


async def command_load(bootstrap: str, topic: str, rate: float, seconds: float) -> LoadResult:
    """Publish `ticket.open` commands at `rate`/s (acks=all); keeps every command id acked."""
    run = uuid.uuid4().hex[:6]
    result = LoadResult(planned=int(rate * seconds))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    started = time.monotonic()
    try:
        pending: list[tuple[int, str, asyncio.Future[Any]]] = []
        for n in range(result.planned):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            command_id, value = open_command(n, run)
            headers = sign_headers(API_KEY, value, datetime.now(UTC))
            future = await producer.send(
                topic, value, key=f"ref-{run}-{n}".encode(), headers=headers
            )
            pending.append((n, command_id, future))
        for n, command_id, future in pending:
            await future
            result.created.append(command_id)
            result.statuses["acked"] += 1
            if n % VIP_EVERY == 0:
                result.vip.add(command_id)
    finally:
        await producer.stop()
    result.seconds = time.monotonic() - started
    return result


# --- accounting --------------------------------------------------------------------------


@dataclass
class Accounting:
    """What arrived where, per ticket; `problems()` lists every broken promise."""

    expected: int = 0
    tickets: int = 0  # documents in intake
    missing_tickets: list[str] = field(default_factory=list)
    duplicate_tickets: list[str] = field(default_factory=list)
    with_email: int = 0
    ghosts: int = 0  # tickets in intake that no accepted request or command accounts for
    sla_docs: int = 0
    missing_sla: list[str] = field(default_factory=list)
    acks: Counter[str] = field(default_factory=Counter)  # ticket id → ack emails
    ack_hooks: Counter[str] = field(default_factory=Counter)
    duplicate_message_ids: int = 0
    duplicate_hook_keys: int = 0
    # Resends of one message (same Message-ID / Idempotency-Key) a crash may cause: what was
    # in flight when notifier died. Receivers drop them by that id; 0 unless a test kills.
    allowed_resends: int = 0
    stray_hooks: list[Any] = field(default_factory=list)  # for the report: hooks of no ticket
    emails: int = 0
    hooks: int = 0
    vip: set[str] = field(default_factory=set)
    breaches: Counter[str] = field(default_factory=Counter)  # distinct breach event ids
    republished_breaches: int = 0  # records of an id already published (dropped downstream)
    outbox_pending: int = 0

    def problems(self) -> list[str]:
        out: list[str] = []
        ids = self.ticket_ids
        if self.missing_tickets:
            out.append(f"{len(self.missing_tickets)} tickets lost: {self.missing_tickets[:3]}")
        if self.duplicate_tickets:
            out.append(
                f"{len(self.duplicate_tickets)} tickets doubled: {self.duplicate_tickets[:3]}"
            )
        if self.missing_sla:
            out.append(f"{len(self.missing_sla)} tickets without SLA: {self.missing_sla[:3]}")
        no_ack = [t for t in ids if self.acks[t] == 0]
        many_ack = [t for t in ids if self.acks[t] > 1]
        if no_ack:
            out.append(f"{len(no_ack)} tickets without acknowledgement email: {no_ack[:3]}")
        if many_ack:
            out.append(f"{len(many_ack)} tickets with >1 acknowledgement email: {many_ack[:3]}")
        no_hook = [t for t in ids if self.ack_hooks[t] == 0]
        many_hook = [t for t in ids if self.ack_hooks[t] > 1]
        if no_hook:
            out.append(
                f"{len(no_hook)} tickets without acknowledgement webhook: {no_hook[:3]} "
                f"(hooks naming no known ticket: {self.stray_hooks})"
            )
        if many_hook:
            out.append(f"{len(many_hook)} tickets with >1 acknowledgement webhook: {many_hook[:3]}")
        resends = self.duplicate_message_ids + self.duplicate_hook_keys
        if resends > self.allowed_resends:
            out.append(
                f"{self.duplicate_message_ids} emails and {self.duplicate_hook_keys} webhooks "
                f"resent with an id seen before (at most {self.allowed_resends} allowed)"
            )
        lost = [t for t in self.vip if self.breaches[t] == 0]
        repeated = [t for t in self.vip if self.breaches[t] > 1]
        unexpected = [t for t in self.breaches if t not in self.vip]
        if lost:
            out.append(f"{len(lost)} VIP tickets without sla.breached: {lost[:3]}")
        if repeated:
            out.append(f"{len(repeated)} tickets breached more than once: {repeated[:3]}")
        if unexpected:
            out.append(f"{len(unexpected)} breaches of tickets with a 1-day target")
        if self.outbox_pending:
            out.append(f"{self.outbox_pending} documents with events still in an outbox")
        return out

    ticket_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"expected={self.expected} tickets={self.tickets} ghosts={self.ghosts} "
            f"sla_docs={self.sla_docs} "
            f"emails={self.emails} ack_emails={sum(self.acks.values())} "
            f"webhooks={self.hooks} ack_webhooks={sum(self.ack_hooks.values())} "
            f"vip={len(self.vip)} breaches={sum(self.breaches.values())} "
            f"republished_breaches={self.republished_breaches} "
            f"dup_message_ids={self.duplicate_message_ids} dup_hook_keys={self.duplicate_hook_keys}"
        )


def ticket_of_subject(subject: str) -> str | None:
    return subject[1:].split("]", 1)[0] if subject.startswith("[") else None


def count_once(
    system: System,
    load: LoadResult,
    mail: MailCatcher,
    webhook: WebhookReceiver,
    breaches: Counter[str],
    allowed_resends: int = 0,
) -> Accounting:
    """Read intake, sla_monitor, the SMTP server and the webhook receiver once."""
    acc = Accounting(expected=len(load.created), breaches=breaches, allowed_resends=allowed_resends)
    client: MongoClient[dict[str, Any]] = MongoClient(system.infra.mongo_url, tz_aware=True)
    try:
        tickets = system.db(client, "intake")["tickets"]
        docs = list(tickets.find({}, {"_id": 1, "open_key": 1, "requester": 1, "_outbox_since": 1}))
        acc.tickets = len(docs)
        id_of: dict[str, list[str]] = {}
        for doc in docs:  # a ticket counts by its id (HTTP) and its command id (Kafka)
            id_of.setdefault(doc["_id"], []).append(doc["_id"])
            open_key = str(doc.get("open_key", ""))
            if open_key.startswith("cmd:"):
                id_of.setdefault(open_key.removeprefix("cmd:"), []).append(doc["_id"])
        for origin in load.created:
            found = id_of.get(origin, [])
            if not found:
                acc.missing_tickets.append(origin)
            elif len(found) > 1:
                acc.duplicate_tickets.append(origin)
        acc.ticket_ids = [d["_id"] for d in docs]
        wanted = set(load.created)
        acc.ghosts = sum(
            1
            for d in docs
            if d["_id"] not in wanted
            and str(d.get("open_key", "")).removeprefix("cmd:") not in wanted
        )
        acc.with_email = sum(1 for d in docs if (d.get("requester") or {}).get("email"))
        acc.vip = {d["_id"] for d in docs if (d.get("requester") or {}).get("tier") == "vip"}
        acc.outbox_pending = sum(1 for d in docs if "_outbox_since" in d)
        sla = system.db(client, "sla_monitor")["ticket_sla"]
        sla_ids = {d["_id"] for d in sla.find({}, {"_id": 1})}
        acc.sla_docs = len(sla_ids)
        acc.missing_sla = [t for t in acc.ticket_ids if t not in sla_ids]
        acc.outbox_pending += sla.count_documents({"_outbox_since": {"$exists": True}})
        acc.outbox_pending += system.db(client, "notifier")["deliveries"].count_documents(
            {"_outbox_since": {"$exists": True}}
        )
    finally:
        client.close()
    seen_ids: Counter[str] = Counter()
    ack_ids: dict[str, set[str]] = {}
    for m in list(mail.messages):
        message_id = str(m.message["Message-ID"])
        seen_ids[message_id] += 1
        # subjects show the short number (`[#482913]`) where a ticket has one
        ticket = str(m.message["X-Helpstream-Ticket"] or "") or ticket_of_subject(m.subject)
        if ticket is not None and "We received your request" in m.subject:
            ack_ids.setdefault(ticket, set()).add(message_id)  # a resend is the same message
    acc.acks.update({ticket: len(ids) for ticket, ids in ack_ids.items()})
    acc.emails = sum(seen_ids.values())
    acc.duplicate_message_ids = sum(n - 1 for n in seen_ids.values())
    keys: Counter[str] = Counter()
    hook_ids: dict[str, set[str]] = {}
    for hook in webhook.snapshot():
        keys[hook.key] += 1
        if hook.template == "ticket_acknowledged":
            hook_ids.setdefault(hook.ticket_id, set()).add(hook.key)
    acc.ack_hooks.update({ticket: len(ids) for ticket, ids in hook_ids.items()})
    acc.stray_hooks = [h for h in webhook.snapshot() if h.ticket_id not in set(acc.ticket_ids)][:5]
    acc.hooks = sum(keys.values())
    acc.duplicate_hook_keys = sum(n - 1 for n in keys.values())
    return acc


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """What `group` has committed on `topic`, per partition (-1: nothing yet), asked
    without joining the group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata of every topic
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        out: dict[int, int] = {}
        for p in partitions:
            committed = await consumer.committed(TopicPartition(topic, p))
            out[p] = -1 if committed is None else int(committed)
        return out
    finally:
        await consumer.stop()


async def events_on_topics(bootstrap: str, topics: Topics) -> int:
    """Records published so far on every event and command topic of one system."""
    names = [topics.commands, topics.tickets, topics.sla, topics.feedback, topics.notifications]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def read_breaches(tap: Tap) -> Counter[str]:
    """Distinct sla.breached events per ticket, from the start of the sla topic.

    A relay that crashed (or lost its database) between publishing and clearing its outbox
    publishes the same event again, with the same id, which every consumer drops: that is
    a republished record, not a second breach. Their number is in `republished(tap)`.
    """
    await tap.settle(quiet=1.0)
    ids: dict[str, set[str]] = {}
    for event in _breach_events(tap):
        ids.setdefault(str(event.get("subject")), set()).add(str(event.get("id")))
    return Counter({ticket: len(seen) for ticket, seen in ids.items()})


def republished(tap: Tap) -> int:
    """sla.breached records whose event id was published before."""
    seen: Counter[str] = Counter(str(e.get("id")) for e in _breach_events(tap))
    return sum(n - 1 for n in seen.values())


def _breach_events(tap: Tap) -> list[dict[str, Any]]:
    out = []
    for record in tap.records:
        with contextlib.suppress(ValueError, TypeError):
            event = json.loads(record.value)
            if isinstance(event, dict) and event.get("type") == "helpstream.sla.breached":
                out.append(event)
    return out


async def settle_and_count(
    system: System,
    load: LoadResult,
    mail: MailCatcher,
    webhook: WebhookReceiver,
    *,
    timeout: float,
    allowed_resends: int = 0,
) -> tuple[Accounting, float]:
    """Recount until every promise holds or the time runs out; returns the last count and
    how long it took. Breaches are due 5 s after the last VIP ticket."""
    started = time.monotonic()
    async with Tap(system.infra.bootstrap, system.topics.sla) as tap:
        while True:
            breaches = await read_breaches(tap)
            acc = await asyncio.to_thread(
                count_once, system, load, mail, webhook, breaches, allowed_resends
            )
            waited = time.monotonic() - started
            if not acc.problems():
                break
            if waited > timeout:
                print(f"[settle] still {acc.problems()} after {waited:.0f}s:")
                print(await asyncio.to_thread(system.diagnosis))
                break
            await asyncio.sleep(2.0)
        # Quiet a little longer: a late duplicate must have had its chance to show.
        await asyncio.sleep(3.0)
        breaches = await read_breaches(tap)
        acc = await asyncio.to_thread(
            count_once, system, load, mail, webhook, breaches, allowed_resends
        )
        acc.republished_breaches = republished(tap)
    return acc, waited
