"""HTTP opens with group commit off, then on: requests/s and latency, same run.

intake runs as a process (as `tests/e2e` starts it) on an embedded broker and database,
once with `HELPSTREAM_HTTP_GROUP_COMMIT_MS=0` (every open writes its number, its ticket
and its audit entry alone) and once with 2 ms (opens of the same moment share those three
writes), each on a database of its own. Each time, after 64 untimed opens, 2,000
`POST /v1/tickets` are sent by 32 concurrent clients (one keep-alive connection each); timed
from the first request to the last answer, with each request's latency and the CPU time
intake, the database and the sending clients used meanwhile.
HELPSTREAM_BENCH_HTTP_OPENS and HELPSTREAM_BENCH_HTTP_CLIENTS override 2,000 and 32.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench._common import infrastructure, percentile, prefix
from shared.infra import local_secrets
from shared.infra.processes import free_port
from shared.infra.services import service_process

if TYPE_CHECKING:
    from shared.infra.modes import Infra

API_KEY = "hs_bench_0123456789abcdefghijklmnopqrstuvwxyz"
OPENS = int(os.environ.get("HELPSTREAM_BENCH_HTTP_OPENS", "2000"))
CLIENTS = int(os.environ.get("HELPSTREAM_BENCH_HTTP_CLIENTS", "32"))
WARM_UP = 64
WINDOW_MS = "2"


def ticket(n: int) -> dict[str, Any]:
    zh = n % 2 == 0
    return {
        "requester": {
            "id": f"r{n}",
            "email": f"r{n}@example.com",
            "locale": "zh-CN" if zh else "en",
        },
        "channel": "app",
        "subject": "USDT 提现卡住" if zh else "USDT withdrawal stuck",
        "description": "TRC20 USDT 提现还没到账" if zh else "My TRC20 USDT withdrawal is pending",
        "crypto": {"asset": "USDT", "network": "TRC20", "amount": "100"},
    }


async def send(url: str, count: int, clients: int, first: int) -> tuple[float, list[float], int]:
    """`count` opens from `clients` concurrent clients: (seconds, latencies, failures)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    latencies: list[float] = []
    failures = 0
    queue = iter(range(first, first + count))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client() -> None:
            nonlocal failures
            for n in queue:
                started = time.perf_counter()
                answer = await http.post("/v1/tickets", json=ticket(n), headers=headers)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 201:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, failures


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_sizes(metrics_text: str, write: str) -> float:
    """Mean requests per group of `write`, from intake's /metrics."""
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"helpstream_intake_group_commit_requests_{part}{{") and (
                f'write="{write}"' in line
            ):
                values[part] = float(line.rsplit(" ", 1)[1])
    return values["sum"] / values["count"] if values.get("count") else 0.0


async def measure(infra: Infra, logs: Path, window_ms: str) -> dict[str, float]:
    tag = prefix()
    env = {
        "HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HELPSTREAM_MONGO_URL": infra.mongo_url,
        "HELPSTREAM_TOPIC_PREFIX": f"{tag}.",
        "HELPSTREAM_MONGO_DB_PREFIX": tag,
        "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "HELPSTREAM_LOG_LEVEL": "WARNING",
        "HELPSTREAM_RATE_LIMIT_WRITES_PER_KEY": "1000000/minute",
        "HELPSTREAM_HTTP_GROUP_COMMIT_MS": window_ms,
    }
    secrets = {**local_secrets.generate(), "bootstrap_api_key": API_KEY}
    port = free_port()
    (logs / f"gc{window_ms}").mkdir(parents=True, exist_ok=True)
    process = service_process("intake", port, env, logs / f"gc{window_ms}", secrets=secrets)
    process.start(timeout=90)
    url = f"http://127.0.0.1:{port}"
    try:
        _, _, warm_failures = await send(url, WARM_UP, CLIENTS, 10_000_000)
        if warm_failures:
            raise RuntimeError(f"{warm_failures} warm-up opens failed (see {logs})")
        pids = {"intake": process.pid, "database": infra.mongo_pid}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        client_before = time.process_time()
        elapsed, latencies, failures = await send(url, OPENS, CLIENTS, 0)
        client_cpu = time.process_time() - client_before
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            metrics_text = (await http.get("/metrics")).text
    finally:
        process.stop()
    figures = {
        "rps": round(OPENS / elapsed, 1),
        "seconds": round(elapsed, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "failures": failures,
        # CPU per open: where the time goes (2 cores shared by all three and the machine)
        "intake_cpu_ms_per_open": round(cpu["intake"] / OPENS * 1000, 2),
        "database_cpu_ms_per_open": round(cpu["database"] / OPENS * 1000, 2),
        "client_cpu_ms_per_open": round(client_cpu / OPENS * 1000, 2),
        "tickets_per_group": round(group_sizes(metrics_text, "tickets"), 2),
        "audit_per_group": round(group_sizes(metrics_text, "audit"), 2),
    }
    print(f"   group commit {window_ms} ms: {figures}", flush=True)
    return figures


async def main(infra: Infra, logs: Path) -> dict[str, Any]:
    off = await measure(infra, logs, "0")
    on = await measure(infra, logs, WINDOW_MS)
    values: dict[str, Any] = {
        f"http_group_commit_{mode}_{name}": value
        for mode, figures in (("off", off), ("on", on))
        for name, value in figures.items()
        if not (mode == "off" and name.endswith("_per_group"))
    }
    values["http_group_commit_ratio"] = round(on["rps"] / off["rps"], 2)
    values["http_group_commit_opens"] = OPENS
    values["http_group_commit_clients"] = CLIENTS
    values["http_group_commit_window_ms"] = float(WINDOW_MS)
    print(f"   on/off: {values['http_group_commit_ratio']}x", flush=True)
    return values


def run() -> dict[str, Any]:
    """When, on which commit and under what load it ran: `python -m bench` records that."""
    with (
        infrastructure() as infra,
        tempfile.TemporaryDirectory(prefix="helpstream-group-commit-") as logs,
    ):
        return asyncio.run(main(infra, Path(logs)))
