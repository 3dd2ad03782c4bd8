"""One incident update told to 20,000 linked requesters: from the update command to the
last requester's email accepted by SMTP.

intake and notifier run as real processes (as `tests/e2e` starts them) on an embedded
broker and database; the SMTP server is a MailCatcher in a child process stamping each
mail on arrival. An incident is declared, then 20,000 tickets (one requester each, half
zh-CN) are opened by signed commands, each linked as it opens, before the clock starts;
notifier runs only
the `incident_update` rule so the seeding's acknowledgements are not in the way. Timed:
the signed `helpstream.incident.update` command → intake's fan-out (one
`ticket.incident_update` per ticket through its outbox) → notifier → SMTP.

Baselines measured in the same run on the same broker and SMTP server: a bare aiokafka
consume→produce loop over 20,000 records (what moving the fan-out through Kafka once
costs at least) and bare aiosmtplib sends (20 at a time, one connection each).
HELPSTREAM_BENCH_INCIDENT_REQUESTERS overrides the 20,000.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer

from bench._common import (
    infrastructure,
    mail_sink,
    prefix,
    produce_all,
    raw_kafka_rate,
    wait_until,
)
from bench.bench_consumers import smtp_rate
from services.intake.incident_service import incident_id_for
from services.notifier.config import DEFAULT_RULES_PATH
from shared.command_signing import sign_headers
from shared.commands import command_envelope
from shared.ids import new_id
from shared.infra import local_secrets
from shared.infra.processes import free_port
from shared.infra.services import service_process
from shared.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Collection

    from bench._common import MailSink
    from shared.infra.modes import Infra
    from shared.infra.processes import ManagedProcess

API_KEY = "hs_bench_0123456789abcdefghijklmnopqrstuvwxyz"
REQUESTERS = int(os.environ.get("HELPSTREAM_BENCH_INCIDENT_REQUESTERS", "20000"))
SEED_LIMIT_S = 1800.0
TELL_LIMIT_S = 1800.0


def command(ctype: str, subject: str, data: dict[str, Any], command_id: str | None = None) -> bytes:
    return command_envelope(
        ctype, subject, data, source="/exchange/withdrawals", command_id=command_id
    )


def open_ticket(n: int, tag: str) -> tuple[bytes, bytes]:
    zh = n % 2 == 0
    body = {
        "requester": {
            "id": f"r{n}",
            "email": f"r{n}-{tag}@example.com",
            "locale": "zh-CN" if zh else "en",
        },
        "channel": "app",
        "category": "withdrawal_delay",
        "subject": "USDT 提现卡住" if zh else "USDT withdrawal stuck",
        "description": "TRC20 USDT 提现还没到账" if zh else "My TRC20 USDT withdrawal is pending",
        "crypto": {"asset": "USDT", "network": "TRC20", "amount": "100"},
    }
    return f"W-{n}".encode(), command("helpstream.ticket.open", f"W-{tag}-{n}", body)


def signed(value: bytes) -> list[tuple[str, bytes]]:
    return sign_headers(API_KEY, value, datetime.now(UTC))


def only_rules(folder: Path, names: Collection[str]) -> Path:
    """The shipped notifier rules with only `names` left."""
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    raw["rules"] = [r for r in raw["rules"] if r["name"] in names]
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def start_services(
    infra: Infra,
    sink: MailSink,
    logs: Path,
    tag: str,
    rules: Collection[str] = ("incident_update",),
) -> tuple[list[ManagedProcess], dict[str, str]]:
    """intake and notifier as processes, notifier with only the notifier rules named."""
    env = {
        "HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HELPSTREAM_MONGO_URL": infra.mongo_url,
        "HELPSTREAM_TOPIC_PREFIX": f"{tag}.",
        "HELPSTREAM_MONGO_DB_PREFIX": tag,
        "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "HELPSTREAM_SMTP_PORT": str(sink.port),
        "HELPSTREAM_LOG_LEVEL": "WARNING",
        "HELPSTREAM_RULES_FILE": str(only_rules(logs, rules)),
    }
    secrets = {**local_secrets.generate(), "bootstrap_api_key": API_KEY}
    started: list[ManagedProcess] = []
    urls: dict[str, str] = {}
    try:
        for name in ("intake", "notifier"):
            port = free_port()
            process = service_process(name, port, env, logs, secrets=secrets)
            process.start(timeout=90)
            started.append(process)
            urls[name] = f"http://127.0.0.1:{port}"
    except Exception:
        for process in started:
            process.stop()
        raise
    return started, urls


class Counts:
    """Ticket events by type, read from the tickets topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.by_type: dict[str, int] = {}
        self._closed = False
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"bench-{new_id()}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._consumer.stop()

    async def until(self, kind: str, count: int, limit_s: float) -> bool:
        deadline = time.monotonic() + limit_s
        while self.by_type.get(kind, 0) < count:
            if time.monotonic() > deadline:
                return False
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for part in batches.values():
                for record in part:
                    found = json.loads(record.value)["type"].removeprefix("helpstream.")
                    self.by_type[found] = self.by_type.get(found, 0) + 1
        return True


async def notifier_caught_up(url: str, limit_s: float) -> bool:
    """notifier's consumers have no lag left (its ticket facts are all stored)."""
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            text = (await http.get(f"{url}/metrics")).text
            lags = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("helpstream_kafka_consumer_lag_messages{")
            ]
            if lags and sum(lags) == 0:
                return True
            await asyncio.sleep(1.0)
    return False


async def main(infra: Infra, sink: MailSink, logs: Path) -> dict[str, Any]:
    tag = prefix()
    topics = Topics(f"{tag}.")
    processes, urls = start_services(infra, sink, logs, tag)
    counts = Counts(infra.kafka_bootstrap, topics.tickets)
    await counts.start()
    try:
        seeding = time.perf_counter()
        # The incident is declared first, as on a storm day: each ticket is linked in the
        # write that opens it (a linking pass over 20,000 open tickets is the e2e test's
        # business, and alone outlasted the seeding limit on a loaded machine).
        declare_id = new_id()
        incident = incident_id_for(declare_id)
        declaration = {
            "title": {"en": "TRC20 USDT withdrawals delayed", "zh-CN": "TRC20 USDT 提现延迟"},
            "scope": {"category": "withdrawal_delay", "asset": "USDT", "network": "TRC20"},
            "status_text": {"en": "We are on it.", "zh-CN": "我们正在处理。"},
        }
        declare = command("helpstream.incident.declare", "ops", declaration, declare_id)
        await produce_all(infra.kafka_bootstrap, topics.commands, [(b"ops", declare)], signed)
        if not await counts.until("incident.declared", 1, 60):
            raise RuntimeError(f"incident not declared: {counts.by_type}")
        messages = [open_ticket(n, tag) for n in range(REQUESTERS)]
        await produce_all(infra.kafka_bootstrap, topics.commands, messages, headers=signed)
        if not await counts.until("ticket.created", REQUESTERS, SEED_LIMIT_S):
            raise RuntimeError(f"tickets not all created: {counts.by_type}")
        if not await counts.until("ticket.linked_to_incident", REQUESTERS, SEED_LIMIT_S):
            raise RuntimeError(f"tickets not all linked: {counts.by_type}")
        if not await notifier_caught_up(urls["notifier"], SEED_LIMIT_S):
            raise RuntimeError("notifier did not catch up with the seeded tickets")
        seeded_s = time.perf_counter() - seeding
        print(f"   seeded {REQUESTERS} linked tickets in {seeded_s:.0f} s", flush=True)
        await counts.close()  # not read while timing: its group would expire and log

        before = sink.count
        text = {"en": "Withdrawals resume at 14:00 UTC.", "zh-CN": "提现将于 UTC 14:00 恢复。"}
        update = command("helpstream.incident.update", incident, {"text": text})
        posted = time.time()
        await produce_all(infra.kafka_bootstrap, topics.commands, [(b"ops", update)], signed)
        await wait_until(lambda: sink.count - before >= REQUESTERS, TELL_LIMIT_S, 0.2)
        arrivals = sorted(stamp for stamp, _ in sink.arrivals[before:])
        told = len(arrivals)
        if not arrivals:
            raise RuntimeError("no requester was told")
        first_s, last_s = arrivals[0] - posted, arrivals[-1] - posted
        half_s = arrivals[told // 2] - posted
        await asyncio.sleep(3)
        extra = sink.count - before - told
    finally:
        await counts.close()
        for process in processes:
            process.stop()

    raw_records = [(f"k{n}".encode(), b"x" * 600) for n in range(REQUESTERS)]
    raw_kafka = await raw_kafka_rate(infra.kafka_bootstrap, raw_records)
    raw_smtp = await smtp_rate(sink.port, 2000)
    print(
        f"   told {told}/{REQUESTERS}: first {first_s:.1f} s, half {half_s:.1f} s, "
        f"last {last_s:.1f} s ({told / last_s:.0f}/s); duplicates {extra}; "
        f"raw kafka {raw_kafka:.0f} rec/s ({REQUESTERS / raw_kafka:.1f} s), "
        f"raw smtp {raw_smtp:.0f}/s ({REQUESTERS / raw_smtp:.1f} s)",
        flush=True,
    )
    return {
        "incident_update_20k_s" if REQUESTERS == 20000 else f"incident_update_{REQUESTERS}_s": (
            round(last_s, 1)
        ),
        "incident_update_requesters": REQUESTERS,
        "incident_update_told": told,
        "incident_update_duplicates": extra,
        "incident_update_rate_per_s": round(told / last_s, 1),
        "incident_update_first_s": round(first_s, 2),
        "incident_update_half_s": round(half_s, 1),
        "incident_update_seed_s": round(seeded_s, 1),
        "incident_update_raw_kafka_per_s": round(raw_kafka, 1),
        "incident_update_raw_kafka_s": round(REQUESTERS / raw_kafka, 1),
        "incident_update_raw_smtp_per_s": round(raw_smtp, 1),
        "incident_update_raw_smtp_s": round(REQUESTERS / raw_smtp, 1),
    }


def run() -> dict[str, Any]:
    """When, on which commit and under what load it ran: `python -m bench` records that."""
    with (
        infrastructure() as infra,
        mail_sink() as sink,
        tempfile.TemporaryDirectory(prefix="helpstream-incident-") as logs,
    ):
        return asyncio.run(main(infra, sink, Path(logs)))
