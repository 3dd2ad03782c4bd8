"""A real Prometheus scrapes every service and fires the shipped alerts.

The services run as processes; Prometheus (Debian's binary) scrapes them every second
and evaluates deploy/prometheus/alerts.yml every second. A few tickets and one poison
message later, its HTTP API shows the tickets counter and a firing dead-letter alert.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from shared.infra.processes import free_port
from shared.infra.prometheus import prometheus_binary, prometheus_process
from tests.e2e.conftest import API_KEY
from tests.support import eventually, produce

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.infra.modes import Infra

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def scrape_config(services: dict[str, str]) -> dict[str, Any]:
    """The shape of deploy/prometheus/prometheus.local.yml, on the test's ports, every 1 s."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "helpstream",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [url.removeprefix("http://")], "labels": {"service": name}}
                    for name, url in services.items()
                ],
            }
        ],
    }


@pytest.fixture
def prometheus(services: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Base URL of a Prometheus scraping `services`."""
    binary = prometheus_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is missing on CI: `make install` installs Debian's prometheus")
        pytest.skip("prometheus is not installed (`make install` installs it)")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(services)))
    port = free_port()
    process = prometheus_process(config, tmp_path / "tsdb", port, tmp_path, binary=binary)
    process.start(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


async def query(http: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    response = await http.get(f"{base}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def firing_alerts(http: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    response = await http.get(f"{base}/api/v1/alerts")
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return [a for a in alerts if a["state"] == "firing"]


async def test_prometheus_scrapes_the_tickets_and_fires_the_dead_letter_alert(
    services: dict[str, str], prometheus: str, infra: Infra, uid: str
) -> None:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:

        async def all_targets_up() -> bool:
            up = await query(http, prometheus, 'up{job="helpstream"} == 1')
            return {r["metric"]["service"] for r in up} == set(services)

        await eventually(all_targets_up, timeout=20, interval=0.5)

        for channel in ("app", "email", "web"):
            response = await http.post(
                f"{services['intake']}/v1/tickets",
                json={
                    "requester": {"id": "u-7", "email": "amir@example.com", "locale": "en"},
                    "channel": channel,
                    "subject": "Deposit not credited",
                    "description": "My BTC deposit has 6 confirmations but is not credited.",
                    "crypto": {"asset": "BTC", "network": "BTC", "amount": "0.5"},
                },
            )
            assert response.status_code == 201, response.text
        await produce(infra.kafka_bootstrap, f"t{uid}.helpstream.tickets", [(b"x", b"\xffoops")])

        async def tickets_counted() -> bool:
            rows = await query(http, prometheus, "sum(helpstream_intake_tickets_created_total)")
            return bool(rows) and float(rows[0]["value"][1]) == 3

        await eventually(tickets_counted, timeout=30, interval=0.5)
        by_channel = await query(
            http, prometheus, "sum by (channel) (helpstream_intake_tickets_created_total)"
        )
        assert {r["metric"]["channel"] for r in by_channel} == {"app", "email", "web"}

        # Every consumer of the tickets topic dead-letters the poison message.
        tickets_consumers = {"sla_monitor", "feedback", "notifier", "mail_gateway"}
        dead_letters: list[dict[str, Any]] = []

        async def dead_letter_alert_fires_for_every_consumer() -> bool:
            dead_letters[:] = [
                a
                for a in await firing_alerts(http, prometheus)
                if a["labels"]["alertname"] == "HelpstreamDeadLetters"
            ]
            return {a["labels"]["service"] for a in dead_letters} == tickets_consumers

        await eventually(dead_letter_alert_fires_for_every_consumer, timeout=30, interval=0.5)
        assert {a["labels"]["reason"] for a in dead_letters} == {"invalid_json"}
        assert all(a["labels"]["severity"] == "warning" for a in dead_letters)
        assert dead_letters[0]["annotations"]["summary"]

        lag = await query(http, prometheus, "helpstream_kafka_consumer_lag_messages")
        assert {r["metric"]["service"] for r in lag} >= {"sla_monitor", "feedback", "notifier"}
        firing = {a["labels"]["alertname"] for a in await firing_alerts(http, prometheus)}
        assert "HelpstreamServiceDown" not in firing
    assert time.monotonic() - started < 90
