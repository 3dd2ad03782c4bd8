"""What each service serves on /metrics is valid, lint-clean Prometheus exposition.

Every service runs in this process on the real broker and MongoDB; a few tickets
and one poison message go through so counters and histograms carry samples, then
`promtool check metrics` reads every service's /metrics output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.mail_gateway.app import create_app as mail_gateway_app
from services.mail_gateway.settings import MailGatewaySettings
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.sla_monitor.app import create_app as sla_app
from services.sla_monitor.settings import SlaSettings
from shared.infra.mailcatcher import MailCatcher
from shared.infra.processes import free_port
from shared.runtime import ServiceRuntime
from tests.support import eventually, produce, running, secret_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from shared.infra.modes import Infra
    from shared.settings import ServiceSettings

API_KEY = "hs_metrics_0123456789abcdefghijklmnopqrstuvwxyz"
REQUESTER_EMAIL = "li.wei@example.com"
ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = [ROOT / "deploy" / "prometheus" / "alerts.yml"]
DASHBOARD = ROOT / "deploy" / "grafana" / "helpstream.json"

APPS: dict[str, tuple[type[ServiceSettings], Callable[[Any, ServiceRuntime], FastAPI]]] = {
    "intake": (IntakeSettings, intake_app),
    "sla_monitor": (SlaSettings, sla_app),
    "feedback": (FeedbackSettings, feedback_app),
    "notifier": (NotifierSettings, notifier_app),
    "mail_gateway": (MailGatewaySettings, mail_gateway_app),
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing on CI: `make install` installs Debian's prometheus")
        pytest.skip("promtool is not on PATH (`make install` installs it)")
    return path


async def drive_traffic(infra: Infra, tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """Run every service, open tickets, send one poison message; /metrics of each."""
    uid = uuid.uuid4().hex[:12]
    mail = MailCatcher(port=free_port())
    mail.start()
    common: dict[str, Any] = {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongo_url": infra.mongo_url,
        "topic_prefix": f"t{uid}.",
        "mongo_db_prefix": f"t{uid}",
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "log_json": False,
        "retry_backoff_max_s": 0.5,
    }
    extra: dict[str, dict[str, Any]] = {
        "intake": {"bootstrap_api_key": API_KEY},
        "notifier": {"smtp_port": mail.port, "digest_window_s": 0},
        "mail_gateway": {"inbound_smtp_port": 0},
    }
    runtimes: dict[str, ServiceRuntime] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = {}
            for name, (settings_cls, create_app) in APPS.items():
                settings = settings_cls(
                    **common, **secret_settings(settings_cls), **extra.get(name, {})
                )
                runtime = ServiceRuntime(name, settings)
                runtimes[name] = runtime
                clients[name] = await stack.enter_async_context(
                    running(create_app(settings, runtime))
                )
            ticket_ids = []
            for channel in ("app", "email", "web"):
                response = await clients["intake"].post(
                    "/v1/tickets",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    json={
                        "requester": {"id": "u-42", "email": REQUESTER_EMAIL, "locale": "zh-CN"},
                        "channel": channel,
                        "subject": "提现未到账",
                        "description": "我的USDT提现已经3小时还没到账",
                        "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
                    },
                )
                assert response.status_code == 201, response.text
                ticket_ids.append(str(response.json()["id"]))
            await clients["intake"].get("/v1/tickets/no-such-ticket")  # an unauthenticated 401
            tickets_topic = runtimes["intake"].topics.tickets
            await produce(infra.kafka_bootstrap, tickets_topic, [(b"poison", b"\xff not json")])

            def sample(service: str, name: str) -> float:
                total = 0.0
                for family in runtimes[service].registry.collect():
                    total += sum(s.value for s in family.samples if s.name == name)
                return total

            async def traffic_arrived() -> bool:
                return (
                    sample("notifier", "helpstream_notifier_messages_sent_total") >= 3
                    and sample(
                        "sla_monitor", "helpstream_sla_monitor_consumer_messages_rejected_total"
                    )
                    >= 1
                    and sample("feedback", "helpstream_feedback_consumer_messages_processed_total")
                    >= 3
                )

            await eventually(traffic_arrived, timeout=45, interval=0.2)
            texts = {}
            for name, client in clients.items():
                response = await client.get("/metrics")
                assert response.status_code == 200
                texts[name] = response.text
            return texts, ticket_ids
    finally:
        mail.stop()


@pytest.fixture(scope="module")
def expositions(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], list[str]]:
    """(service → /metrics text, ids of the tickets opened), one run for the module."""
    return asyncio.run(drive_traffic(infra, tmp_path_factory.mktemp("metrics")))


SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def metric_names(text: str) -> set[str]:
    """Series names an exposition declares (a labelled family may not have samples yet)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ("",)))
    return names


NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')


def unknown_names(expr: str, exposed: set[str]) -> set[str]:
    """Names (or `__name__=~` regexes matching nothing) in `expr` that no service exposes."""
    unknown = {
        pattern
        for pattern in NAME_REGEX.findall(expr)
        if not any(re.fullmatch(pattern, name) for name in exposed)
    }
    bare = NAME_REGEX.sub("", expr)
    unknown |= set(re.findall(r"\b(helpstream_[a-z0-9_]+)\b", bare)) - exposed
    return unknown


def test_promtool_finds_no_problem_in_any_service_metrics(
    expositions: tuple[dict[str, str], list[str]],
) -> None:
    texts, _ = expositions
    problems = {}
    for name, text in texts.items():
        result = subprocess.run(
            [promtool(), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0 or (result.stdout + result.stderr).strip():
            problems[name] = (result.returncode, result.stdout + result.stderr)
    assert not problems, problems


def test_every_service_names_its_metrics_by_convention(
    expositions: tuple[dict[str, str], list[str]],
) -> None:
    texts, _ = expositions
    for name, text in texts.items():
        for family in text_string_to_metric_families(text):
            assert family.name.startswith("helpstream_"), (name, family.name)
            if family.type == "counter":
                assert all(s.name.endswith(("_total", "_created")) for s in family.samples), (
                    family.name
                )
            if family.type == "histogram":
                units = ("_seconds", "_messages", "_score", "_tickets", "_requests")
                assert family.name.endswith(units), f"{name}: histogram {family.name} has no unit"


def test_metric_labels_never_carry_ticket_ids_or_emails(
    expositions: tuple[dict[str, str], list[str]],
) -> None:
    texts, ticket_ids = expositions
    for name, text in texts.items():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for label, value in sample.labels.items():
                    assert "@" not in value, (name, sample.name, label, value)
                    assert value not in ticket_ids, (name, sample.name, label, value)


def test_traffic_fills_the_counters_and_lag_gauges_the_operations_files_watch(
    expositions: tuple[dict[str, str], list[str]],
) -> None:
    texts, _ = expositions
    intake = {s.name for f in text_string_to_metric_families(texts["intake"]) for s in f.samples}
    assert "helpstream_intake_tickets_created_total" in intake
    for name in ("sla_monitor", "feedback", "notifier"):
        assert "helpstream_kafka_consumer_lag_messages" in texts[name]
    assert "helpstream_sla_monitor_consumer_messages_rejected_total{" in texts["sla_monitor"]


def test_alerts_and_dashboard_use_only_metrics_the_services_expose(
    expositions: tuple[dict[str, str], list[str]],
) -> None:
    texts, _ = expositions
    exposed = {"up"}.union(*(metric_names(text) for text in texts.values()))
    exprs = [
        rule["expr"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    unknown = set().union(*(unknown_names(expr, exposed) for expr in exprs))
    assert not unknown, f"not exposed by any service: {sorted(unknown)}"
