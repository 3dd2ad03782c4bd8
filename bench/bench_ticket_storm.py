"""An incident storm: 20,000 `ticket.open` commands published at once, from the first
command to the last acknowledgement email accepted by SMTP, and the rate over time.

intake and notifier run as real processes (as `tests/e2e` starts them) on an embedded
broker and database; notifier runs only its `ticket_acknowledged` rule, so every mail
counted is an acknowledgement; the SMTP server is a MailCatcher in a child process
stamping each mail on arrival. The commands (one requester each, half zh-CN, all about
stuck TRC20 USDT withdrawals) are signed by a platform key and produced pipelined with
acks=all, as a withdrawal service would on a chain halt.

Baselines measured in the same run, on the same broker and SMTP server: a bare aiokafka
consume→produce loop over 20,000 records, and bare aiosmtplib sends (20 at a time, one
connection each). HELPSTREAM_BENCH_STORM_TICKETS overrides the 20,000.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import infrastructure, mail_sink, prefix, produce_all, raw_kafka_rate
from bench.bench_consumers import smtp_rate
from bench.bench_incident_update import open_ticket, signed, start_services
from shared.topics import Topics

if TYPE_CHECKING:
    from bench._common import MailSink
    from shared.infra.modes import Infra

TICKETS = int(os.environ.get("HELPSTREAM_BENCH_STORM_TICKETS", "20000"))
DRAIN_LIMIT_S = 3600.0
BUCKET_S = 30.0  # the rate over time, per this many seconds


def rate_over_time(stamps: list[float], start: float) -> list[float]:
    """Acknowledgements per second in each `BUCKET_S` from the first command."""
    if not stamps:
        return []
    buckets = [0] * (int((stamps[-1] - start) // BUCKET_S) + 1)
    for stamp in stamps:
        buckets[int((stamp - start) // BUCKET_S)] += 1
    return [round(n / BUCKET_S, 1) for n in buckets]


async def main(infra: Infra, sink: MailSink, logs: Path) -> dict[str, Any]:
    tag = prefix()
    topics = Topics(f"{tag}.")
    processes, _ = start_services(infra, sink, logs, tag, rules=("ticket_acknowledged",))
    try:
        messages = [open_ticket(n, tag) for n in range(TICKETS)]
        before = sink.count
        started = time.time()
        await produce_all(infra.kafka_bootstrap, topics.commands, messages, headers=signed)
        published_s = time.time() - started
        print(f"   {TICKETS} commands published in {published_s:.1f} s", flush=True)
        deadline = time.monotonic() + DRAIN_LIMIT_S
        last_report = time.monotonic()
        while sink.count - before < TICKETS and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                done = sink.count - before
                print(f"   {done} acknowledged after {time.time() - started:.0f} s", flush=True)
        await asyncio.sleep(3)  # anything sent twice arrives by now
        stamps = sorted(stamp for stamp, _ in sink.arrivals[before:])
        tickets = {ticket for _, ticket in sink.arrivals[before:]}
    finally:
        for process in processes:
            process.stop()
    if not stamps:
        raise RuntimeError("no acknowledgement arrived")
    acknowledged = len(tickets)
    drain_s = stamps[-1] - started
    over_time = rate_over_time(stamps, started)

    raw_records = [(f"k{n}".encode(), b"x" * 600) for n in range(TICKETS)]
    raw_kafka = await raw_kafka_rate(infra.kafka_bootstrap, raw_records)
    raw_smtp = await smtp_rate(sink.port, 2000)
    print(
        f"   acknowledged {acknowledged}/{TICKETS} in {drain_s:.1f} s "
        f"({acknowledged / drain_s:.0f}/s; first {stamps[0] - started:.1f} s, "
        f"half {stamps[len(stamps) // 2] - started:.1f} s); mails {len(stamps)}; "
        f"raw kafka {raw_kafka:.0f} rec/s, raw smtp {raw_smtp:.0f}/s",
        flush=True,
    )
    print(f"   per {BUCKET_S:.0f} s: {over_time}", flush=True)
    name = "storm_20k_drain_s" if TICKETS == 20000 else f"storm_{TICKETS}_drain_s"
    return {
        name: round(drain_s, 1),
        "storm_tickets": TICKETS,
        "storm_acknowledged": acknowledged,
        "storm_duplicates": len(stamps) - acknowledged,
        "storm_rate_per_s": round(acknowledged / drain_s, 1),
        "storm_first_s": round(stamps[0] - started, 2),
        "storm_half_s": round(stamps[len(stamps) // 2] - started, 1),
        "storm_publish_s": round(published_s, 1),
        f"storm_rate_per_{BUCKET_S:.0f}s": over_time,
        "storm_raw_kafka_per_s": round(raw_kafka, 1),
        "storm_raw_smtp_per_s": round(raw_smtp, 1),
        "storm_ratio_vs_raw_smtp": round(acknowledged / drain_s / raw_smtp, 3),
    }


def run() -> dict[str, Any]:
    """When, on which commit and under what load it ran: `python -m bench` records that."""
    with (
        infrastructure() as infra,
        mail_sink() as sink,
        tempfile.TemporaryDirectory(prefix="helpstream-storm-") as logs,
    ):
        return asyncio.run(main(infra, sink, Path(logs)))
