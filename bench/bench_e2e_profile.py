"""Where each core's time goes at one end-to-end rate: CPU per process, database time per
collection and operation, per ticket.

bench_e2e says how fast the system is; this says what a ticket costs and who pays, so
that a change can be aimed at the process (or collection) that is the limit on 2 cores.
The system is started as bench_e2e starts it (four service processes, embedded Tansu and
SecantusDB, the SMTP sink in a child process); after one small warm-up phase, tickets
are offered open-loop over HTTP at HELPSTREAM_BENCH_PROFILE_RATE per second (default 30)
for HELPSTREAM_BENCH_PROFILE_SECONDS (default 60), as bench_e2e's `phase` sends them.
HELPSTREAM_BENCH_PROFILE_TOP_ROWS (default 15) sets how many database rows are printed.

Over a steady window (the sending time without its first 10 %):
- CPU per process: utime+stime from /proc/<pid>/stat at both ends, as % of one core,
  beside the machine's busy share from /proc/stat (what the listed processes do not
  explain is other processes and the kernel's own work);
- database time: the `top` admin command at both ends (per `db.collection` and
  operation: time in µs from command receipt to reply, and count; concurrent commands
  overlap, so this is not CPU time), as a share of all database time, µs per operation
  and operations per ticket created in the window;
- tickets created (201 answers) and emails accepted in the window; p50/p99 over the
  whole phase, as `phase` reports them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pymongo import AsyncMongoClient

from bench._common import infrastructure, mail_sink, table
from bench.bench_e2e import API_KEY, MAX_IN_FLIGHT, phase, start_services
from shared.infra.services import SERVICES

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bench._common import MailSink
    from shared.infra.modes import Infra
    from shared.infra.processes import ManagedProcess

WARM_UP_FRACTION = 0.1  # of the sending time, left out of the window
TOP_ROWS = int(os.environ.get("HELPSTREAM_BENCH_PROFILE_TOP_ROWS", "15"))
# `top`'s per-operation sections; `total`, `readLock` and `writeLock` count the same
# commands again, so they are left out of the sums
OPERATIONS = ("queries", "getmore", "insert", "update", "remove", "commands")
FIRST_SEQ = 1000


# --- pure arithmetic (unit-tested) --------------------------------------------------------


@dataclass(frozen=True)
class MachineTicks:
    """All CPUs together, in clock ticks since boot (the first line of /proc/stat)."""

    busy: int
    total: int


def machine_ticks(proc_stat: str) -> MachineTicks:
    """Idle and iowait are not busy; guest time is already inside user, so the total
    counts user..steal only."""
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            idle = values[3] + values[4]
            return MachineTicks(busy=sum(values) - idle, total=sum(values))
    raise ValueError("no aggregate cpu line in /proc/stat")


def busy_pct(before: MachineTicks, after: MachineTicks) -> float:
    """Share of all cores that was busy between two readings, 0–100."""
    total = after.total - before.total
    return 100.0 * (after.busy - before.busy) / total if total > 0 else float("nan")


def process_ticks(pid_stat: str) -> int:
    """utime+stime (all threads) from a /proc/<pid>/stat line; the command name may hold
    spaces and parentheses, so fields are counted after its last ")"."""
    after_name = pid_stat.rsplit(")", 1)[1].split()
    return int(after_name[11]) + int(after_name[12])  # fields 14 and 15 of proc(5)


@dataclass(frozen=True)
class DbRow:
    """One namespace and operation over the window."""

    namespace: str
    owner: str
    operation: str
    time_us: int
    count: int

    @property
    def us_per_op(self) -> float:
        return self.time_us / self.count if self.count else float("nan")


def owner_of(namespace: str, db_prefix: str) -> str:
    """The service whose database holds the namespace (`<prefix>_<service>`, see
    `shared.mongo.service_database`); another database is named as it is."""
    database = namespace.split(".", 1)[0]
    return database.removeprefix(f"{db_prefix}_") if db_prefix else database


def top_delta(before: Mapping[str, Any], after: Mapping[str, Any], db_prefix: str) -> list[DbRow]:
    """What happened between two `top` replies' `totals`, largest time first.

    A namespace absent before (created in the window) counts from zero, and so does one
    whose counters went down (dropped and created again: `top` restarts it from zero)."""
    rows = []
    for namespace, sections in after.items():
        if not isinstance(sections, dict):  # the "note" entry
            continue
        earlier = before.get(namespace)
        for operation in OPERATIONS:
            now = sections.get(operation, {"time": 0, "count": 0})
            then = earlier.get(operation) if isinstance(earlier, dict) else None
            if then is None or now["count"] < then["count"] or now["time"] < then["time"]:
                then = {"time": 0, "count": 0}
            time_us, count = now["time"] - then["time"], now["count"] - then["count"]
            if count or time_us:
                owner = owner_of(namespace, db_prefix)
                rows.append(DbRow(namespace, owner, operation, int(time_us), int(count)))
    return sorted(rows, key=lambda r: (-r.time_us, r.namespace, r.operation))


def db_table_rows(
    rows: Sequence[DbRow], tickets: int, limit: int = TOP_ROWS
) -> list[tuple[object, ...]]:
    """The heaviest rows: namespace, service, operation, ms, share of all database time
    (%), count, µs per operation, operations per ticket."""
    whole = sum(r.time_us for r in rows)
    return [
        (
            r.namespace.split(".", 1)[1] if "." in r.namespace else r.namespace,
            r.owner,
            r.operation,
            r.time_us / 1000,
            100.0 * r.time_us / whole if whole else float("nan"),
            r.count,
            r.us_per_op,
            r.count / tickets if tickets else float("nan"),
        )
        for r in sorted(rows, key=lambda r: -r.time_us)[:limit]
    ]


def db_us_by_owner(rows: Sequence[DbRow]) -> dict[str, int]:
    owners: dict[str, int] = defaultdict(int)
    for r in rows:
        owners[r.owner] += r.time_us
    return dict(owners)


# --- sampling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    at: float  # monotonic
    wall: float
    machine: MachineTicks
    processes: dict[str, int]  # name → ticks (absent: the process was gone)
    top: dict[str, Any]


def read_ticks(pid: int) -> int | None:
    try:
        return process_ticks(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def read_cpu(pids: Mapping[str, int]) -> tuple[MachineTicks, dict[str, int]]:
    """In the event loop on purpose: /proc is read from memory, and both ends of the
    window are then read at the instant they are meant to be."""
    machine = machine_ticks(Path("/proc/stat").read_text())
    ticks = {name: t for name, pid in pids.items() if (t := read_ticks(pid)) is not None}
    return machine, ticks


async def snapshot(pids: Mapping[str, int], mongo: AsyncMongoClient[dict[str, Any]]) -> Snapshot:
    at, wall = time.monotonic(), time.time()
    machine, ticks = read_cpu(pids)
    reply = await mongo.admin.command("top")
    return Snapshot(at, wall, machine, ticks, dict(reply["totals"]))


def process_pids(
    infra: Infra, services: Sequence[ManagedProcess], sink: MailSink
) -> dict[str, int]:
    """Every process that does the work; the broker and database only when started here
    (HELPSTREAM_INFRA=external has none to read)."""
    pids = {process.name: process.pid for process in services}
    if infra.mongo_pid is not None:
        pids["database"] = infra.mongo_pid
    if infra.kafka_pid is not None:
        pids["broker"] = infra.kafka_pid
    pids["bench"] = os.getpid()  # load generator, and the thread reading the sink
    pids["mail_sink"] = sink.pid
    return pids


# --- the run -------------------------------------------------------------------------------


async def measure(
    url: str,
    sink: MailSink,
    mongo_url: str,
    pids: Mapping[str, int],
    rate: int,
    seconds: float,
) -> tuple[dict[str, float], Snapshot, Snapshot, list[float]]:
    """Runs the phase and samples at both ends of the window while it sends."""
    created: list[float] = []  # monotonic time of each 201

    async def answered(response: httpx.Response) -> None:
        if response.status_code == 201:
            created.append(time.monotonic())

    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        async with httpx.AsyncClient(
            timeout=30, limits=limits, headers=headers, event_hooks={"response": [answered]}
        ) as http:
            await phase(http, url, sink, 5, 1.0, 0)  # warm-up: connections, caches, positions
            print(f"-- {rate} tickets/s for {seconds:.0f} s", flush=True)
            started = time.monotonic()
            sending = asyncio.create_task(phase(http, url, sink, rate, seconds, FIRST_SEQ))
            try:
                await asyncio.sleep(started + WARM_UP_FRACTION * seconds - time.monotonic())
                first = await snapshot(pids, mongo)
                await asyncio.sleep(started + seconds - time.monotonic())
                last = await snapshot(pids, mongo)
            except BaseException:
                sending.cancel()
                raise
            figures = await sending
    finally:
        await mongo.close()
    return figures, first, last, created


def report(
    figures: Mapping[str, float],
    first: Snapshot,
    last: Snapshot,
    created: Sequence[float],
    sink: MailSink,
    db_prefix: str,
) -> dict[str, float]:
    window = last.at - first.at
    tickets = sum(1 for t in created if first.at <= t <= last.at)
    emails = sum(1 for stamp, _ in sink.arrivals if first.wall <= stamp <= last.wall)
    tck = os.sysconf("SC_CLK_TCK")
    cores = os.cpu_count() or 1
    machine_busy = last.machine.busy - first.machine.busy

    out: dict[str, float] = {
        "profile_offered_per_s": float(figures["offered"]),
        "profile_achieved_per_s": round(figures["achieved"], 1),
        "profile_p50_ms": round(figures["p50"], 1),
        "profile_p99_ms": round(figures["p99"], 1),
        "profile_p99_is_lower_bound": figures["lower_bound"],
        "profile_delivered_fraction": round(figures["delivered"] / max(figures["created"], 1), 4),
        "profile_window_s": round(window, 1),
        "profile_window_tickets_created": float(tickets),
        "profile_window_emails_delivered": float(emails),
    }
    print(
        f"   window {window:.1f} s: {tickets} tickets created ({tickets / window:.1f}/s), "
        f"{emails} emails accepted; whole phase: {figures['delivered']:.0f}/"
        f"{figures['created']:.0f} delivered, {figures['failed']:.0f} failed, p50 "
        f"{figures['p50']:,.0f} ms, p99 {'≥' if figures['lower_bound'] else ''}"
        f"{figures['p99']:,.0f} ms",
        flush=True,
    )

    per_ticket = 1000 / tck / tickets if tickets else float("nan")  # ticks → CPU ms/ticket
    measured: list[tuple[str, float, float, float]] = []
    for name, before in first.processes.items():
        if name in last.processes:
            ticks = last.processes[name] - before
            share = 100.0 * ticks / machine_busy if machine_busy else float("nan")
            measured.append((name, 100.0 * ticks / tck / window, share, ticks * per_ticket))
            out[f"profile_cpu_pct_{name}"] = round(100.0 * ticks / tck / window, 1)
    measured.sort(key=lambda r: -r[1])
    listed = sum(last.processes[n] - first.processes[n] for n, *_ in measured)
    other = machine_busy - listed
    rows: list[tuple[object, ...]] = [
        *measured,
        (
            "(not listed: other processes, kernel)",
            100.0 * other / tck / window,
            100.0 * other / machine_busy if machine_busy else float("nan"),
            other * per_ticket,
        ),
    ]
    busy = busy_pct(first.machine, last.machine)
    rows.append((f"machine ({cores} cores)", busy * cores, 100.0, machine_busy * per_ticket))
    out["profile_cpu_pct_listed"] = round(100.0 * listed / tck / window, 1)
    out["profile_cpu_machine_busy_pct"] = round(busy, 1)
    out["profile_cpu_listed_pct_of_machine"] = round(100.0 * listed / tck / window / cores, 1)
    if tickets:
        out["profile_cpu_ms_per_ticket"] = round(listed * per_ticket, 2)
    print(f"\nCPU over the window ({cores} cores = {100 * cores} % of one core)")
    print(table(rows, ("process", "% of a core", "% of CPU used", "CPU ms/ticket")))

    db_rows = top_delta(first.top, last.top, db_prefix)
    whole_us = sum(r.time_us for r in db_rows)
    by_owner = db_us_by_owner(db_rows)
    print(
        f"\nDatabase time (`top`) over the window: {whole_us / 1000:,.0f} ms in all, "
        f"top {TOP_ROWS} of {len(db_rows)} collection/operation pairs"
    )
    header = (
        "collection",
        "service",
        "operation",
        "ms",
        "% of db time",
        "ops",
        "µs/op",
        "ops/ticket",
    )
    print(table(db_table_rows(db_rows, tickets), header))
    owners = sorted(set(by_owner) | set(SERVICES), key=lambda o: -by_owner.get(o, 0))
    print(
        table(
            [
                (
                    o,
                    by_owner.get(o, 0) / 1000,
                    100.0 * by_owner.get(o, 0) / whole_us if whole_us else float("nan"),
                    by_owner.get(o, 0) / 1000 / tickets if tickets else float("nan"),
                )
                for o in owners
            ],
            ("database of", "ms", "% of db time", "db ms/ticket"),
        )
    )
    if tickets:
        out["profile_db_ms_per_ticket"] = round(whole_us / 1000 / tickets, 3)
        for owner in owners:
            out[f"profile_db_ms_per_ticket_{owner}"] = round(
                by_owner.get(owner, 0) / 1000 / tickets, 3
            )
    return out


def run() -> dict[str, float]:
    rate = int(os.environ.get("HELPSTREAM_BENCH_PROFILE_RATE", "30"))
    seconds = float(os.environ.get("HELPSTREAM_BENCH_PROFILE_SECONDS", "60"))
    with (
        infrastructure() as infra,
        mail_sink() as sink,
        tempfile.TemporaryDirectory(prefix="helpstream-profile-") as logs,
    ):
        processes, url = start_services(infra, sink, Path(logs))
        try:
            pids = process_pids(infra, processes, sink)
            db_prefix = (processes[0].env or {}).get("HELPSTREAM_MONGO_DB_PREFIX", "")
            figures, first, last, created = asyncio.run(
                measure(url, sink, infra.mongo_url, pids, rate, seconds)
            )
            return report(figures, first, last, created, sink, db_prefix)
        finally:
            for process in processes:
                process.stop()
