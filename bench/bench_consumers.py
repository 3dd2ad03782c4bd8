"""Per consumer service: events/s against its ceiling measured in the same run.

For each service: start it in-process (as the integration tests do), wait until its
consumers are assigned, produce N events to its input topic and time until its own
`messages_processed` counter (incremented after the durable write and before the
commit) reaches N. The ceiling is the lower of (a) a bare aiokafka consume→produce
loop over the same N messages on the same broker and (b) a bare bulk_write (batches
of 500, same indexes and write concern, best of two) of the state documents the service
wrote, without their outbox fields, to the same database.

Each service is measured HELPSTREAM_BENCH_REPEAT times (default 3), each run against
its own ceilings, and the run with the median ratio is reported (the lowest and highest
ratios too). HELPSTREAM_BENCH_EVENTS sets N (default 5000); HELPSTREAM_BENCH_SERVICES
picks services.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import aiosmtplib

from bench._common import (
    consumed,
    consumers_assigned,
    create_topics,
    infrastructure,
    mail_sink,
    prefix,
    produce_all,
    raw_kafka_rate,
    raw_write_rate,
    read_back,
    running,
    service_settings,
    table,
    wait_until,
)
from shared.command_signing import sign_headers
from shared.events import (
    Category,
    Channel,
    Priority,
    Requester,
    Status,
    TicketCreated,
    TicketStatusChanged,
    TicketSummary,
    make_event,
)
from shared.ids import new_id
from shared.runtime import ServiceRuntime
from shared.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from bench._common import MailSink
    from shared.events import Contract
    from shared.infra.modes import Infra

N_DEFAULT = 5000
# Runs per service: single runs of the same code moved by 2x on this machine (the
# database's ceiling most), so the figures are those of the run with the median ratio.
REPEAT_DEFAULT = 3
SERVICES = ("intake", "sla_monitor", "feedback", "notifier")
Messages = list[tuple[bytes, bytes]]
# intake installs it at start; the withdrawal service's commands are signed with it
BENCH_KEY = "hs_benchcommands_0123456789abcdefghijklmnopqrstuv"


@dataclass(frozen=True)
class Scenario:
    service: str
    consumer: str  # the consumer's name in the runtime
    input: Callable[[Topics], str]
    collection: str  # the state documents whose raw write is ceiling (b)
    upsert: bool  # the service writes them as upserts (else inserts)
    docs_per_event: int


SCENARIOS = {
    "intake": Scenario("intake", "commands", lambda t: t.commands, "tickets", False, 1),
    "sla_monitor": Scenario("sla_monitor", "tickets", lambda t: t.tickets, "ticket_sla", False, 1),
    "feedback": Scenario("feedback", "tickets", lambda t: t.tickets, "surveys", False, 1),
    "notifier": Scenario("notifier", "events", lambda t: t.tickets, "deliveries", True, 2),
}


# --- input events ------------------------------------------------------------------------


def _summary(status: Status, created_at: datetime, requester_id: str) -> TicketSummary:
    return TicketSummary(
        status=status,
        priority=Priority.normal,
        category=Category.withdrawal_delay,
        channel=Channel.app,
        group="payments",
        assignee="agent-7" if status is Status.solved else None,
        requester_id=requester_id,
        created_at=created_at,
    )


def open_commands(n: int) -> Messages:
    """`helpstream.ticket.open` commands, as the exchange's withdrawal service sends them."""
    now = datetime.now(UTC).isoformat()
    out = []
    for i in range(n):
        command = {
            "specversion": "1.0",
            "id": new_id(),
            "source": "/exchange/withdrawals",
            "type": "helpstream.ticket.open",
            "subject": f"W-{i}",
            "time": now,
            "datacontenttype": "application/json",
            "correlationid": f"bench-{i}",
            "data": {
                "requester": {"id": f"u-{i % 997}", "email": f"u{i}@example.com", "locale": "en"},
                "channel": "api",
                "subject": f"Withdrawal {i} pending",
                "description": "My USDT withdrawal has not arrived after 3 hours.",
                "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
            },
        }
        out.append((f"W-{i}".encode(), json.dumps(command).encode()))
    return out


def _ticket_events(n: int, data: Callable[[str, int, datetime], Contract]) -> Messages:
    """`n` intake events, one per new ticket: `data(ticket_id, i, now)` is the payload."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        ticket_id = new_id()
        event = make_event(
            data(ticket_id, i, now),
            source="/helpstream/intake",
            time=now,
            correlationid=f"bench-{i}",
        )
        out.append((ticket_id.encode(), event.to_bytes()))
    return out


def created_events(n: int) -> Messages:
    return _ticket_events(
        n,
        lambda ticket_id, i, now: TicketCreated(
            ticket_id=ticket_id,
            ticket=_summary(Status.new, now, f"u-{i % 997}"),
            requester=Requester(id=f"u-{i % 997}", email=f"u{i}@example.com"),
            subject=f"Withdrawal {i} pending",
        ),
    )


def solved_events(n: int) -> Messages:
    return _ticket_events(
        n,
        lambda ticket_id, i, now: TicketStatusChanged(
            ticket_id=ticket_id,
            ticket=_summary(Status.solved, now - timedelta(hours=3), f"u-{i % 997}"),
            old=Status.open,
            new=Status.solved,
        ),
    )


INPUTS: dict[str, Callable[[int], Messages]] = {
    "intake": open_commands,
    "sla_monitor": created_events,
    "feedback": solved_events,
    "notifier": created_events,
}


def build_app(
    service: str, infra: Infra, tag: str, sink: MailSink
) -> tuple[FastAPI, ServiceRuntime]:
    if service == "intake":
        from services.intake.app import create_app as intake_app
        from services.intake.settings import IntakeSettings

        cfg: Any = service_settings(IntakeSettings, infra, tag, bootstrap_api_key=BENCH_KEY)
        runtime = ServiceRuntime(service, cfg)
        return intake_app(cfg, runtime), runtime
    if service == "sla_monitor":
        from services.sla_monitor.app import create_app as sla_app
        from services.sla_monitor.settings import SlaSettings

        cfg = service_settings(SlaSettings, infra, tag)
        runtime = ServiceRuntime(service, cfg)
        return sla_app(cfg, runtime), runtime
    if service == "feedback":
        from services.feedback.app import create_app as feedback_app
        from services.feedback.settings import FeedbackSettings

        cfg = service_settings(
            FeedbackSettings,
            infra,
            tag,
            survey_secret="bench-survey-secret-0123456789abcdef",
            public_base_url="https://help.example.com/",
        )
        runtime = ServiceRuntime(service, cfg)
        return feedback_app(cfg, runtime), runtime
    from services.notifier.app import create_app as notifier_app
    from services.notifier.settings import NotifierSettings

    cfg = service_settings(NotifierSettings, infra, tag, smtp_port=sink.port, smtp_timeout_s=10.0)
    runtime = ServiceRuntime(service, cfg)
    return notifier_app(cfg, runtime), runtime


# --- one service ---------------------------------------------------------------------------


async def measure_service(
    scenario: Scenario, infra: Infra, sink: MailSink, messages: Messages
) -> dict[str, float]:
    n = len(messages)
    tag = prefix()
    topics = Topics(f"{tag}.")
    names = [topics.commands, topics.tickets, topics.sla, topics.feedback, topics.notifications]
    await create_topics(infra.kafka_bootstrap, [*names, *(Topics.dlq(t) for t in names)])
    app, runtime = build_app(scenario.service, infra, tag, sink)
    source = scenario.input(topics)
    out: dict[str, float] = {}
    async with running(app):
        await consumers_assigned(runtime)
        started = time.perf_counter()
        signed = (  # as a platform service sends commands: each signed with its API key
            (lambda value: sign_headers(BENCH_KEY, value, datetime.now(UTC)))
            if scenario.service == "intake"
            else None
        )
        feeding = asyncio.create_task(
            produce_all(infra.kafka_bootstrap, source, messages, headers=signed)
        )
        done = await wait_until(
            lambda: consumed(runtime, scenario.consumer, source) >= n, limit_s=300
        )
        elapsed = time.perf_counter() - started
        await feeding
        applied = consumed(runtime, scenario.consumer, source)
        out["service"] = applied / elapsed
        out["seconds"] = elapsed
        if not done:
            print(f"  {scenario.service}: only {applied:.0f}/{n} applied in {elapsed:.0f}s")
        relayed = f"helpstream_{scenario.service}_outbox_events_relayed_total"
        if scenario.service == "intake":
            # the ticket.created events must also leave through the outbox
            def total() -> float:
                value = runtime.registry.get_sample_value(relayed, {"topic": topics.tickets})
                return value or 0.0

            await wait_until(lambda: total() >= n, limit_s=120)
            out["relayed"] = total() / (time.perf_counter() - started)
    print(f"  {scenario.service}: {out['service']:,.0f} events/s ({out['seconds']:.1f}s)")
    docs, indexes = await read_back(
        infra.mongo_url, f"{tag}_{scenario.service}", scenario.collection, n * 2
    )
    out["write"] = max(  # the best of two: a ceiling is what the database can do
        [
            await raw_write_rate(
                infra.mongo_url,
                docs,
                upsert=scenario.upsert,
                indexes=indexes,
                events=len(docs) // scenario.docs_per_event,
            )
            for _ in range(2)
        ]
    )
    out["kafka"] = await raw_kafka_rate(infra.kafka_bootstrap, messages)
    out["ceiling"] = min(out["kafka"], out["write"])
    out["ratio"] = out["service"] / out["ceiling"]
    print(
        f"  raw kafka {out['kafka']:,.0f}/s, raw write {out['write']:,.0f} events/s "
        f"({len(docs)} docs), ratio {out['ratio']:.2f}",
        flush=True,
    )
    return out


async def smtp_rate(port: int, n: int, parallel: int = 20) -> float:
    """Context for notifier: bare aiosmtplib sends (one connection each, 20 at a time)."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        message = EmailMessage()
        message["From"] = "helpstream <support@helpstream.local>"
        message["To"] = f"u{i}@example.com"
        message["Subject"] = f"[#{i}] We have received your request"
        message["X-Helpstream-Ticket"] = f"raw-{i}"
        message.set_content("We have received your request and will reply soon.\n" * 5)
        message.add_alternative("<p>We have received your request.</p>" * 5, subtype="html")
        async with gate:
            await aiosmtplib.send(message, hostname="127.0.0.1", port=port, timeout=10)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def main(
    infra: Infra, sink: MailSink, n: int, services: list[str], repeat: int
) -> dict[str, float]:
    results: dict[str, float] = {}
    rows = []
    for service in services:
        print(f"-- {service} ({n} events, {repeat} runs)", flush=True)
        runs = sorted(
            [
                await measure_service(SCENARIOS[service], infra, sink, INPUTS[service](n))
                for _ in range(repeat)
            ],
            key=lambda run: run["ratio"],
        )
        figures = runs[len(runs) // 2]  # the run with the median ratio
        results[f"{service}_ratio_lowest"] = round(runs[0]["ratio"], 3)
        results[f"{service}_ratio_highest"] = round(runs[-1]["ratio"], 3)
        results[f"{service}_events_per_s"] = round(figures["service"], 1)
        results[f"{service}_raw_kafka_per_s"] = round(figures["kafka"], 1)
        results[f"{service}_raw_write_per_s"] = round(figures["write"], 1)
        results[f"{service}_ratio_vs_raw"] = round(figures["ratio"], 3)
        if "relayed" in figures:
            results["intake_relayed_events_per_s"] = round(figures["relayed"], 1)
        rows.append(
            (
                service,
                figures["service"],
                figures["kafka"],
                figures["write"],
                figures["ratio"],
                f"{runs[0]['ratio']:.2f}-{runs[-1]['ratio']:.2f}",
                figures["seconds"],
            )
        )
    if "notifier" in services:
        rate = await smtp_rate(sink.port, min(n, 2000))
        results["smtp_raw_sends_per_s"] = round(rate, 1)
        print(f"  raw SMTP sends: {rate:,.0f}/s", flush=True)
    header = ("service", "events/s", "raw kafka/s", "raw write/s", "ratio", "runs' range", "s")
    print(table(rows, header))
    results["consumers_events"] = float(n)
    return results


def run() -> dict[str, float]:
    n = int(os.environ.get("HELPSTREAM_BENCH_EVENTS", N_DEFAULT))
    repeat = max(1, int(os.environ.get("HELPSTREAM_BENCH_REPEAT", REPEAT_DEFAULT)))
    picked = os.environ.get("HELPSTREAM_BENCH_SERVICES")
    services = [s for s in SERVICES if not picked or s in picked.split(",")]
    with infrastructure() as infra, mail_sink() as sink:
        return asyncio.run(main(infra, sink, n, services, repeat))
