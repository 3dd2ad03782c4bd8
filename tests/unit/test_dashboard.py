"""deploy/grafana/helpstream.json is a loadable Grafana dashboard that plots real metrics.

The JSON is checked against a schema of the dashboard fields Grafana needs (pydantic
models below), every PromQL expression may name only metrics our services define, and,
where promtool is installed, every expression parses (as a recording rule).
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.feedback.metrics import feedback_metrics
from services.intake.metrics import intake_metrics
from services.mail_gateway.metrics import gateway_metrics
from services.notifier.metrics import notifier_metrics
from services.sla_monitor.metrics import sla_metrics
from shared.infra.services import EVERY_SERVICE
from shared.metrics import consumer_metrics, http_metrics, outbox_metrics
from tests.unit.test_deploy_files import bind_mounts, compose_service, promtool

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "helpstream.json"
PROVISIONING = GRAFANA / "provisioning"

# Grafana's own variables, replaced by a concrete value before promtool parses an expr.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')


class GridPos(BaseModel):
    model_config = ConfigDict(extra="forbid")

    h: int = Field(ge=1)
    w: int = Field(ge=1, le=24)
    x: int = Field(ge=0, le=23)
    y: int = Field(ge=0)

    @model_validator(mode="after")
    def fits_the_grid(self) -> GridPos:
        assert self.x + self.w <= 24, "panel runs past the 24-column grid"
        return self


class DatasourceRef(BaseModel):
    type: Literal["prometheus"]
    uid: Literal["${datasource}"]


class Target(BaseModel):
    refId: str = Field(pattern=r"^[A-Z]$")
    expr: str = Field(min_length=1)
    legendFormat: str
    datasource: DatasourceRef


class Panel(BaseModel):
    id: int
    type: Literal["timeseries", "stat", "row"]
    title: str = Field(min_length=1)
    gridPos: GridPos
    datasource: DatasourceRef | None = None
    targets: list[Target] = []

    @model_validator(mode="after")
    def queries_unless_a_row(self) -> Panel:
        if self.type != "row":
            assert self.targets, f"{self.title}: no query"
            assert self.datasource is not None, f"{self.title}: no datasource"
            ref_ids = [t.refId for t in self.targets]
            assert len(ref_ids) == len(set(ref_ids)), f"{self.title}: refIds repeat"
        return self


class Variable(BaseModel):
    name: str
    type: str
    query: str | None = None


class Templating(BaseModel):
    list: list[Variable]


class TimeRange(BaseModel):
    from_: str = Field(alias="from")
    to: str


class Dashboard(BaseModel):
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    title: str = Field(min_length=1)
    schemaVersion: int = Field(ge=36)
    version: int
    tags: list[str]
    time: TimeRange
    refresh: str
    templating: Templating
    panels: list[Panel] = Field(min_length=1)


@cache
def raw_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard() -> Dashboard:
    return Dashboard.model_validate(raw_dashboard())


def exprs() -> list[str]:
    return [target.expr for panel in dashboard().panels for target in panel.targets]


@cache
def defined_metric_names() -> frozenset[str]:
    """Every series name our services can expose (from the metric modules), plus `up`."""
    own = {
        "intake": intake_metrics,
        "sla_monitor": sla_metrics,
        "feedback": feedback_metrics,
        "notifier": notifier_metrics,
        "mail_gateway": gateway_metrics,
    }
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = {"up"}
    for service in EVERY_SERVICE:
        registry = CollectorRegistry()  # one per service, as each process has
        consumer_metrics(registry, service)
        outbox_metrics(registry, service)
        http_metrics(registry, service)
        own[service](registry)
        for family in registry.collect():
            names.update(family.name + suffix for suffix in suffixes[family.type])
    return frozenset(names)


def unknown_names(expr: str) -> set[str]:
    names = defined_metric_names()
    unknown = {
        pattern
        for pattern in NAME_REGEX.findall(expr)
        if not any(re.fullmatch(pattern, name) for name in names)
    }
    bare = NAME_REGEX.sub("", expr)
    return unknown | (set(re.findall(r"\b(helpstream_[a-z0-9_]+)\b", bare)) - names)


def test_dashboard_matches_the_schema_grafana_loads() -> None:
    try:
        dashboard()
    except ValidationError as exc:
        pytest.fail(f"helpstream.json does not validate:\n{exc}")


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard().panels
    assert len({p.id for p in panels}) == len(panels)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel.gridPos
        for cell in (
            (x, y) for x in range(pos.x, pos.x + pos.w) for y in range(pos.y, pos.y + pos.h)
        ):
            assert cell not in taken, f"{panel.title} overlaps {taken[cell]}"
            taken[cell] = panel.title


def test_panels_query_the_datasource_chosen_in_the_variable() -> None:
    variables = {v.name: v for v in dashboard().templating.list}
    assert variables["datasource"].type == "datasource"
    assert variables["datasource"].query == "prometheus"
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    default = raw_dashboard()["templating"]["list"][0]["current"]["value"]
    assert default in {source["uid"] for source in provisioned["datasources"]}


def test_every_query_names_only_metrics_the_services_define() -> None:
    unknown = {expr: unknown_names(expr) for expr in exprs() if unknown_names(expr)}
    assert not unknown


@pytest.mark.parametrize(
    "metric",
    [
        "helpstream_intake_tickets_created_total",
        "helpstream_sla_monitor_at_risk_clocks",
        "helpstream_sla_monitor_breaches_total",
        "helpstream_sla_monitor_fire_lag_seconds_bucket",
        "helpstream_feedback_csat_ratio",
        "helpstream_notifier_messages_sent_total",
        "helpstream_notifier_messages_failed_total",
        "helpstream_kafka_consumer_lag_messages",
        "_consumer_messages_rejected_total",
        "_outbox_pending_documents",
        "_http_requests_total",
        "_http_request_duration_seconds_bucket",
        "helpstream_sla_monitor_fulfilled_total",
        "helpstream_sla_monitor_time_to_first_reply_seconds_bucket",
        "helpstream_intake_open_tickets",
        "helpstream_feedback_csat_channel_ratio",
        "helpstream_feedback_csat_category_ratio",
        "helpstream_mail_gateway_mails_total",
        "helpstream_mail_gateway_smtp_replies_total",
        "helpstream_mail_gateway_handling_seconds_bucket",
    ],
)
def test_dashboard_shows(metric: str) -> None:
    assert any(metric in expr for expr in exprs())


def test_service_level_panels_split_by_what_their_titles_promise() -> None:
    titled = {p.title: p for p in dashboard().panels}
    promised = {
        "SLA compliance % by metric and priority": "by (metric, priority)",
        "Open tickets by status and group": "by (status, group)",
        "Time to first reply by priority": "by (priority, le)",
        "CSAT by channel": "by (channel)",
        "CSAT by category": "by (category)",
    }
    for title, grouping in promised.items():
        assert all(grouping in t.expr for t in titled[title].targets), title


def test_sla_compliance_is_met_over_met_or_breached() -> None:
    (target,) = next(p for p in dashboard().panels if p.title.startswith("SLA compliance")).targets
    assert "fulfilled_total" in target.expr
    assert "breaches_total" in target.expr
    assert target.expr.startswith("100 * ")


def test_by_channel_panels_split_by_channel() -> None:
    titled = {p.title: p for p in dashboard().panels}
    for title in ("Tickets created by channel", "Notifications sent by channel"):
        assert all("by (channel)" in t.expr for t in titled[title].targets), title


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    binary = promtool()
    rules = []
    for index, expr in enumerate(exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [binary, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_the_dashboard_where_grafana_provisioning_reads_it() -> None:
    mounts = {target: source for source, target in bind_mounts(compose_service("grafana"))}
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "helpstream.yml").read_text())
    loaded = []
    for provider in providers["providers"]:
        assert provider["type"] == "file"
        source = mounts[provider["options"]["path"]]
        loaded.extend((ROOT / source).resolve().glob("*.json"))
    assert DASHBOARD in loaded
