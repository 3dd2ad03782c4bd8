"""The alert rules are valid, complete, and behave as their promtool unit tests say.

`promtool check rules` and `promtool test rules` (deploy/prometheus/tests/alerts_test.yml,
input series for every alert) run here; without promtool they skip locally and fail
on CI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_deploy_files import promtool

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"

# The alerts SREs asked for (the operations issue).
REQUIRED_ALERTS = {
    "HelpstreamServiceDown",
    "HelpstreamSlaBreachRateHigh",
    "HelpstreamSlaAtRiskBacklog",
    "HelpstreamConsumerLagGrowing",
    "HelpstreamDeadLetters",
    "HelpstreamNotificationFailureRatio",
    "HelpstreamOutboxBacklog",
}
SEVERITIES = {"page", "warning"}


def alerting_rules() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {
        rule["alert"]: rule
        for group in loaded["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def alert_test_cases() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    return [case for test in loaded["tests"] for case in test.get("alert_rule_test", [])]


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerting_rules())} rules found" in result.stdout


def test_every_alert_behaves_as_its_promtool_unit_tests_expect() -> None:
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_sres_asked_for_exist() -> None:
    missing = REQUIRED_ALERTS - set(alerting_rules())
    assert not missing


def test_every_alert_has_a_firing_unit_test() -> None:
    firing = {case["alertname"] for case in alert_test_cases() if case.get("exp_alerts")}
    untested = set(alerting_rules()) - firing
    assert not untested, f"no promtool test sees these fire: {sorted(untested)}"


def test_every_alert_has_a_quiet_unit_test() -> None:
    quiet = {case["alertname"] for case in alert_test_cases() if not case.get("exp_alerts")}
    untested = set(alerting_rules()) - quiet
    assert not untested, f"no promtool test checks these stay quiet: {sorted(untested)}"


def test_every_unit_test_names_an_existing_alert() -> None:
    unknown = {case["alertname"] for case in alert_test_cases()} - set(alerting_rules())
    assert not unknown


def test_unit_tests_load_the_shipped_rule_file() -> None:
    loaded = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    assert [(ALERT_TESTS.parent / path).resolve() for path in loaded["rule_files"]] == [ALERTS]


@pytest.mark.parametrize("name", sorted(alerting_rules()))
def test_alert_tells_the_on_call_what_happened_and_what_to_do(name: str) -> None:
    rule = alerting_rules()[name]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook"):
        assert annotations.get(key, "").strip(), f"{name}: no {key}"


def test_a_dead_letter_alerts_at_once() -> None:
    rule = alerting_rules()["HelpstreamDeadLetters"]
    assert rule["for"] == "0m"
    assert "consumer_messages_rejected_total" in rule["expr"]
    assert "helpstream_notifier_dead_lettered_total" in rule["expr"]


def test_service_down_waits_a_minute_for_the_helpstream_job() -> None:
    rule = alerting_rules()["HelpstreamServiceDown"]
    assert rule["expr"] == 'up{job="helpstream"} == 0'
    assert rule["for"] == "1m"
